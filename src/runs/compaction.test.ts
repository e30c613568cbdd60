/** The pure decisions of context compaction: what is folded, and that each summarize request fits the window. */
import { describe, expect, test } from "bun:test";
import { countPromptTokens, countTokens, loadEncoder } from "../platform/model/tokens";
import type { ChatMessage } from "../platform/model/types";
import { cutToTokens, messagesToFold, summarizeRequest, summaryMaxTokens, withSummary } from "./compaction";

await loadEncoder();
const say = (role: "user" | "assistant", words: number, tag = ""): ChatMessage => ({ role, content: `${tag} ${"word ".repeat(words)}`.trim() });
const tokens = (ms: ChatMessage[]) => countPromptTokens(ms) - 3;

describe("messagesToFold", () => {
  test("nothing when the history fits, or when only its newest message is left", () => {
    expect(messagesToFold([say("user", 10), say("assistant", 10)], 1000)).toBe(0);
    expect(messagesToFold([say("user", 5000)], 100)).toBe(0);
  });

  test("keeps the newest messages within half of the room, folds the rest, never the newest", () => {
    const history = Array.from({ length: 40 }, (_, i) => say(i % 2 ? "assistant" : "user", 40, `m${i}`));
    const free = 600;
    const n = messagesToFold(history, free);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(history.length);
    expect(tokens(history.slice(n))).toBeLessThanOrEqual(free / 2);
    expect(tokens(history.slice(n - 1))).toBeGreaterThan(free / 2);
  });

  test("an assistant tool call stays with its results", () => {
    const call: ChatMessage = { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }] };
    const result: ChatMessage = { role: "tool", tool_call_id: "c1", content: "r ".repeat(100) };
    const history = [say("user", 200), call, result, say("user", 3)];
    const n = messagesToFold(history, 150);
    expect(history[n]?.role).not.toBe("tool");
  });
});

describe("summarizeRequest", () => {
  const candidates = Array.from({ length: 60 }, (_, i) => ({ id: `msg_${String(i).padStart(3, "0")}`, message: say("user", 50, `fact-${i}`) }));

  test("folds the oldest that fit; the request and the summary's room fit the window", () => {
    for (const window of [512, 1024, 4096]) {
      const r = summarizeRequest("an earlier summary", candidates, window);
      expect(r.folded.length).toBeGreaterThan(0);
      expect(r.folded).toEqual(candidates.slice(0, r.folded.length));
      expect(countPromptTokens(r.messages) + summaryMaxTokens(window)).toBeLessThanOrEqual(window);
      expect(r.messages[1].content).toContain("an earlier summary");
    }
  });

  test("one message too long for a request is cut, not skipped", () => {
    const huge = [{ id: "msg_1", message: say("user", 20_000, "fact-1") }];
    const r = summarizeRequest(null, huge, 1024);
    expect(r.folded).toHaveLength(1);
    expect(r.messages[1].content).toContain("fact-1");
    expect(countPromptTokens(r.messages) + summaryMaxTokens(1024)).toBeLessThanOrEqual(1024);
  });
});

test("the summary goes after the instructions; cutToTokens bounds it", () => {
  expect(withSummary("Be brief.", null)).toBe("Be brief.");
  expect(withSummary("Be brief.", "S")).toMatch(/^Be brief\.\n\n<conversation_summary>\n.*\nS\n<\/conversation_summary>$/s);
  const cut = cutToTokens("token ".repeat(1000), 100);
  expect(countTokens(cut)).toBeLessThanOrEqual(100);
  expect(countTokens(cut)).toBeGreaterThan(80);
});
