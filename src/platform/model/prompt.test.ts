import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { ChatMessage, ToolSpec } from "./types";
import { Tiktoken } from "js-tiktoken/lite";
import o200k from "js-tiktoken/ranks/o200k_base";
import { buildPrompt, buildPromptSliced, ContextWindowExceededError, defaultReserve, groupHistory, renderMemoryBlocks } from "./prompt";
import { countMessageTokens, countPromptTokens, countTokens, countToolTokens, MAX_PIECE_BYTES, precountTokens, REPLY_PRIMING_TOKENS } from "./tokens";

const tools: ToolSpec[] = [
  {
    type: "function",
    function: {
      name: "send_message",
      description: "Send a message to the user",
      parameters: { type: "object", properties: { message: { type: "string" } }, required: ["message"] },
    },
  },
  {
    type: "function",
    function: {
      name: "core_memory_append",
      parameters: { type: "object", properties: { label: { type: "string" }, content: { type: "string" } } },
    },
  },
];
const blocks = [
  { label: "persona", value: "I am a helpful test agent.", limit: 5000 },
  { label: "human", value: "Name: Ada.", limit: 5000 },
];

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });

function sumTokens(msgs: ChatMessage[], t: ToolSpec[]): number {
  return msgs.reduce((n, m) => n + countMessageTokens(m), 0) + countToolTokens(t) + REPLY_PRIMING_TOKENS;
}

describe("tokens", () => {
  test("real tokenizer counts", () => {
    expect(countTokens("")).toBe(0);
    expect(countTokens("hello world")).toBe(2);
    expect(countTokens("<|endoftext|>")).toBeGreaterThan(1); // special tokens counted as text, no throw
    expect(countMessageTokens(user("hello world"))).toBe(3 + 1 + 2);
    const withCall: ChatMessage = {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: '{"a":1}' } }],
    };
    expect(countMessageTokens(withCall)).toBeGreaterThan(countMessageTokens({ role: "assistant", content: null }));
    expect(countToolTokens([])).toBe(0);
    expect(countToolTokens(tools)).toBeGreaterThan(20);
    expect(countPromptTokens([user("hi")], tools)).toBe(countMessageTokens(user("hi")) + countToolTokens(tools) + 3);
  });
});

/** js-tiktoken's own encoder: the exact count (quadratic on long unbroken runs, so only on short texts here). */
const exact = new Tiktoken(o200k);
const exactCount = (text: string) => exact.encode(text, [], []).length;

/** A small deterministic generator: a fixed seed keeps CI reproducible. */
function seeded(seed: number) {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe("linear-time token counting", () => {
  test("equal to js-tiktoken on normal text and on every piece up to MAX_PIECE_BYTES", () => {
    const texts = [
      "AgentOS is the backend of an agent platform: people sign up, define agents (a model, instructions, tools, memory).",
      "Über naïve café — 東京 2024-05-01 https://example.com/a/b?c=d {\"json\": [1, 2, 3]}\n\n  indented\tcode();",
      "def f(x):\n    return x ** 2  # comment\r\n",
      "日本語の文章は単語の間に空白がありません。",
      "a".repeat(MAX_PIECE_BYTES),
      "x".repeat(MAX_PIECE_BYTES - 2) + "é", // é is two bytes
    ];
    for (const t of texts) expect(countTokens(t)).toBe(exactCount(t));
  });

  test("long unbroken runs: never fewer tokens than js-tiktoken, at most a few percent more", () => {
    const rnd = seeded(9);
    const alphabets = ["a", "ab", "abcdefghijklmnopqrstuvwxyz", "aA", "0123456789abcdef", "日本語の文章中文汉字", "éàüßø", " \t", "!?.,;:-_", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"];
    for (let k = 0; k < 80; k++) {
      const alphabet = alphabets[k % alphabets.length]!;
      const length = MAX_PIECE_BYTES - 60 + Math.floor(rnd() * 400);
      let text = "";
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(rnd() * alphabet.length)];
      const want = exactCount(text);
      const got = countTokens(text);
      expect(got).toBeGreaterThanOrEqual(want);
      expect(got).toBeLessThanOrEqual(Math.ceil(want * 1.1) + 1);
    }
  });

  test("100,000 characters without a space are counted, and precounting leaves the event loop free", async () => {
    // Before: js-tiktoken took ~12 s for 8,000 "a" and > 100 s for 20,000.
    const run = "q".repeat(100_000);
    let last = performance.now();
    let worstGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
    }, 2);
    await precountTokens([run, "日本語".repeat(30_000)]);
    clearInterval(timer);
    expect(worstGap).toBeLessThan(100);
    expect(countTokens(run)).toBeGreaterThan(100_000 / 16);
  });

  test("buildPromptSliced builds the same prompt as buildPrompt", async () => {
    const input = { instructions: "Be brief. " + "z".repeat(5000), memoryBlocks: blocks, history: [user("w".repeat(20_000)), assistant("ok")], tools, contextWindow: 20_000 };
    expect(await buildPromptSliced(input)).toEqual(buildPrompt(input));
  });
});

describe("buildPrompt", () => {
  test("system message renders instructions and memory blocks Letta-style", () => {
    const r = buildPrompt({ instructions: "Be nice.", memoryBlocks: blocks, history: [user("hi")], tools, contextWindow: 8000 });
    expect(r.messages).toHaveLength(2);
    const sys = r.messages[0]!;
    expect(sys.role).toBe("system");
    expect(sys.content).toStartWith("Be nice.\n\n<memory_blocks>");
    expect(sys.content).toContain("<persona>\n<metadata>\n- chars_current=26\n- chars_limit=5000\n</metadata>\n<value>\nI am a helpful test agent.\n</value>\n</persona>");
    expect(sys.content).toContain("<human>");
    expect(sys.content).toEndWith("</memory_blocks>");
    expect(r.droppedMessages).toBe(0);
    expect(r.promptTokens).toBe(sumTokens(r.messages, tools));
    expect(renderMemoryBlocks([{ label: "my block!", value: "v", limit: 1 }])).toContain("<my_block_>");
  });

  test("drops oldest first and keeps the newest", () => {
    const history: ChatMessage[] = [];
    for (let i = 0; i < 50; i++) history.push(user(`question ${i} ${"lorem ipsum ".repeat(20)}`), assistant(`answer ${i}`));
    const r = buildPrompt({ instructions: "x", memoryBlocks: [], history, tools: [], contextWindow: 2000 });
    expect(r.droppedMessages).toBeGreaterThan(0);
    const kept = r.messages.slice(1);
    expect(kept).toEqual(history.slice(r.droppedMessages));
    expect(r.promptTokens).toBeLessThanOrEqual(2000 - defaultReserve(2000));
    expect(r.promptTokens).toBe(sumTokens(r.messages, []));
  });

  test("assistant tool_calls and their tool results are dropped together", () => {
    const call = (id: string): ChatMessage => ({
      role: "assistant",
      content: null,
      tool_calls: [
        { id: `${id}a`, type: "function", function: { name: "send_message", arguments: '{"message":"x"}' } },
        { id: `${id}b`, type: "function", function: { name: "send_message", arguments: '{"message":"y"}' } },
      ],
    });
    const res = (id: string, text: string): ChatMessage => ({ role: "tool", tool_call_id: id, content: text });
    const history: ChatMessage[] = [
      user("start"),
      call("c1"),
      res("c1a", "first result ".repeat(30)),
      res("c1b", "second result ".repeat(30)),
      user("next"),
    ];
    // Budget fits "next" and the second tool result but not the whole group.
    const fixed = sumTokens([{ role: "system", content: "s\n\n" + renderMemoryBlocks([]) }], []);
    const needNext = countMessageTokens(history[4]!);
    const needTool = countMessageTokens(history[3]!);
    const window = fixed + needNext + needTool + 5;
    const r = buildPrompt({ instructions: "s", memoryBlocks: [], history, tools: [], contextWindow: window, reserveForReply: 0 });
    expect(r.messages.slice(1)).toEqual([history[4]!]);
    expect(r.droppedMessages).toBe(4);
  });

  test("orphan tool messages in the input are dropped; kept history never starts with tool", () => {
    const history: ChatMessage[] = [
      { role: "tool", tool_call_id: "gone", content: "orphan" },
      user("hi"),
      { role: "tool", tool_call_id: "nope", content: "orphan 2" },
      assistant("hello"),
    ];
    const r = buildPrompt({ instructions: "s", memoryBlocks: [], history, tools: [], contextWindow: 10000 });
    expect(r.messages.slice(1)).toEqual([history[1]!, history[3]!]);
    expect(r.droppedMessages).toBe(2);
  });

  test("throws context_window_exceeded when system + newest message cannot fit", () => {
    const big = user("word ".repeat(2000));
    let err: unknown;
    try {
      buildPrompt({ instructions: "s", memoryBlocks: blocks, history: [user("old"), big], tools, contextWindow: 1500 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ContextWindowExceededError);
    expect((err as ContextWindowExceededError).code).toBe("context_window_exceeded");

    // System prompt alone too big, even without history.
    expect(() =>
      buildPrompt({ instructions: "word ".repeat(2000), memoryBlocks: [], history: [], tools: [], contextWindow: 1000 }),
    ).toThrow(/context window exceeded/);
  });

  test("reserve defaults to min(1024, 25%) and can be overridden", () => {
    expect(defaultReserve(1000)).toBe(250);
    expect(defaultReserve(128000)).toBe(1024);
    const history = Array.from({ length: 40 }, (_, i) => user(`message number ${i} with some padding text`));
    const a = buildPrompt({ instructions: "s", memoryBlocks: [], history, tools: [], contextWindow: 600 });
    const b = buildPrompt({ instructions: "s", memoryBlocks: [], history, tools: [], contextWindow: 600, reserveForReply: 0 });
    expect(a.promptTokens).toBeLessThanOrEqual(450);
    expect(b.promptTokens).toBeLessThanOrEqual(600);
    expect(b.droppedMessages).toBeLessThan(a.droppedMessages);
  });
});

// ---------- property test ----------

const wordArb = fc.constantFrom("alpha", "beta", "gamma", "δέλτα", "🙂", "{", "}", "\n", "tool", "memory", "x".repeat(30), "1234");
const textArb = fc.array(wordArb, { minLength: 0, maxLength: 60 }).map((w) => w.join(" "));

type Unit =
  | { kind: "user"; text: string }
  | { kind: "assistant"; text: string }
  | { kind: "calls"; args: string[]; results: string[]; answered: number }
  | { kind: "orphan"; text: string };

const unitArb: fc.Arbitrary<Unit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("user" as const), text: textArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("assistant" as const), text: textArb }) },
  {
    weight: 3,
    arbitrary: fc
      .record({ args: fc.array(textArb, { minLength: 1, maxLength: 3 }), results: fc.array(textArb, { minLength: 3, maxLength: 3 }) })
      .chain((r) =>
        fc.integer({ min: 0, max: r.args.length }).map((answered) => ({ kind: "calls" as const, ...r, answered })),
      ),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("orphan" as const), text: textArb }) },
);

function materialise(units: Unit[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  let n = 0;
  for (const u of units) {
    if (u.kind === "user") out.push(user(u.text));
    else if (u.kind === "assistant") out.push(assistant(u.text));
    else if (u.kind === "orphan") out.push({ role: "tool", tool_call_id: `orphan_${n++}`, content: u.text });
    else {
      const ids = u.args.map(() => `call_${n++}`);
      out.push({
        role: "assistant",
        content: null,
        tool_calls: u.args.map((a, i) => ({
          id: ids[i]!,
          type: "function",
          function: { name: "send_message", arguments: JSON.stringify({ message: a }) },
        })),
      });
      for (let i = 0; i < u.answered; i++) out.push({ role: "tool", tool_call_id: ids[i]!, content: u.results[i]! });
    }
  }
  return out;
}

describe("buildPrompt property", () => {
  test("budget never exceeded, oldest dropped first, no orphan tool messages", () => {
    const seen = { threw: 0, dropped: 0, complete: 0 };
    fc.assert(
      fc.property(
        fc.array(unitArb, { maxLength: 40 }),
        fc.integer({ min: 150, max: 4000 }),
        fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }),
        fc.boolean(),
        textArb,
        (units, contextWindow, reserveForReply, withTools, instr) => {
          const history = materialise(units);
          const t = withTools ? tools : [];
          const reserve = reserveForReply ?? defaultReserve(contextWindow);
          const budget = contextWindow - reserve;
          const input = { instructions: instr, memoryBlocks: blocks, history, tools: t, contextWindow, reserveForReply };

          const { groups } = groupHistory(history);
          let r: ReturnType<typeof buildPrompt>;
          try {
            r = buildPrompt(input);
          } catch (e) {
            expect(e).toBeInstanceOf(ContextWindowExceededError);
            // Legitimate only if system + tools + newest group cannot fit.
            const sys = { role: "system" as const, content: (instr.trim() ? instr.trim() + "\n\n" : "") + renderMemoryBlocks(blocks) };
            const newest = groups.at(-1) ?? [];
            expect(sumTokens([sys, ...newest], t)).toBeGreaterThan(budget);
            seen.threw++;
            return;
          }
          if (r.droppedMessages > 0) seen.dropped++;
          else seen.complete++;

          // 1. budget
          const counted = sumTokens(r.messages, t);
          expect(counted).toBe(r.promptTokens);
          expect(counted).toBeLessThanOrEqual(budget);

          // 2. system first, then a contiguous suffix of the (orphan-free) history
          expect(r.messages[0]!.role).toBe("system");
          const kept = r.messages.slice(1);
          expect(kept.every((m) => m.role !== "system")).toBe(true);
          const cleaned = groups.flat();
          expect(kept).toEqual(cleaned.slice(cleaned.length - kept.length));
          expect(r.droppedMessages).toBe(history.length - kept.length);

          // 3. oldest first & maximal: the next older group would not have fit
          const keptGroups = groupHistory(kept).groups.length;
          if (keptGroups < groups.length) {
            const nextOlder = groups[groups.length - keptGroups - 1]!;
            expect(counted + nextOlder.reduce((n, m) => n + countMessageTokens(m), 0)).toBeGreaterThan(budget);
          }

          // 4. no orphan tool messages; never starts with tool
          if (kept.length) expect(kept[0]!.role).not.toBe("tool");
          const open = new Set<string>();
          for (const m of kept) {
            if (m.role === "tool") expect(open.has(m.tool_call_id!)).toBe(true);
            else {
              open.clear();
              for (const tc of m.tool_calls ?? []) open.add(tc.id);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
    // The generator must exercise every outcome, otherwise the property proves little.
    expect(seen.threw).toBeGreaterThan(5);
    expect(seen.dropped).toBeGreaterThan(30);
    expect(seen.complete).toBeGreaterThan(30);
  });
});
