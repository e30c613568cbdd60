/**
 * Worst-case event-loop stall of token counting, before (js-tiktoken's encoder, quadratic on a
 * long unbroken run) and after (tokens.ts: bounded chunks, counted in slices by precountTokens).
 *
 *   bun run scripts/measure-tokenizer.ts            # js-tiktoken only up to 8,000 chars (20,000: > 100 s)
 *   bun run scripts/measure-tokenizer.ts --exact-all
 */
import { Tiktoken } from "js-tiktoken/lite";
import o200k from "js-tiktoken/ranks/o200k_base";
import { countTokens, loadEncoder, precountTokens } from "../src/platform/model/tokens";

const exactAll = Bun.argv.includes("--exact-all");
/** [name, text, whether js-tiktoken finishes in reasonable time on it] */
const inputs: [string, string, boolean][] = [
  ["8,000 × 'a' (an http tool's reply)", "a".repeat(8_000), true],
  ["10,000 × 'a' (a run input)", "a".repeat(10_000), false],
  ["20,000 × 'a'", "a".repeat(20_000), false],
  ["200,000 × 'a' (the input limit)", "a".repeat(200_000), false],
  ["1,000,000 × 'a' (an http tool's reply limit)", "a".repeat(1_000_000), false],
  ["3,000 CJK characters without a space", Array.from({ length: 3_000 }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20000))).join(""), true],
  ["300,000 CJK characters without a space", Array.from({ length: 300_000 }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20000))).join(""), false],
  ["1 MB of English", "The quick brown fox jumps over the lazy dog; AgentOS counts the tokens of 42 prompts. ".repeat(12_000), true],
];

/** Longest gap between two ticks of a 1 ms interval while `work` runs. */
async function worstGap(work: () => Promise<unknown>): Promise<{ gap: number; total: number }> {
  let last = performance.now();
  let gap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  await work();
  const total = performance.now() - started;
  clearInterval(timer);
  return { gap: Math.max(gap, performance.now() - last), total };
}

const exact = new Tiktoken(o200k);
exact.encode("warm up");
await loadEncoder();
for (const [name, text, feasible] of inputs) {
  let before = "not run (quadratic: 20,000 chars take > 100 s)";
  if (feasible || exactAll) {
    const started = performance.now();
    exact.encode(text, [], []);
    before = `${Math.round(performance.now() - started)} ms (one synchronous block)`;
  }
  const sync = performance.now();
  countTokens(text + " "); // a fresh string: not from the cache
  const syncMs = performance.now() - sync;
  const { gap, total } = await worstGap(() => precountTokens([text + "  "]));
  console.log(`${name}\n  before: ${before}\n  after:  countTokens ${Math.round(syncMs)} ms; precountTokens ${Math.round(total)} ms in slices, worst event-loop gap ${Math.round(gap)} ms`);
}
