/**
 * OpenAI-compatible Chat Completions client (no HTTP framework, only `fetch`).
 *
 * - POST `${baseUrl}/chat/completions`, `Authorization: Bearer <apiKey>` when given.
 * - Streaming (SSE) and non-streaming replies are normalised into one {@link ModelReply}.
 * - Retries (exponential backoff + jitter) on 429 (Retry-After honoured, capped), 5xx,
 *   network errors and timeouts; other 4xx fail at once.
 * - Aborting `signal` cancels the in-flight request (or backoff sleep) immediately and
 *   rejects with an error named "AbortError"; aborts are never retried.
 * - The API key is never logged and is redacted from any error message.
 */
import { countMessageTokens, countTokens, countToolTokens, REPLY_PRIMING_TOKENS } from "./tokens";

export type ChatMessage = {
  role: "system" | "user" | "assistant" | "tool";
  content: string | null;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  name?: string;
};
export type ToolCall = { id: string; type: "function"; function: { name: string; arguments: string } };
export type ToolSpec = { type: "function"; function: { name: string; description?: string; parameters: object } };
export type ModelUsage = { prompt_tokens: number; completion_tokens: number; total_tokens: number };
export type ModelReply = {
  content: string | null;
  tool_calls: ToolCall[];
  usage: ModelUsage;
  finish_reason: string;
  model: string;
};

export type ModelErrorCode =
  | "model_rate_limited"
  | "model_unavailable"
  | "model_timeout"
  | "model_bad_request"
  | "model_auth_failed"
  | "model_invalid_response";

export class ModelError extends Error {
  override name = "ModelError";
  code: ModelErrorCode;
  status?: number;
  /** Whether the failure is transient (retrying later may succeed). Set after our own retries are exhausted too. */
  retryable: boolean;
  /** Number of HTTP attempts made before giving up. */
  attempts?: number;
  constructor(
    code: ModelErrorCode,
    message: string,
    opts: { status?: number; retryable?: boolean; cause?: unknown; attempts?: number } = {},
  ) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.code = code;
    this.status = opts.status;
    this.retryable = opts.retryable ?? false;
    this.attempts = opts.attempts;
  }
}

export type CompleteRequest = {
  model: string;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  stream?: boolean;
  signal?: AbortSignal;
  onDelta?: (text: string) => void;
};

export interface ModelProvider {
  complete(req: CompleteRequest): Promise<ModelReply>;
}

export type OpenAIProviderOptions = {
  baseUrl: string;
  apiKey?: string;
  /** Per-attempt timeout. For streams it is an inactivity timeout, re-armed on every received chunk. Default 60 000. */
  timeoutMs?: number;
  /** Retries after the first attempt. Default 3. */
  maxRetries?: number;
  /** Base of the exponential backoff. Default 500. */
  backoffBaseMs?: number;
  /** Upper bound of one backoff sleep and of an honoured Retry-After. Default 30 000. */
  maxBackoffMs?: number;
  fetch?: typeof fetch;
};

/** Error with name "AbortError" (a DOMException, like fetch's own). */
export function makeAbortError(reason?: unknown): Error {
  const err = new DOMException("The operation was aborted.", "AbortError") as DOMException & { cause?: unknown };
  if (reason !== undefined) {
    try {
      err.cause = reason;
    } catch {
      /* ignore */
    }
  }
  return err;
}

export function isAbortError(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { name?: unknown }).name === "AbortError";
}

const TIMEOUT = Symbol("timeout");

/** Thrown inside an attempt; carries whether the outer loop may retry it. */
class AttemptFailure extends Error {
  constructor(
    readonly error: ModelError,
    readonly retryAfterMs?: number,
  ) {
    super(error.message);
  }
}

export function createOpenAIProvider(opts: OpenAIProviderOptions): ModelProvider {
  const baseUrl = opts.baseUrl.replace(/\/+$/, "");
  const url = `${baseUrl}/chat/completions`;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const maxRetries = Math.max(0, opts.maxRetries ?? 3);
  const backoffBaseMs = Math.max(0, opts.backoffBaseMs ?? 500);
  const maxBackoffMs = Math.max(0, opts.maxBackoffMs ?? 30_000);
  const doFetch = opts.fetch ?? globalThis.fetch;
  const apiKey = opts.apiKey;

  const redact = (s: string): string => (apiKey && apiKey.length >= 4 ? s.split(apiKey).join("[REDACTED]") : s);

  function backoffDelay(attempt: number): number {
    // Exponential with "equal jitter": half fixed, half random.
    const exp = Math.min(maxBackoffMs, backoffBaseMs * 2 ** attempt);
    return exp / 2 + Math.random() * (exp / 2);
  }

  async function attemptOnce(
    req: CompleteRequest,
    body: string,
    state: { emitted: boolean },
  ): Promise<ModelReply> {
    const ctrl = new AbortController();
    const external = req.signal;
    const onExternalAbort = () => ctrl.abort(external?.reason);
    external?.addEventListener("abort", onExternalAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => ctrl.abort(TIMEOUT), timeoutMs);
    };
    arm();

    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: req.stream ? "text/event-stream" : "application/json",
    };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;

    try {
      let res: Response;
      try {
        res = await doFetch(url, { method: "POST", headers, body, signal: ctrl.signal });
      } catch (e) {
        throw classifyThrown(e, ctrl, external);
      }

      if (!res.ok) {
        let text = "";
        try {
          text = await res.text();
        } catch (e) {
          throw classifyThrown(e, ctrl, external);
        }
        throw httpFailure(res, text);
      }

      const ctype = res.headers.get("content-type") ?? "";
      try {
        if (req.stream && !ctype.includes("application/json")) {
          return await readStream(res, req, arm, state);
        }
        const text = await res.text();
        const reply = parseNonStream(text, req);
        // Server ignored stream:true and answered in one piece: still surface the text.
        if (req.stream && reply.content && req.onDelta) {
          state.emitted = true;
          req.onDelta(reply.content);
        }
        return reply;
      } catch (e) {
        if (e instanceof AttemptFailure || e instanceof CallbackError) throw e;
        throw classifyThrown(e, ctrl, external);
      }
    } finally {
      if (timer) clearTimeout(timer);
      external?.removeEventListener("abort", onExternalAbort);
      // Make sure nothing of this attempt keeps running (e.g. after a parse error).
      if (!ctrl.signal.aborted) ctrl.abort();
    }
  }

  function classifyThrown(e: unknown, ctrl: AbortController, external?: AbortSignal): Error {
    if (e instanceof AttemptFailure || e instanceof CallbackError) return e;
    if (external?.aborted) return makeAbortError(external.reason);
    if (ctrl.signal.aborted && ctrl.signal.reason === TIMEOUT) {
      return new AttemptFailure(
        new ModelError("model_timeout", `model request timed out after ${timeoutMs} ms`, { retryable: true, cause: e }),
      );
    }
    const msg = e instanceof Error ? e.message : String(e);
    return new AttemptFailure(
      new ModelError("model_unavailable", redact(`model request failed: ${msg}`), { retryable: true, cause: e }),
    );
  }

  function httpFailure(res: Response, text: string): AttemptFailure {
    const status = res.status;
    const providerMsg = redact(extractErrorMessage(text) || res.statusText || `HTTP ${status}`);
    if (status === 429) {
      return new AttemptFailure(
        new ModelError("model_rate_limited", `model rate limited (429): ${providerMsg}`, { status, retryable: true }),
        parseRetryAfter(res.headers.get("retry-after")),
      );
    }
    if (status >= 500) {
      return new AttemptFailure(
        new ModelError("model_unavailable", `model provider error (${status}): ${providerMsg}`, { status, retryable: true }),
      );
    }
    if (status === 401 || status === 403) {
      return new AttemptFailure(
        new ModelError("model_auth_failed", `model authentication failed (${status}): ${providerMsg}`, { status }),
      );
    }
    return new AttemptFailure(new ModelError("model_bad_request", providerMsg, { status }));
  }

  async function readStream(
    res: Response,
    req: CompleteRequest,
    arm: () => void,
    state: { emitted: boolean },
  ): Promise<ModelReply> {
    if (!res.body) {
      throw new AttemptFailure(new ModelError("model_invalid_response", "streaming response has no body"));
    }
    const acc = new StreamAccumulator();
    const parser = new SSEParser();
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let done = false;
    const handle = (data: string) => {
      if (done) return;
      if (data === "[DONE]") {
        done = true;
        return;
      }
      let chunk: unknown;
      try {
        chunk = JSON.parse(data);
      } catch {
        // Tolerate servers that omit the blank line between events (several data: lines in one event).
        if (data.includes("\n")) {
          for (const part of data.split("\n")) if (part.trim()) handle(part);
          return;
        }
        throw new AttemptFailure(
          new ModelError("model_invalid_response", `invalid JSON in stream: ${redact(data.slice(0, 200))}`),
        );
      }
      const err = (chunk as { error?: unknown }).error;
      if (err) {
        // Provider error reported mid-stream (e.g. overloaded): transient.
        throw new AttemptFailure(
          new ModelError("model_unavailable", redact(`model stream error: ${extractErrorMessage(JSON.stringify(chunk))}`), {
            retryable: true,
          }),
        );
      }
      const text = acc.add(chunk);
      if (text && req.onDelta) {
        state.emitted = true;
        try {
          req.onDelta(text);
        } catch (e) {
          throw new CallbackError(e);
        }
      }
    };
    try {
      while (!done) {
        const { value, done: eof } = await reader.read();
        if (eof) break;
        arm();
        for (const data of parser.push(decoder.decode(value, { stream: true }))) {
          handle(data);
          if (done) break;
        }
      }
      if (!done) for (const data of parser.push(decoder.decode() + "\n\n")) handle(data);
    } finally {
      // Anything still buffered after [DONE] is irrelevant; on errors the attempt's abort closes the body.
      if (done) reader.cancel().catch(() => {});
    }
    if (!done && !acc.finishReason) {
      throw new AttemptFailure(
        new ModelError("model_unavailable", "model stream ended prematurely", { retryable: true }),
      );
    }
    return acc.finish(req);
  }

  return {
    async complete(req: CompleteRequest): Promise<ModelReply> {
      const payload: Record<string, unknown> = { model: req.model, messages: req.messages };
      if (req.tools && req.tools.length > 0) payload.tools = req.tools;
      if (req.stream) {
        payload.stream = true;
        payload.stream_options = { include_usage: true };
      }
      const body = JSON.stringify(payload);
      const state = { emitted: false };
      let last: ModelError | undefined;

      for (let attempt = 0; attempt <= maxRetries; attempt++) {
        if (req.signal?.aborted) throw makeAbortError(req.signal.reason);
        try {
          return await attemptOnce(req, body, state);
        } catch (e) {
          if (e instanceof CallbackError) throw e.inner;
          if (!(e instanceof AttemptFailure)) throw e; // AbortError or programming error
          last = e.error;
          last.attempts = attempt + 1;
          // Once deltas reached the caller we cannot transparently replay the reply.
          if (!last.retryable || state.emitted || attempt === maxRetries) throw last;
          const delay =
            e.retryAfterMs !== undefined ? Math.min(e.retryAfterMs, maxBackoffMs) : backoffDelay(attempt);
          await sleep(delay, req.signal);
        }
      }
      throw last ?? new ModelError("model_unavailable", "model request failed");
    },
  };
}

/** Wraps an exception thrown by the caller's onDelta so it is re-thrown as-is, not retried. */
class CallbackError extends Error {
  constructor(readonly inner: unknown) {
    super("onDelta threw");
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(makeAbortError(signal.reason));
    const onAbort = () => {
      clearTimeout(t);
      reject(makeAbortError(signal?.reason));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Retry-After: delta-seconds or an HTTP date. Returns ms, or undefined when absent/invalid. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(parseFloat(v) * 1000);
  const date = Date.parse(v);
  if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  return undefined;
}

function extractErrorMessage(text: string): string {
  if (!text) return "";
  try {
    const j = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown };
    const err = j.error;
    if (typeof err === "string") return err;
    if (err && typeof err === "object" && typeof (err as { message?: unknown }).message === "string") {
      return (err as { message: string }).message;
    }
    if (typeof j.message === "string") return j.message;
    if (typeof j.detail === "string") return j.detail;
  } catch {
    /* not JSON */
  }
  return text.slice(0, 500);
}

function normaliseArgs(a: unknown): string {
  if (typeof a === "string") return a;
  if (a === undefined || a === null) return "";
  return JSON.stringify(a);
}

function parseNonStream(text: string, req: CompleteRequest): ModelReply {
  let j: any;
  try {
    j = JSON.parse(text);
  } catch {
    throw new AttemptFailure(new ModelError("model_invalid_response", "model response is not valid JSON"));
  }
  const choice = j?.choices?.[0];
  const message = choice?.message;
  if (!message || typeof message !== "object") {
    throw new AttemptFailure(new ModelError("model_invalid_response", "model response has no choices[0].message"));
  }
  const tool_calls: ToolCall[] = Array.isArray(message.tool_calls)
    ? message.tool_calls.map((tc: any, i: number) => ({
        id: typeof tc?.id === "string" && tc.id ? tc.id : `call_${i}`,
        type: "function" as const,
        function: { name: String(tc?.function?.name ?? ""), arguments: normaliseArgs(tc?.function?.arguments) },
      }))
    : [];
  const content = typeof message.content === "string" ? message.content : null;
  const finish_reason = String(choice.finish_reason ?? (tool_calls.length ? "tool_calls" : "stop"));
  const usage = normaliseUsage(j.usage) ?? estimateUsage(req, content, tool_calls);
  return { content, tool_calls, usage, finish_reason, model: String(j.model ?? req.model) };
}

function normaliseUsage(u: any): ModelUsage | undefined {
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
function estimateUsage(req: CompleteRequest, content: string | null, toolCalls: ToolCall[]): ModelUsage {
  let prompt = REPLY_PRIMING_TOKENS + countToolTokens(req.tools);
  for (const m of req.messages) prompt += countMessageTokens(m);
  let completion = countTokens(content);
  for (const tc of toolCalls) completion += countTokens(tc.function.name) + countTokens(tc.function.arguments);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
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
