/**
 * Token counting with a real BPE tokenizer (js-tiktoken, o200k_base — the encoding of
 * gpt-4o / gpt-4.1 / o-series / gpt-5). For non-OpenAI models served through an
 * OpenAI-compatible API the count is an approximation, but a far better one than chars/4.
 *
 * The table is built on first use (~250 ms, a few tens of MB; in slices by loadEncoder) and then reused.
 * The ranks module (2.3 MB of JavaScript) is embedded as a file and read when the table is built:
 * bundled as code it was parsed and kept by every process that imports the run kernel.
 */
import { readFileSync } from "node:fs";
import type { TiktokenBPE } from "js-tiktoken/lite";
// `export default {"pat_str": …, "bpe_ranks": …}`: JSON after the export. The package's exports map hides dist/*.
import o200kModule from "../../../node_modules/js-tiktoken/dist/ranks/o200k_base.js" with { type: "file" };
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

/**
 * Pieces (pre-tokenizer matches) longer than this many UTF-8 bytes are cut into chunks of this
 * size before the merge: BPE is quadratic in the piece length, and one unbroken run (10 kB of
 * one letter, a CJK paragraph, a base64 blob) is one piece. Normal words are far shorter.
 */
export const MAX_PIECE_BYTES = 256;
/**
 * Tokens added per cut: a merge across the cut can change the tokens next to it. Chunked counts
 * must never be below the true count (the prompt budget relies on it); the property test in
 * prompt.test.ts checks this margin against the exact tokenizer.
 */
const TOKENS_PER_CUT = 1;
/** No o200k token is longer than this many bytes: longer slices are not looked up. */
const MAX_TOKEN_BYTES = 128;

/**
 * Token ranks keyed by the token's bytes, looked up by a slice of a latin1 string (one char per
 * byte). Flat typed arrays with open addressing rather than a Map of 200k strings: ~5 MB instead
 * of ~38 MB of heap in every process that counts tokens, and a lookup allocates no slice.
 */
const BASE64_DIGITS = (() => {
  const digits = new Uint8Array(128).fill(255);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < alphabet.length; i++) digits[alphabet.charCodeAt(i)] = i;
  return digits;
})();

class Ranks {
  private bytes = new Uint8Array(1 << 21);
  private used = 0;
  /** Token i's bytes are bytes[starts[i] .. starts[i + 1]). */
  private starts: Uint32Array;
  private ranks: Uint32Array;
  private count = 0;
  /** Token index + 1 per slot (0 = empty); a power of two at least twice the token count. */
  private slots: Uint32Array;

  constructor(capacity: number) {
    this.starts = new Uint32Array(capacity + 1);
    this.ranks = new Uint32Array(capacity);
    this.slots = new Uint32Array(2 ** Math.ceil(Math.log2(capacity * 2)));
  }

  /** FNV-1a over the char codes (bytes) of key[start, end). */
  private static hash(key: string, start: number, end: number): number {
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    return h >>> 0;
  }

  /** The same hash over bytes[from, to). */
  private static hashBytes(bytes: Uint8Array, from: number, to: number): number {
    let h = 0x811c9dc5;
    for (let i = from; i < to; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
    return h >>> 0;
  }

  /** Decodes base64 text[from, to) onto the end of `bytes` (no Buffer per token: they would be ~20 MB of garbage). */
  private appendBase64(text: string, from: number, to: number) {
    if (this.used + to - from > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    let bits = 0;
    let value = 0;
    for (let i = from; i < to; i++) {
      const digit = BASE64_DIGITS[text.charCodeAt(i)]!;
      if (digit === 255) break; // "=" padding
      value = (value << 6) | digit;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        this.bytes[this.used++] = (value >> bits) & 0xff;
      }
    }
  }

  private matches(index: number, key: string, start: number, end: number): boolean {
    const from = this.starts[index]!;
    if (this.starts[index + 1]! - from !== end - start) return false;
    for (let i = 0; i < end - start; i++) if (this.bytes[from + i] !== key.charCodeAt(start + i)) return false;
    return true;
  }

  /** Adds the token whose bytes are the base64 text[from, to). */
  addBase64(text: string, from: number, to: number, rank: number) {
    if (this.count === this.ranks.length) throw new Error("tokenizer: more tokens than the table was sized for");
    const start = this.used;
    this.appendBase64(text, from, to);
    const index = this.count++;
    this.starts[index + 1] = this.used;
    this.ranks[index] = rank;
    const mask = this.slots.length - 1;
    let slot = Ranks.hashBytes(this.bytes, start, this.used) & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = index + 1;
  }

  /** Rank of the token whose bytes are key[start, end), or undefined. */
  get(key: string, start: number, end: number): number | undefined {
    const mask = this.slots.length - 1;
    for (let slot = Ranks.hash(key, start, end) & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot]!;
      if (entry === 0) return undefined;
      if (this.matches(entry - 1, key, start, end)) return this.ranks[entry - 1];
    }
  }
}

type Encoder = { ranks: Ranks; pattern: RegExp };
let encoder: Encoder | undefined;
let loading: Promise<Encoder> | undefined;

/** Builds the o200k table from js-tiktoken's compressed ranks ("! offset tok tok…", base64 tokens), pausing every few thousand tokens. */
function* loadSteps(): Generator<undefined, Encoder> {
  const source = readFileSync(o200kModule as unknown as string, "utf8");
  const bpe = JSON.parse(source.slice(source.indexOf("{"), source.lastIndexOf("}") + 1)) as TiktokenBPE;
  const text = bpe.bpe_ranks;
  // Every line is "! offset tok tok…": fewer tokens than spaces.
  let capacity = 0;
  for (let i = text.indexOf(" "); i >= 0; i = text.indexOf(" ", i + 1)) capacity++;
  const ranks = new Ranks(capacity);
  let added = 0;
  for (let lineStart = 0; lineStart < text.length; ) {
    let lineEnd = text.indexOf("\n", lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    // Skip "!" and the offset; then one token per space-separated field.
    const offsetStart = text.indexOf(" ", lineStart) + 1;
    let field = text.indexOf(" ", offsetStart);
    if (offsetStart > 0 && offsetStart < lineEnd && field > 0 && field < lineEnd) {
      let rank = Number.parseInt(text.slice(offsetStart, field), 10);
      while (field < lineEnd) {
        const from = field + 1;
        let to = text.indexOf(" ", from);
        if (to < 0 || to > lineEnd) to = lineEnd;
        ranks.addBase64(text, from, to, rank++);
        if (++added % 4096 === 0) yield;
        field = to;
      }
    }
    lineStart = lineEnd + 1;
  }
  return { ranks, pattern: new RegExp(bpe.pat_str, "gu") };
}

/** Runs a counting or loading generator to its end at once. */
function runAtOnce<T>(steps: Generator<undefined, T>): T {
  let r = steps.next();
  while (!r.done) r = steps.next();
  return r.value;
}

/** Longest stretch of counting between two turns of the event loop. */
export const COUNT_SLICE_MS = 10;

/** A clock shared by the steps of one sliced job: gives the event loop a turn every COUNT_SLICE_MS. */
function sliceClock() {
  let sliceStart = performance.now();
  return async () => {
    if (performance.now() - sliceStart < COUNT_SLICE_MS) return;
    await new Promise((resolve) => setImmediate(resolve));
    sliceStart = performance.now();
  };
}

async function runSliced<T>(steps: Generator<undefined, T>, pause: () => Promise<void>): Promise<T> {
  let r = steps.next();
  while (!r.done) {
    await pause();
    r = steps.next();
  }
  return r.value;
}

/** The tokenizer table, built at once on first use (~250 ms) unless {@link loadEncoder} built it already. */
function getEncoder(): Encoder {
  encoder ??= runAtOnce(loadSteps());
  return encoder;
}

/** Builds the tokenizer table in slices that leave the event loop free (precountTokens calls it). */
export function loadEncoder(): Promise<Encoder> {
  if (encoder) return Promise.resolve(encoder);
  loading ??= runSliced(loadSteps(), sliceClock()).then((e) => (encoder ??= e));
  return loading;
}

/** Rank of the byte slice [start, end) of `bytes` (a latin1 string) as one token, or Infinity. */
function rankOf(ranks: Ranks, bytes: string, start: number, end: number): number {
  if (end - start > MAX_TOKEN_BYTES) return Infinity;
  return ranks.get(bytes, start, end) ?? Infinity;
}

/** A binary min-heap of numbers (merge candidates encoded as rank * POSITIONS + position). */
class MinHeap {
  private items: number[] = [];
  clear() {
    this.items.length = 0;
  }
  get size() {
    return this.items.length;
  }
  push(v: number) {
    const a = this.items;
    let i = a.push(v) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= v) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= a.length) break;
      if (child + 1 < a.length && a[child + 1]! < a[child]!) child++;
      if (a[child]! >= last) break;
      a[i] = a[child]!;
      i = child;
    }
    a[i] = last;
    return top;
  }
}

const scratch = {
  next: new Int32Array(MAX_PIECE_BYTES),
  prev: new Int32Array(MAX_PIECE_BYTES),
  pairRank: new Float64Array(MAX_PIECE_BYTES),
  alive: new Uint8Array(MAX_PIECE_BYTES),
  heap: new MinHeap(),
};

const POSITIONS = 1 << 20; // > MAX_PIECE_BYTES: positions fit below one rank step

/**
 * Tokens of one piece by byte-pair merge with tiktoken's rule (the lowest-ranked adjacent
 * pair merges first, the leftmost on a tie, until no pair is a token), using a heap of
 * candidate pairs and a linked list of parts: O(n log n) for a piece of n bytes. A popped
 * candidate is used only if its pair still has that rank (stale ones are skipped).
 */
function mergedTokenCount(ranks: Ranks, bytes: string, start: number, end: number): number {
  const n = end - start;
  if (n <= 1) return n;
  if (rankOf(ranks, bytes, start, end) !== Infinity) return 1;
  // Part i starts at byte start+i; next[i] is the following part (n = none). Scratch arrays are shared: n <= MAX_PIECE_BYTES.
  const { next, prev, pairRank, alive, heap } = scratch;
  alive.fill(1, 0, n);
  heap.clear();
  const partEnd = (i: number) => (next[i]! < n ? start + next[i]! : end);
  const rate = (i: number) => {
    const j = next[i]!;
    pairRank[i] = j < n ? rankOf(ranks, bytes, start + i, partEnd(j)) : Infinity;
    if (pairRank[i] !== Infinity) heap.push(pairRank[i]! * POSITIONS + i);
  };
  for (let i = 0; i < n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  for (let i = 0; i < n - 1; i++) rate(i);
  pairRank[n - 1] = Infinity;
  let parts = n;
  while (heap.size > 0) {
    const top = heap.pop();
    const i = top % POSITIONS;
    if (!alive[i] || pairRank[i] !== (top - i) / POSITIONS) continue;
    const j = next[i]!;
    alive[j] = 0;
    next[i] = next[j]!;
    if (next[j]! < n) prev[next[j]!] = i;
    parts--;
    rate(i);
    if (prev[i]! >= 0) rate(prev[i]!);
  }
  return parts;
}

const NON_ASCII = /[^\x00-\x7f]/;
const isAscii = (s: string) => !NON_ASCII.test(s);

/** Work units between two checks of the clock while counting in slices (each unit: one merge of at most MAX_PIECE_BYTES). */
const UNITS_PER_CHECK = 8;

/**
 * Counts `text` piece by piece (a long piece in chunks cut on UTF-8 character starts),
 * pausing (`yield`) every few units so a caller can give the event loop a turn.
 */
function* countSteps(text: string): Generator<undefined, number> {
  const { ranks, pattern } = getEncoder();
  let n = 0;
  let units = 0;
  for (const match of text.matchAll(pattern)) {
    const piece = match[0];
    const bytes = isAscii(piece) ? piece : Buffer.from(piece, "utf8").toString("latin1");
    for (let start = 0; start < bytes.length; ) {
      let end = Math.min(start + MAX_PIECE_BYTES, bytes.length);
      while (end < bytes.length && (bytes.charCodeAt(end) & 0xc0) === 0x80) end--; // never split a character
      n += mergedTokenCount(ranks, bytes, start, end);
      if (end < bytes.length) n += TOKENS_PER_CUT;
      start = end;
      if (++units >= UNITS_PER_CHECK) {
        units = 0;
        yield;
      }
    }
  }
  return n;
}

// Counts of long strings are kept (least recently used out first, bounded in characters):
// a run re-counts its whole history at every step, and precountTokens fills this ahead.
const CACHE_MIN_CHARS = 512;
const CACHE_MAX_CHARS = 16 * 1024 * 1024;
const counted = new Map<string, number>();
let countedChars = 0;

function remember(text: string, n: number) {
  counted.set(text, n);
  countedChars += text.length;
  while (countedChars > CACHE_MAX_CHARS) {
    const oldest = counted.keys().next().value as string;
    counted.delete(oldest);
    countedChars -= oldest.length;
  }
}

function recall(text: string): number | undefined {
  const n = counted.get(text);
  if (n !== undefined) {
    counted.delete(text); // move to the newest end
    counted.set(text, n);
  }
  return n;
}

/**
 * Number of tokens in `text` (o200k_base). Special-token strings (e.g. `<|endoftext|>`) are
 * counted as plain text. Linear in the length of the text: exact for pieces up to
 * {@link MAX_PIECE_BYTES} bytes, a small over-estimate (never an under-estimate) for longer
 * unbroken runs. Synchronous: for text that may be long, call {@link precountTokens} first.
 */
export function countTokens(text: string | null | undefined): number {
  if (!text) return 0;
  const known = text.length >= CACHE_MIN_CHARS ? recall(text) : undefined;
  if (known !== undefined) return known;
  const n = runAtOnce(countSteps(text));
  if (text.length >= CACHE_MIN_CHARS) remember(text, n);
  return n;
}

/**
 * Counts long texts ahead, giving the event loop a turn every {@link COUNT_SLICE_MS} ms, so
 * that the synchronous {@link countTokens} calls that follow (prompt assembly) find them
 * counted: one tenant's megabyte of text never holds up other requests.
 */
export async function precountTokens(texts: Iterable<string | null | undefined>): Promise<void> {
  const pause = sliceClock();
  await loadEncoder();
  for (const text of texts) {
    if (!text || text.length < CACHE_MIN_CHARS || recall(text) !== undefined) continue;
    remember(text, await runSliced(countSteps(text), pause));
  }
}

/** The texts of messages and tool definitions that a prompt count reads (for {@link precountTokens}). */
export function* promptTexts(messages: ChatMessage[], tools?: ToolSpec[]): Generator<string | null | undefined> {
  for (const m of messages) {
    yield m.content;
    for (const tc of m.tool_calls ?? []) yield tc.function.arguments;
  }
  for (const t of tools ?? []) {
    yield t.function.description;
    yield JSON.stringify(t.function.parameters ?? {});
  }
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
