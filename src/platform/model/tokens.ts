/**
 * Token counting with a real BPE tokenizer (js-tiktoken, o200k_base — the encoding of
 * gpt-4o / gpt-4.1 / o-series / gpt-5). For non-OpenAI models served through an
 * OpenAI-compatible API the count is an approximation, but a far better one than chars/4.
 *
 * The encoder is built lazily on first use (~300 ms, a few tens of MB) and then reused.
 * The ranks module is pulled in with a static-string `require` so `bun build --compile`
 * still embeds it, while merely importing this file stays cheap.
 */
import { Tiktoken, type TiktokenBPE } from "js-tiktoken/lite";
import type { ChatMessage, ToolSpec } from "./types";

/** Per-message framing overhead (`<|start|>{role}<|message|>…<|end|>`), per OpenAI's cookbook. */
export const TOKENS_PER_MESSAGE = 3;
/** Extra tokens when a message carries a `name`. */
export const TOKENS_PER_NAME = 1;
/** Every reply is primed with `<|start|>assistant<|message|>`: counted once per prompt. */
export const REPLY_PRIMING_TOKENS = 3;
/** Approximate framing for each tool call inside an assistant message. */
const TOKENS_PER_TOOL_CALL = 3;
/** Approximate framing of the tool-definition block (namespace header/footer), once per prompt. */
const TOOLS_BLOCK_OVERHEAD = 12;
/** Approximate framing per tool definition. */
const TOKENS_PER_TOOL = 8;

let encoder: Tiktoken | undefined;

function getEncoder(): Tiktoken {
  if (!encoder) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require("js-tiktoken/ranks/o200k_base") as { default?: TiktokenBPE } & TiktokenBPE;
    encoder = new Tiktoken(mod.default ?? mod);
  }
  return encoder;
}

/** Number of tokens in `text`. Special-token strings (e.g. `<|endoftext|>`) are counted as plain text. */
export function countTokens(text: string | null | undefined): number {
  if (!text) return 0;
  return getEncoder().encode(text, [], []).length;
}

/**
 * Tokens one chat message occupies in a prompt: framing overhead + role + content
 * (+ name, + tool_call_id, + each tool call's name and JSON arguments).
 * Does NOT include the once-per-prompt reply priming (see {@link countPromptTokens}).
 */
export function countMessageTokens(msg: ChatMessage): number {
  let n = TOKENS_PER_MESSAGE + countTokens(msg.role) + countTokens(msg.content);
  if (msg.name) n += TOKENS_PER_NAME + countTokens(msg.name);
  if (msg.tool_call_id) n += countTokens(msg.tool_call_id);
  if (msg.tool_calls) {
    for (const tc of msg.tool_calls) {
      n += TOKENS_PER_TOOL_CALL + countTokens(tc.id) + countTokens(tc.function.name) + countTokens(tc.function.arguments);
    }
  }
  return n;
}

/**
 * Approximate tokens consumed by tool definitions. OpenAI renders them internally in a
 * TypeScript-like syntax; counting the JSON schema text plus fixed framing slightly
 * over-estimates, which is the safe direction for budgeting.
 */
export function countToolTokens(tools: ToolSpec[] | undefined): number {
  if (!tools || tools.length === 0) return 0;
  let n = TOOLS_BLOCK_OVERHEAD;
  for (const t of tools) {
    n += TOKENS_PER_TOOL + countTokens(t.function.name) + countTokens(t.function.description);
    n += countTokens(JSON.stringify(t.function.parameters ?? {}));
  }
  return n;
}

/** Whole-prompt count: sum of messages + tools + reply priming. */
export function countPromptTokens(messages: ChatMessage[], tools?: ToolSpec[]): number {
  let n = REPLY_PRIMING_TOKENS + countToolTokens(tools);
  for (const m of messages) n += countMessageTokens(m);
  return n;
}
