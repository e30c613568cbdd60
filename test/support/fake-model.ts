/**
 * Fake OpenAI-compatible Chat Completions server for tests (Bun.serve on 127.0.0.1:0).
 *
 *   const fake = await startFakeModel();
 *   fake.script({ content: "hi" }, { tool_calls: [{ name: "f", arguments: { a: 1 } }] }, { status: 429, retryAfter: 1 });
 *   const provider = createOpenAIProvider({ baseUrl: fake.url });
 *   ...
 *   expect(fake.requests[0].body.messages).toEqual(...);
 *   fake.stop();
 *
 * Scripted replies are consumed in order, one per POST /v1/chat/completions; when the queue is
 * empty the default reply (setDefault) is used. Functions get the recorded request and return a
 * reply (dynamic behaviour). `delayMs` delays the response (abortable: a client disconnect sets
 * `aborted` on the recorded request). Works for both `stream: true` (SSE) and plain JSON.
 *
 * Like a real model it honours the request's `tool_choice` (none: no tool calls; required: at
 * least one — the first listed tool with `{}` when the script has none; a named function: only
 * calls to it) and `parallel_tool_calls: false` (at most one call per reply); `json` answers
 * with that value as JSON text and `invalidJson` with broken JSON (structured-output tests).
 *
 * POST /v1/embeddings answers deterministic vectors in which synonyms are close: each group
 * of SYNONYM_GROUPS is one "concept" dimension, any other word lands (with a smaller weight)
 * in one of a few hashed dimensions. So "automobile" and "car" point the same way while
 * sharing no letters. `embeddingsDown(true)` makes it answer 503 (an embedding outage).
 *
 * Summarize requests of context compaction (their system message starts with SUMMARIZE_MARKER)
 * are answered by the summarizer, not from the queue: by default a summary listing every
 * `fact-N` word of the previous summary and the folded messages (setSummarizer changes it).
 */
import { SUMMARIZE_MARKER } from "../../src/runs/compaction";

export type FakeUsage = { prompt_tokens: number; completion_tokens: number; total_tokens: number };

export type FakeToolCall = { name: string; arguments: object | string; id?: string };

export type FakeReplySpec = {
  content?: string | null;
  tool_calls?: FakeToolCall[];
  /** Answer with this value serialised as JSON (a schema-violating value is just another value). */
  json?: unknown;
  /** Answer with text that is not valid JSON. */
  invalidJson?: boolean;
  /** Return every scripted tool call even when the request says parallel_tool_calls: false (a model that ignores it). */
  ignoreParallelToolCalls?: boolean;
  /** Error reply: HTTP status (e.g. 429, 500, 400, 401). */
  status?: number;
  /** Error body: object (sent as JSON) or string. Default: OpenAI-style `{error:{message,type,code}}`. */
  body?: unknown;
  /** Retry-After header value (seconds, or any string). */
  retryAfter?: number | string;
  /** Wait before answering (abortable). */
  delayMs?: number;
  /** Streaming only: wait between SSE chunks (abortable). */
  chunkDelayMs?: number;
  /** Streaming only: content characters per chunk (default 3) / argument characters per chunk (default 5). */
  chunkSize?: number;
  /** Override (part of) the reported usage. */
  usage?: Partial<FakeUsage>;
  /** Do not report usage at all (to exercise client-side estimation). */
  omitUsage?: boolean;
  finish_reason?: string;
  model?: string;
  /** Streaming only: cut the connection after this many SSE events, without [DONE]. */
  dropAfterEvents?: number;
};

export type FakeRequest = {
  body: any;
  headers: Record<string, string>;
  receivedAt: number;
  /** True once the client disconnected before the reply was complete. */
  aborted?: boolean;
  abortedAt?: number;
};

export type FakeReply = FakeReplySpec | ((req: FakeRequest) => FakeReplySpec | Promise<FakeReplySpec>);

export type FakeModel = {
  /** Base URL ending in /v1, e.g. http://127.0.0.1:41234/v1 */
  url: string;
  requests: FakeRequest[];
  script(...replies: FakeReply[]): void;
  setDefault(reply: FakeReply): void;
  /** Answers summarize requests (default: defaultSummary). */
  setSummarizer(reply: FakeReply): void;
  /** The recorded summarize requests / the other (chat) requests, in order. */
  summarizeRequests(): FakeRequest[];
  chatRequests(): FakeRequest[];
  /** Clears the queue and recorded requests (default reply kept). */
  reset(): void;
  /** Resolves when at least n requests were received. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves when request i was aborted by the client. */
  waitForAbort(i: number, timeoutMs?: number): Promise<void>;
  stop(): void;
  /** Inputs of the POST /v1/embeddings requests received (one array per request). */
  embeddingRequests: { model: string; input: string[]; authorization?: string }[];
  /** While true, /v1/embeddings answers 503. */
  embeddingsDown(down: boolean): void;
};

/** Words that mean the same thing (for the fake embeddings): one concept dimension per group. */
export const SYNONYM_GROUPS: string[][] = [
  ["car", "automobile", "vehicle", "sedan", "drive", "drives"],
  ["dog", "puppy", "canine", "hound"],
  ["cat", "kitten", "feline"],
  ["doctor", "physician", "gp", "medic", "clinic"],
  ["movie", "film", "films", "cinema", "movies"],
  ["house", "home", "residence", "apartment", "flat", "live", "lives"],
  ["job", "employment", "occupation", "work", "works", "career", "employer"],
  ["salary", "income", "pay", "wage", "earns", "earn"],
  ["sick", "ill", "unwell", "flu", "fever"],
  ["travel", "trip", "journey", "vacation", "holiday", "visit"],
  ["food", "meal", "dinner", "lunch", "cuisine", "dish", "eat", "eats"],
  ["phone", "smartphone", "mobile", "cellphone"],
  ["music", "song", "songs", "tune", "melody", "band"],
  ["child", "kid", "kids", "children", "son", "daughter"],
  ["wife", "husband", "spouse", "partner", "married"],
  ["birthday", "born"],
  ["allergy", "allergic", "intolerant", "intolerance"],
  ["peanut", "peanuts", "nut", "nuts"],
  ["book", "books", "novel", "novels", "reading", "read"],
  ["exercise", "workout", "gym", "running", "jogging", "train"],
  ["sleep", "insomnia", "nap", "asleep"],
  ["coffee", "espresso", "latte", "caffeine"],
  ["meeting", "appointment", "call", "standup"],
  ["password", "credentials", "login"],
  ["garden", "plants", "flowers", "gardening"],
];
const HASHED_DIMS = 16;
const STOPWORDS = new Set("a an the is are was were be of to in on at for and or my our your his her their what which who does do did with by from it its that this user user's users".split(" "));

/** The fake embedding of `text`: concept dimensions for synonyms, hashed ones for other words (unit length). */
export function fakeEmbedding(text: string): number[] {
  const v = new Array(SYNONYM_GROUPS.length + HASHED_DIMS).fill(0);
  for (const word of text.toLowerCase().match(/[a-z0-9']+/g) ?? []) {
    if (STOPWORDS.has(word)) continue;
    const group = SYNONYM_GROUPS.findIndex((g) => g.includes(word));
    if (group >= 0) v[group] += 1;
    else v[SYNONYM_GROUPS.length + (Bun.hash.crc32(word) % HASHED_DIMS)] += 0.35;
  }
  if (v.every((x) => x === 0)) v[v.length - 1] = 1;
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return v.map((x) => x / norm);
}

const encoder = new TextEncoder();

function roughTokens(s: string): number {
  return Math.ceil(s.length / 4);
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`fake model: timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

export const isSummarizeRequest = (body: any) => typeof body?.messages?.[0]?.content === "string" && body.messages[0].content.startsWith(SUMMARIZE_MARKER);

/** The default summary: `SUMMARY(<lines folded>): fact-1 fact-2 …` (facts of the previous summary and of the new messages). */
export function defaultSummary(req: FakeRequest): FakeReplySpec {
  const text = String(req.body.messages.at(-1)?.content ?? "");
  const lines = text.split("\n").filter((l) => /^(user|assistant|tool result|system): /.test(l)).length;
  const facts = [...new Set(text.match(/\bfact-\d+\b/g) ?? [])];
  return { content: `SUMMARY(${lines}): ${facts.join(" ")}` };
}

/** The scripted reply as a model obeying tool_choice, parallel_tool_calls and the JSON switches would give it. */
function honourRequest(spec: FakeReplySpec, body: any): FakeReplySpec {
  let out: FakeReplySpec = spec;
  if (spec.json !== undefined) out = { ...out, content: JSON.stringify(spec.json) };
  if (spec.invalidJson) out = { ...out, content: '{"answer": "unterminated' };
  const choice = body.tool_choice;
  const calls = out.tool_calls ?? [];
  const firstTool: string | undefined = body.tools?.[0]?.function?.name;
  if (choice === "none" && calls.length) {
    out = { ...out, tool_calls: [], content: out.content ?? "answered without tools (tool_choice none)" };
  } else if (choice === "required" && !calls.length && firstTool) {
    out = { ...out, tool_calls: [{ name: firstTool, arguments: {} }] };
  } else if (choice && typeof choice === "object") {
    const name = choice.function?.name;
    const named = calls.filter((c) => c.name === name);
    out = { ...out, tool_calls: named.length ? named : [{ name, arguments: {} }] };
  }
  if (body.parallel_tool_calls === false && !spec.ignoreParallelToolCalls && (out.tool_calls?.length ?? 0) > 1) out = { ...out, tool_calls: out.tool_calls!.slice(0, 1) };
  return out;
}

export async function startFakeModel(): Promise<FakeModel> {
  let summarizer: FakeReply = defaultSummary;
  const queue: FakeReply[] = [];
  let defaultReply: FakeReply = { content: "ok" };
  const requests: FakeRequest[] = [];
  const embeddingRequests: FakeModel["embeddingRequests"] = [];
  let embeddingsAreDown = false;
  let seq = 0;

  async function handleEmbeddings(req: Request): Promise<Response> {
    const body = (await req.json().catch(() => ({}))) as { model?: string; input?: string | string[] };
    const input = typeof body.input === "string" ? [body.input] : Array.isArray(body.input) ? body.input : [];
    embeddingRequests.push({ model: String(body.model), input, authorization: req.headers.get("authorization") ?? undefined });
    if (embeddingsAreDown) return Response.json({ error: { message: "embeddings unavailable", type: "server_error" } }, { status: 503 });
    return Response.json({
      object: "list",
      model: body.model,
      data: input.map((text, index) => ({ object: "embedding", index, embedding: fakeEmbedding(text) })),
      usage: { prompt_tokens: input.reduce((n, t) => n + roughTokens(t), 0), total_tokens: input.reduce((n, t) => n + roughTokens(t), 0) },
    });
  }

  async function handleChat(req: Request): Promise<Response> {
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => (headers[k] = v));
    let body: any;
    try {
      body = await req.json();
    } catch {
      body = undefined;
    }
    const rec: FakeRequest = { body, headers, receivedAt: Date.now() };
    requests.push(rec);
    req.signal.addEventListener(
      "abort",
      () => {
        rec.aborted = true;
        rec.abortedAt = Date.now();
      },
      { once: true },
    );

    if (!body || !Array.isArray(body.messages)) {
      return Response.json({ error: { message: "invalid request body", type: "invalid_request_error" } }, { status: 400 });
    }

    const next = isSummarizeRequest(body) ? summarizer : queue.length > 0 ? queue.shift()! : defaultReply;
    const spec: FakeReplySpec = honourRequest(typeof next === "function" ? await next(rec) : next, body);

    if (spec.delayMs && spec.delayMs > 0) {
      const ok = await abortableSleep(spec.delayMs, req.signal);
      if (!ok) return new Response(null, { status: 499 }); // client is gone; nobody reads this
    }

    if (spec.status && spec.status >= 400) {
      const h: Record<string, string> = {};
      if (spec.retryAfter !== undefined) h["retry-after"] = String(spec.retryAfter);
      if (typeof spec.body === "string") return new Response(spec.body, { status: spec.status, headers: h });
      const errBody = spec.body ?? {
        error: {
          message: `fake error ${spec.status}`,
          type: spec.status === 429 ? "rate_limit_error" : spec.status >= 500 ? "server_error" : "invalid_request_error",
          code: null,
        },
      };
      return Response.json(errBody, { status: spec.status, headers: h });
    }

    const id = `chatcmpl-fake-${++seq}`;
    const model = spec.model ?? String(body.model ?? "fake-model");
    const created = Math.floor(Date.now() / 1000);
    const toolCalls = (spec.tool_calls ?? []).map((tc, i) => ({
      id: tc.id ?? `call_${seq}_${i}`,
      type: "function" as const,
      function: { name: tc.name, arguments: typeof tc.arguments === "string" ? tc.arguments : JSON.stringify(tc.arguments) },
    }));
    const content = spec.content === undefined ? (toolCalls.length ? null : "") : spec.content;
    const finish = spec.finish_reason ?? (toolCalls.length ? "tool_calls" : "stop");
    const prompt_tokens = roughTokens(JSON.stringify(body.messages) + (body.tools ? JSON.stringify(body.tools) : ""));
    const completion_tokens = roughTokens((content ?? "") + toolCalls.map((t) => t.function.name + t.function.arguments).join(""));
    const usage: FakeUsage = { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens, ...spec.usage };
    if (spec.usage && spec.usage.total_tokens === undefined) usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;

    if (!body.stream) {
      const message: Record<string, unknown> = { role: "assistant", content };
      if (toolCalls.length) message.tool_calls = toolCalls;
      return Response.json({
        id,
        object: "chat.completion",
        created,
        model,
        choices: [{ index: 0, message, finish_reason: finish }],
        ...(spec.omitUsage ? {} : { usage }),
      });
    }

    // ---- streaming ----
    const base = { id, object: "chat.completion.chunk", created, model };
    const events: string[] = [];
    const chunk = (delta: object, finish_reason: string | null = null) =>
      JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason }] });
    events.push(chunk({ role: "assistant", content: "" }));
    const csize = Math.max(1, spec.chunkSize ?? 3);
    if (content) for (let i = 0; i < content.length; i += csize) events.push(chunk({ content: content.slice(i, i + csize) }));
    const asize = Math.max(1, spec.chunkSize ?? 5);
    toolCalls.forEach((tc, index) => {
      events.push(chunk({ tool_calls: [{ index, id: tc.id, type: "function", function: { name: tc.function.name, arguments: "" } }] }));
      const a = tc.function.arguments;
      for (let i = 0; i < a.length; i += asize) events.push(chunk({ tool_calls: [{ index, function: { arguments: a.slice(i, i + asize) } }] }));
    });
    events.push(chunk({}, finish));
    if (!spec.omitUsage && body.stream_options?.include_usage) {
      events.push(JSON.stringify({ ...base, choices: [], usage }));
    }
    events.push("[DONE]");
    const limit = spec.dropAfterEvents ?? Infinity;

    let i = 0;
    let finished = false;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (i >= events.length || i >= limit) {
          controller.close();
          return;
        }
        if (spec.chunkDelayMs && i > 0) {
          const ok = await abortableSleep(spec.chunkDelayMs, req.signal);
          if (!ok) {
            controller.close();
            return;
          }
        }
        const ev = `data: ${events[i++]}\n\n`;
        // Split an event across two writes to make the client cope with partial lines.
        const cut = Math.floor(ev.length / 2);
        controller.enqueue(encoder.encode(ev.slice(0, cut)));
        controller.enqueue(encoder.encode(ev.slice(cut)));
        if (i >= events.length) {
          finished = true;
          controller.close();
        }
      },
      cancel() {
        if (finished) return;
        rec.aborted = true;
        rec.abortedAt ??= Date.now();
      },
    });
    return new Response(stream, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" },
    });
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      if (req.method === "POST" && path === "/v1/chat/completions") return handleChat(req);
      if (req.method === "POST" && path === "/v1/embeddings") return handleEmbeddings(req);
      if (req.method === "GET" && path === "/v1/models") {
        return Response.json({ object: "list", data: [{ id: "fake-model", object: "model", owned_by: "fake" }] });
      }
      return Response.json({ error: { message: `not found: ${req.method} ${path}` } }, { status: 404 });
    },
  });

  return {
    url: `http://127.0.0.1:${server.port}/v1`,
    requests,
    script: (...replies) => void queue.push(...replies),
    setDefault: (r) => void (defaultReply = r),
    setSummarizer: (r) => void (summarizer = r),
    summarizeRequests: () => requests.filter((r) => isSummarizeRequest(r.body)),
    chatRequests: () => requests.filter((r) => !isSummarizeRequest(r.body)),
    reset: () => {
      queue.length = 0;
      requests.length = 0;
    },
    waitForRequests: (n, timeoutMs = 2000) => until(() => requests.length >= n, timeoutMs, `${n} requests`),
    waitForAbort: (i, timeoutMs = 2000) => until(() => requests[i]?.aborted === true, timeoutMs, `abort of request ${i}`),
    stop: () => void server.stop(true),
    embeddingRequests,
    embeddingsDown: (down) => void (embeddingsAreDown = down),
  };
}
