/**
 * GET /v1/agents/:id is answered before the framework when the token, the agent and a
 * rate-limit allowance are in memory (platform/http/fast-path.ts). It must answer exactly like
 * the framework's path, and leave to that path everything it cannot decide from memory:
 * other organizations, expired tokens, query strings, exhausted limits.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { describeReal } from "../../../test/support/backends";
import { startTestProcess, type StartOptions, type TestProcess, type TestUser } from "../../../test/support/harness";

async function fastAnswers(t: TestProcess): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const m = /agentos_http_fast_path_total\{route="\/v1\/agents\/:id"\} (\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
}

const comparable = (r: Response) => [...r.headers].filter(([k]) => !["date", "x-request-id", "x-ratelimit-remaining"].includes(k));

function fastPathSuite(opts: StartOptions) {
  let t: TestProcess;
  let off: TestProcess;
  let user: TestUser;
  let agentId: string;
  const get = (process: TestProcess, token: string, path = `/v1/agents/${agentId}`, headers: Record<string, string> = {}) =>
    fetch(`${process.url}${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });

  beforeAll(async () => {
    t = await startTestProcess(opts);
    user = await t.signup();
    const created = await t.request("POST", "/v1/agents", { token: user.token, body: { name: "fast", model: "m", instructions: "hi", memory_blocks: [{ label: "persona", value: "calm" }] } });
    expect(created.status).toBe(201);
    agentId = created.body.id;
  });
  afterAll(async () => {
    await t?.stop();
    await off?.stop();
  });

  test("a cached read is answered by the fast path with the framework's status, headers and body", async () => {
    const before = await fastAnswers(t);
    const first = await get(t, user.token, undefined, { origin: "https://app.example", "x-request-id": "trace-me-1" }); // a miss: the framework
    const second = await get(t, user.token, undefined, { origin: "https://app.example", "x-request-id": "trace-me-2" });
    expect(await fastAnswers(t)).toBe(before + 1);
    expect(second.status).toBe(200);
    expect(comparable(second)).toEqual(comparable(first));
    expect(await second.text()).toBe(await first.text());
    expect(second.headers.get("x-request-id")).toBe("trace-me-2");
    expect(second.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(Number(second.headers.get("x-ratelimit-remaining"))).toBeLessThan(Number(first.headers.get("x-ratelimit-remaining")));
    // Both paths count the request under the route's label.
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/agentos_http_requests_total\{method="GET",route="\/v1\/agents\/:id",status="200"\} \d+/);
  });

  test("another organization's token never gets the cached agent (404 from the framework)", async () => {
    const other = await t.signup();
    await get(t, other.token, "/v1/auth/me"); // its token is cached now
    const before = await fastAnswers(t);
    const r = await get(t, other.token);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("not_found");
    expect(await fastAnswers(t)).toBe(before);
  });

  test("anything not decidable from memory goes to the framework: unknown tokens, query strings, other paths", async () => {
    const before = await fastAnswers(t);
    expect((await get(t, "not-a-token")).status).toBe(401);
    expect((await get(t, user.token, `/v1/agents/${agentId}?unknown=1`)).status).toBe(400);
    expect((await get(t, user.token, `/v1/agents/${agentId.toLowerCase()}`)).status).toBe(404);
    await get(t, user.token, `/v1/agents/${agentId}/`);
    const noAuth = await fetch(`${t.url}/v1/agents/${agentId}`);
    expect(noAuth.status).toBe(401);
    expect(await fastAnswers(t)).toBe(before);
  });

  test("switched off (--http-fast-path=false): the same answers, none from the fast path", async () => {
    off = await startTestProcess({ ...opts, config: { ...opts.config, httpFastPath: false } });
    const u = await off.signup();
    const created = await off.request("POST", "/v1/agents", { token: u.token, body: { name: "fast", model: "m", instructions: "hi", memory_blocks: [{ label: "persona", value: "calm" }] } });
    const path = `/v1/agents/${created.body.id}`;
    const slow = [await get(off, u.token, path), await get(off, u.token, path)];
    expect(slow.map((r) => r.status)).toEqual([200, 200]);
    expect(comparable(slow[1])).toEqual(comparable(slow[0]));
    expect(await fastAnswers(off)).toBe(0);
    // Same header names as the fast path's answer on the other process.
    const fast = await get(t, user.token);
    expect(comparable(fast).map(([k]) => k)).toEqual(comparable(slow[1]).map(([k]) => k));
  });
}

/** The fast path spends batched rate-limit reservations: plans of 100+ requests a minute (the free plan's 60 are counted one by one at the store). */
const BIG_PLAN = { planLimitsJson: JSON.stringify({ free: { requests_per_minute: 100_000 } }) };
describe("fast path on the embedded default", () => fastPathSuite({ config: BIG_PLAN }));
describeReal("fast path [real PostgreSQL/Redis/NATS]", () => fastPathSuite({ real: true, config: BIG_PLAN }));

describe("fast path and the rate limit", () => {
  let t: TestProcess;
  afterAll(() => t?.stop());

  test("free plan (60 a minute, counted one by one at the store): never the fast path", async () => {
    const free = await startTestProcess({});
    try {
      const user = await free.signup();
      const created = await free.request("POST", "/v1/agents", { token: user.token, body: { name: "free", model: "m", instructions: "hi" } });
      for (let i = 0; i < 3; i++) expect((await free.request("GET", `/v1/agents/${created.body.id}`, { token: user.token })).status).toBe(200);
      expect(await fastAnswers(free)).toBe(0);
    } finally {
      await free.stop();
    }
  });

  test("a plan of 150 requests a minute: exactly 150 authenticated requests pass, fast or not, then 429 with Retry-After", async () => {
    t = await startTestProcess({ config: { planLimitsJson: JSON.stringify({ free: { requests_per_minute: 150 } }) } });
    const user = await t.signup();
    const created = await t.request("POST", "/v1/agents", { token: user.token, body: { name: "limited", model: "m", instructions: "hi" } });
    expect(created.status).toBe(201);
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 200; i++) {
      const r = await fetch(`${t.url}/v1/agents/${created.body.id}`, { headers: { authorization: `Bearer ${user.token}` } });
      statuses.push(r.status);
      if (r.status === 429) retryAfter ??= r.headers.get("retry-after");
    }
    // The create spent one request of the window; signup is not authenticated.
    expect(statuses.filter((s) => s === 200).length).toBe(149);
    expect(statuses.filter((s) => s === 429).length).toBe(51);
    expect(statuses.indexOf(429)).toBe(149);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(await fastAnswers(t)).toBeGreaterThan(100);
  });
});

describe("fast path with tracing", () => {
  test("is off: every request gets its server span", async () => {
    const t = await startTestProcess({ config: { otlpEndpoint: "http://127.0.0.1:9" } });
    try {
      const user = await t.signup();
      const created = await t.request("POST", "/v1/agents", { token: user.token, body: { name: "traced", model: "m", instructions: "hi" } });
      for (let i = 0; i < 3; i++) expect((await t.request("GET", `/v1/agents/${created.body.id}`, { token: user.token })).status).toBe(200);
      expect(await fastAnswers(t)).toBe(0);
    } finally {
      await t.stop();
    }
  });
});
