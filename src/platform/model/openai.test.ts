import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { startFakeModel, type FakeModel } from "../../../test/support/fake-model";
import { createOpenAIProvider, parseRetryAfter } from "./openai";
import { SSEParser, StreamAccumulator } from "./sse";
import { ModelError, type ChatMessage, type ToolSpec } from "./types";

let fake: FakeModel;
beforeAll(async () => {
  fake = await startFakeModel();
});
afterAll(() => fake.stop());
beforeEach(() => {
  fake.reset();
  fake.setDefault({ content: "ok" });
});

const messages: ChatMessage[] = [
  { role: "system", content: "You are a test." },
  { role: "user", content: "Say hello" },
];
const tools: ToolSpec[] = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Weather for a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
];

function provider(extra: Partial<Parameters<typeof createOpenAIProvider>[0]> = {}) {
  return createOpenAIProvider({ baseUrl: fake.url, apiKey: "sk-test-secret", backoffBaseMs: 1, ...extra });
}

async function catchErr(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected rejection");
}

describe("non-streaming", () => {
  test("text reply, request shape, auth header", async () => {
    fake.script({ content: "Hello there!", usage: { prompt_tokens: 11, completion_tokens: 3 } });
    const reply = await provider().complete({ model: "gpt-test", messages, tools });
    expect(reply.content).toBe("Hello there!");
    expect(reply.tool_calls).toEqual([]);
    expect(reply.finish_reason).toBe("stop");
    expect(reply.model).toBe("gpt-test");
    expect(reply.usage).toEqual({ prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 });
    expect(fake.requests).toHaveLength(1);
    const r = fake.requests[0]!;
    expect(r.headers.authorization).toBe("Bearer sk-test-secret");
    expect(r.body.model).toBe("gpt-test");
    expect(r.body.messages).toEqual(messages);
    expect(r.body.tools).toEqual(tools);
    expect(r.body.stream).toBeUndefined();
  });

  test("no Authorization header without apiKey; trailing slash in baseUrl", async () => {
    const p = createOpenAIProvider({ baseUrl: fake.url + "/" });
    await p.complete({ model: "m", messages });
    expect(fake.requests[0]!.headers.authorization).toBeUndefined();
  });

  test("tool calls", async () => {
    fake.script({ tool_calls: [{ name: "get_weather", arguments: { city: "Paris" }, id: "call_a" }] });
    const reply = await provider().complete({ model: "m", messages, tools });
    expect(reply.content).toBeNull();
    expect(reply.finish_reason).toBe("tool_calls");
    expect(reply.tool_calls).toEqual([
      { id: "call_a", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
    ]);
  });

  test("usage is estimated when the provider omits it", async () => {
    fake.script({ content: "some words here", omitUsage: true });
    const reply = await provider().complete({ model: "m", messages });
    expect(reply.usage.prompt_tokens).toBeGreaterThan(5);
    expect(reply.usage.completion_tokens).toBe(3);
    expect(reply.usage.total_tokens).toBe(reply.usage.prompt_tokens + reply.usage.completion_tokens);
    expect(reply.usage.estimated).toBe(true);
  });

  test("usage the provider reports is not marked estimated", async () => {
    fake.script({ content: "hi" });
    const reply = await provider().complete({ model: "m", messages });
    expect(reply.usage.estimated).toBeUndefined();
  });

  test("dynamic reply function sees the request", async () => {
    fake.setDefault((req) => ({ content: `echo: ${req.body.messages.at(-1).content}` }));
    const reply = await provider().complete({ model: "m", messages });
    expect(reply.content).toBe("echo: Say hello");
  });

  test("invalid JSON body -> model_invalid_response, not retried", async () => {
    // Serve garbage through a custom fetch wrapper around the fake.
    const p = createOpenAIProvider({
      baseUrl: fake.url,
      fetch: (async () => new Response("not json", { status: 200, headers: { "content-type": "application/json" } })) as any,
    });
    const e = await catchErr(p.complete({ model: "m", messages }));
    expect(e).toBeInstanceOf(ModelError);
    expect(e.code).toBe("model_invalid_response");
  });
});

describe("streaming", () => {
  test("text with deltas and usage from the final chunk", async () => {
    const text = "The quick brown fox jumps over the lazy dog. Ünïcødé ✓ 😀";
    fake.script({ content: text, usage: { prompt_tokens: 42, completion_tokens: 17 } });
    const deltas: string[] = [];
    const reply = await provider().complete({ model: "m", messages, stream: true, onDelta: (d) => deltas.push(d) });
    expect(reply.content).toBe(text);
    expect(deltas.length).toBeGreaterThan(5);
    expect(deltas.join("")).toBe(text);
    expect(reply.usage).toEqual({ prompt_tokens: 42, completion_tokens: 17, total_tokens: 59 });
    expect(reply.finish_reason).toBe("stop");
    const body = fake.requests[0]!.body;
    expect(body.stream).toBe(true);
    expect(body.stream_options).toEqual({ include_usage: true });
  });

  test("tool calls with arguments split across chunks", async () => {
    const args1 = { city: "San Francisco, CA", units: "metric", days: [1, 2, 3] };
    fake.script({
      content: "Checking.",
      chunkSize: 2,
      tool_calls: [
        { name: "get_weather", arguments: args1, id: "call_1" },
        { name: "get_weather", arguments: '{"city":"Zürich"}', id: "call_2" },
      ],
    });
    const reply = await provider().complete({ model: "m", messages, tools, stream: true });
    expect(reply.content).toBe("Checking.");
    expect(reply.finish_reason).toBe("tool_calls");
    expect(reply.tool_calls.map((t) => t.id)).toEqual(["call_1", "call_2"]);
    expect(reply.tool_calls.map((t) => t.function.name)).toEqual(["get_weather", "get_weather"]);
    expect(JSON.parse(reply.tool_calls[0]!.function.arguments)).toEqual(args1);
    expect(JSON.parse(reply.tool_calls[1]!.function.arguments)).toEqual({ city: "Zürich" });
  });

  test("usage estimated when the stream has no usage chunk", async () => {
    fake.script({ content: "hello world", omitUsage: true });
    const reply = await provider().complete({ model: "m", messages, stream: true });
    expect(reply.content).toBe("hello world");
    expect(reply.usage.completion_tokens).toBe(2);
    expect(reply.usage.prompt_tokens).toBeGreaterThan(5);
    expect(reply.usage.estimated).toBe(true);
  });

  test("stream cut before any delta is retried; after deltas it is not", async () => {
    fake.script({ content: "abc", dropAfterEvents: 1 }, { content: "second" });
    const r1 = await provider().complete({ model: "m", messages, stream: true });
    expect(r1.content).toBe("second");
    expect(fake.requests).toHaveLength(2);

    fake.reset();
    fake.script({ content: "abcdefghijkl", dropAfterEvents: 3 }, { content: "never" });
    const deltas: string[] = [];
    const e = await catchErr(provider().complete({ model: "m", messages, stream: true, onDelta: (d) => deltas.push(d) }));
    expect(e).toBeInstanceOf(ModelError);
    expect(e.code).toBe("model_unavailable");
    expect(deltas.join("")).toBe("abcdef");
    expect(fake.requests).toHaveLength(1);
  });

  test("an exception thrown by onDelta propagates unchanged and is not retried", async () => {
    fake.script({ content: "abcdef" });
    const boom = new Error("consumer failed");
    const e = await catchErr(
      provider().complete({
        model: "m",
        messages,
        stream: true,
        onDelta: () => {
          throw boom;
        },
      }),
    );
    expect(e).toBe(boom);
    expect(fake.requests).toHaveLength(1);
  });
});

describe("SSE parsing", () => {
  const chunks = [
    { model: "x", choices: [{ index: 0, delta: { role: "assistant", content: "" } }] },
    { choices: [{ index: 0, delta: { content: "Hé" } }] },
    { choices: [{ index: 0, delta: { content: "llo 😀" } }] },
    { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: "c1", function: { name: "f", arguments: "" } }] } }] },
    { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"a":' } }] } }] },
    { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: "1}" } }] } }] },
    { choices: [{ index: 0, delta: {}, finish_reason: "tool_calls" }] },
    { choices: [], usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 } },
  ];

  test("property: any byte split and line ending gives the same result", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 400 }), { maxLength: 30 }),
        fc.constantFrom("\n", "\r\n", "\r"),
        fc.boolean(),
        (cuts, eol, comments) => {
          let text = comments ? `: keep-alive${eol}${eol}` : "";
          for (const c of chunks) text += `data: ${JSON.stringify(c)}${eol}${eol}${comments ? `: ping${eol}` : ""}`;
          text += `data: [DONE]${eol}${eol}`;
          const bytes = new TextEncoder().encode(text);
          const points = [...new Set(cuts.map((c) => c % bytes.length))].sort((a, b) => a - b);
          const parser = new SSEParser();
          const decoder = new TextDecoder();
          const acc = new StreamAccumulator();
          let prev = 0;
          const datas: string[] = [];
          for (const p of [...points, bytes.length]) {
            datas.push(...parser.push(decoder.decode(bytes.slice(prev, p), { stream: true })));
            prev = p;
          }
          expect(datas.at(-1)).toBe("[DONE]");
          for (const d of datas.slice(0, -1)) acc.add(JSON.parse(d));
          const reply = acc.finish({ model: "m", messages: [] });
          expect(reply.content).toBe("Héllo 😀");
          expect(reply.tool_calls).toEqual([{ id: "c1", type: "function", function: { name: "f", arguments: '{"a":1}' } }]);
          expect(reply.usage.total_tokens).toBe(11);
          expect(reply.finish_reason).toBe("tool_calls");
        },
      ),
      { numRuns: 300 },
    );
  });

  test("parseRetryAfter", () => {
    expect(parseRetryAfter("2")).toBe(2000);
    expect(parseRetryAfter("0.5")).toBe(500);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
    const d = parseRetryAfter(new Date(Date.now() + 5000).toUTCString())!;
    expect(d).toBeGreaterThan(3000);
    expect(d).toBeLessThanOrEqual(5000);
  });
});

describe("retries and errors", () => {
  test("429 then success, Retry-After honoured", async () => {
    fake.script({ status: 429, retryAfter: 1 }, { content: "finally" });
    const t0 = Date.now();
    const reply = await provider({ backoffBaseMs: 1 }).complete({ model: "m", messages });
    const elapsed = Date.now() - t0;
    expect(reply.content).toBe("finally");
    expect(fake.requests).toHaveLength(2);
    const gap = fake.requests[1]!.receivedAt - fake.requests[0]!.receivedAt;
    expect(gap).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(3000);
  });

  test("Retry-After is capped by maxBackoffMs", async () => {
    fake.script({ status: 429, retryAfter: 3600 }, { content: "ok" });
    const t0 = Date.now();
    const reply = await provider({ maxBackoffMs: 50 }).complete({ model: "m", messages });
    expect(reply.content).toBe("ok");
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  test("429 exhausted -> model_rate_limited", async () => {
    fake.setDefault({ status: 429 });
    const e = await catchErr(provider({ maxRetries: 2 }).complete({ model: "m", messages }));
    expect(e).toBeInstanceOf(ModelError);
    expect(e.code).toBe("model_rate_limited");
    expect(e.status).toBe(429);
    expect(e.retryable).toBe(true);
    expect(fake.requests).toHaveLength(3);
  });

  test("500 x N then failure -> model_unavailable after maxRetries+1 attempts", async () => {
    fake.setDefault({ status: 500 });
    const e = await catchErr(provider({ maxRetries: 3 }).complete({ model: "m", messages }));
    expect(e).toBeInstanceOf(ModelError);
    expect(e.code).toBe("model_unavailable");
    expect(e.status).toBe(500);
    expect(e.retryable).toBe(true);
    expect(e.attempts).toBe(4);
    expect(fake.requests).toHaveLength(4);
  });

  test("500, 503 then success", async () => {
    fake.script({ status: 500 }, { status: 503, body: "upstream down" }, { content: "recovered" });
    const reply = await provider().complete({ model: "m", messages, stream: true });
    expect(reply.content).toBe("recovered");
    expect(fake.requests).toHaveLength(3);
  });

  test("backoff grows exponentially", async () => {
    fake.setDefault({ status: 500 });
    await catchErr(provider({ maxRetries: 3, backoffBaseMs: 40 }).complete({ model: "m", messages }));
    const t = fake.requests.map((r) => r.receivedAt);
    // equal jitter: delay_k in [base*2^k/2, base*2^k]
    expect(t[1]! - t[0]!).toBeGreaterThanOrEqual(18);
    expect(t[2]! - t[1]!).toBeGreaterThanOrEqual(38);
    expect(t[3]! - t[2]!).toBeGreaterThanOrEqual(78);
  });

  test("400 is not retried and carries the provider message", async () => {
    fake.script({ status: 400, body: { error: { message: "messages[1].content is too long", type: "invalid_request_error" } } });
    const e = await catchErr(provider().complete({ model: "m", messages }));
    expect(e).toBeInstanceOf(ModelError);
    expect(e.code).toBe("model_bad_request");
    expect(e.status).toBe(400);
    expect(e.retryable).toBe(false);
    expect(e.message).toContain("messages[1].content is too long");
    expect(fake.requests).toHaveLength(1);
  });

  test("401/403 -> model_auth_failed, not retried, key redacted", async () => {
    fake.script({ status: 401, body: { error: { message: "Incorrect API key provided: sk-test-secret" } } }, { status: 403 });
    const e1 = await catchErr(provider().complete({ model: "m", messages }));
    expect(e1.code).toBe("model_auth_failed");
    expect(e1.status).toBe(401);
    expect(e1.message).not.toContain("sk-test-secret");
    expect(e1.message).toContain("[REDACTED]");
    expect(e1.message).toContain("MODEL_API_KEY");
    const e2 = await catchErr(provider().complete({ model: "m", messages }));
    expect(e2.code).toBe("model_auth_failed");
    expect(fake.requests).toHaveLength(2);
  });

  test("network error -> model_unavailable after retries", async () => {
    const tmp = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const port = tmp.port;
    tmp.stop(true);
    const p = createOpenAIProvider({ baseUrl: `http://user:pw@127.0.0.1:${port}/v1`, apiKey: "sk-test-secret", maxRetries: 2, backoffBaseMs: 1 });
    const e = await catchErr(p.complete({ model: "m", messages }));
    expect(e).toBeInstanceOf(ModelError);
    expect(e.code).toBe("model_unavailable");
    expect(e.attempts).toBe(3);
    // It says where it tried and what to check, without any credential.
    expect(e.message).toContain(`POST http://127.0.0.1:${port}/v1/chat/completions`);
    expect(e.message).toContain("MODEL_BASE_URL");
    for (const secret of ["sk-test-secret", "pw@"]) expect(e.message).not.toContain(secret);
  });

  test("per-attempt timeout -> retried, then model_timeout", async () => {
    fake.setDefault({ content: "late", delayMs: 2000 });
    const t0 = Date.now();
    const e = await catchErr(provider({ timeoutMs: 100, maxRetries: 1 }).complete({ model: "m", messages }));
    const elapsed = Date.now() - t0;
    expect(e).toBeInstanceOf(ModelError);
    expect(e.code).toBe("model_timeout");
    expect(e.retryable).toBe(true);
    expect(fake.requests).toHaveLength(2);
    expect(elapsed).toBeLessThan(1000);
    await fake.waitForAbort(0);
    await fake.waitForAbort(1);
  });

  test("timeout then success", async () => {
    fake.script({ content: "late", delayMs: 2000 }, { content: "fast" });
    const reply = await provider({ timeoutMs: 150 }).complete({ model: "m", messages });
    expect(reply.content).toBe("fast");
  });

  test("streaming timeout is an inactivity timeout", async () => {
    // 10 chunks 60 ms apart = ~600 ms total, but never 150 ms of silence.
    fake.script({ content: "abcdefghijklmnopqrstuvwxyz", chunkSize: 3, chunkDelayMs: 60 });
    const reply = await provider({ timeoutMs: 150 }).complete({ model: "m", messages, stream: true });
    expect(reply.content).toBe("abcdefghijklmnopqrstuvwxyz");
  });
});

describe("abort", () => {
  test("abort during a slow reply: AbortError quickly, fake sees the disconnect, no retry", async () => {
    fake.script({ content: "slow", delayMs: 5000 });
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 100);
    const e = await catchErr(provider().complete({ model: "m", messages, signal: ac.signal }));
    const elapsed = Date.now() - t0;
    expect(e.name).toBe("AbortError");
    expect(e).not.toBeInstanceOf(ModelError);
    expect(elapsed).toBeLessThan(600);
    await fake.waitForAbort(0);
    expect(fake.requests[0]!.aborted).toBe(true);
    await Bun.sleep(50);
    expect(fake.requests).toHaveLength(1);
  });

  test("abort mid-stream", async () => {
    fake.script({ content: "x".repeat(300), chunkSize: 1, chunkDelayMs: 20 });
    const ac = new AbortController();
    const deltas: string[] = [];
    const p = provider().complete({
      model: "m",
      messages,
      stream: true,
      signal: ac.signal,
      onDelta: (d) => {
        deltas.push(d);
        if (deltas.length === 3) ac.abort();
      },
    });
    const e = await catchErr(p);
    expect(e.name).toBe("AbortError");
    expect(deltas.length).toBeLessThan(10);
    await fake.waitForAbort(0);
  });

  test("abort during retry backoff", async () => {
    fake.setDefault({ status: 429, retryAfter: 30 });
    const ac = new AbortController();
    const p = provider().complete({ model: "m", messages, signal: ac.signal });
    await fake.waitForRequests(1);
    const t0 = Date.now();
    ac.abort();
    const e = await catchErr(p);
    expect(e.name).toBe("AbortError");
    expect(Date.now() - t0).toBeLessThan(200);
    expect(fake.requests).toHaveLength(1);
  });

  test("already-aborted signal never sends a request", async () => {
    const ac = new AbortController();
    ac.abort();
    const e = await catchErr(provider().complete({ model: "m", messages, signal: ac.signal }));
    expect(e.name).toBe("AbortError");
    expect(fake.requests).toHaveLength(0);
  });
});
