/**
 * Decoding an OpenAI-compatible reply: the SSE framing of a stream, the chunks accumulated
 * into one reply, and the normalisation both the streamed and the one-piece reply share
 * (tool-call arguments, usage — estimated when the provider reports none).
 */
import { countMessageTokens, countTokens, countToolTokens, REPLY_PRIMING_TOKENS } from "./tokens";
import type { CompleteRequest, ModelReply, ModelUsage, ToolCall } from "./types";

export function normaliseArgs(a: unknown): string {
  if (typeof a === "string") return a;
  if (a === undefined || a === null) return "";
  return JSON.stringify(a);
}

export function normaliseUsage(u: any): ModelUsage | undefined {
  if (!u || typeof u !== "object") return undefined;
  const p = Number(u.prompt_tokens);
  const c = Number(u.completion_tokens);
  if (!Number.isFinite(p) || !Number.isFinite(c)) return undefined;
  const t = Number(u.total_tokens);
  return { prompt_tokens: p, completion_tokens: c, total_tokens: Number.isFinite(t) ? t : p + c };
}

/**
 * Usage ESTIMATE, used only when the provider reports none (some OpenAI-compatible servers
 * ignore `stream_options.include_usage`): prompt counted with our tokenizer over the sent
 * messages + tools, completion over the produced text and tool calls. Not billing-accurate.
 */
export function estimateUsage(req: CompleteRequest, content: string | null, toolCalls: ToolCall[]): ModelUsage {
  let prompt = REPLY_PRIMING_TOKENS + countToolTokens(req.tools);
  for (const m of req.messages) prompt += countMessageTokens(m);
  let completion = countTokens(content);
  for (const tc of toolCalls) completion += countTokens(tc.function.name) + countTokens(tc.function.arguments);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, estimated: true };
}

/**
 * Incremental SSE parser: feed arbitrary text pieces, get back the `data` payload of each
 * complete event (multiple `data:` lines of one event are joined with "\n"). Handles
 * \n, \r\n and \r line endings, comments (":") and ignores other fields.
 */
export class SSEParser {
  private buf = "";
  private data: string[] = [];
  private pendingCR = false;

  push(text: string): string[] {
    const out: string[] = [];
    if (this.pendingCR && text.startsWith("\n")) text = text.slice(1);
    this.pendingCR = false;
    this.buf += text;
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const ch = this.buf[i];
      if (ch !== "\n" && ch !== "\r") continue;
      if (ch === "\r") {
        if (i + 1 < this.buf.length) {
          if (this.buf[i + 1] === "\n") {
            this.line(this.buf.slice(start, i), out);
            i++;
            start = i + 1;
            continue;
          }
        } else {
          this.pendingCR = true; // a "\n" may follow in the next piece
        }
      }
      this.line(this.buf.slice(start, i), out);
      start = i + 1;
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  private line(line: string, out: string[]) {
    if (line === "") {
      if (this.data.length) out.push(this.data.join("\n"));
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
  }
}

/** Accumulates chat.completion.chunk objects into a reply. */
export class StreamAccumulator {
  content = "";
  sawContent = false;
  finishReason: string | undefined;
  model: string | undefined;
  usage: ModelUsage | undefined;
  private calls = new Map<number, { id: string; name: string; args: string }>();

  /** Returns the content delta text of this chunk ("" if none). */
  add(chunk: any): string {
    if (typeof chunk?.model === "string" && chunk.model) this.model = chunk.model;
    const usage = normaliseUsage(chunk?.usage);
    if (usage) this.usage = usage;
    let text = "";
    const choices: any[] = Array.isArray(chunk?.choices) ? chunk.choices : [];
    for (const choice of choices) {
      if ((choice?.index ?? 0) !== 0) continue;
      const delta = choice.delta ?? choice.message ?? {};
      if (typeof delta.content === "string" && delta.content.length) {
        this.content += delta.content;
        this.sawContent = true;
        text += delta.content;
      }
      if (Array.isArray(delta.tool_calls)) {
        for (const tc of delta.tool_calls) this.addToolCall(tc);
      }
      if (choice.finish_reason) this.finishReason = String(choice.finish_reason);
    }
    return text;
  }

  private addToolCall(tc: any) {
    let index: number;
    if (typeof tc?.index === "number") index = tc.index;
    else {
      // No index: locate by id, else continue the latest call.
      const byId = [...this.calls.entries()].find(([, c]) => tc?.id && c.id === tc.id);
      index = byId ? byId[0] : tc?.id || this.calls.size === 0 ? this.calls.size : Math.max(...this.calls.keys());
    }
    let cur = this.calls.get(index);
    if (!cur) {
      cur = { id: "", name: "", args: "" };
      this.calls.set(index, cur);
    }
    if (typeof tc?.id === "string" && tc.id) cur.id = tc.id;
    const fn = tc?.function ?? {};
    if (typeof fn.name === "string" && fn.name) {
      // OpenAI sends the full name once; tolerate servers that repeat it in every chunk.
      if (!cur.name || fn.name.startsWith(cur.name)) cur.name = fn.name;
      else if (fn.name !== cur.name) cur.name += fn.name;
    }
    if (fn.arguments !== undefined && fn.arguments !== null) cur.args += normaliseArgs(fn.arguments);
  }

  finish(req: CompleteRequest): ModelReply {
    const tool_calls: ToolCall[] = [...this.calls.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([i, c]) => ({ id: c.id || `call_${i}`, type: "function" as const, function: { name: c.name, arguments: c.args } }));
    const content = this.sawContent ? this.content : null;
    return {
      content,
      tool_calls,
      usage: this.usage ?? estimateUsage(req, content, tool_calls),
      finish_reason: this.finishReason ?? (tool_calls.length ? "tool_calls" : "stop"),
      model: this.model ?? req.model,
    };
  }
}
