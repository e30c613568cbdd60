/**
 * Nothing one tenant sends stalls the others (issue 9, item 4 and slow peers), on the
 * compiled binary, embedded and on the real backends: while each hostile input is in flight,
 * /healthz is probed every 25 ms and must answer within 100 ms each time (a bound of the
 * event loop's latency, not a benchmark; embedded, 100 ms more than an ordinary run costs,
 * since the embedded PostgreSQL runs on the event loop). The inputs: runs whose input is a 10,000 / 20,000 /
 * 200,000-character run without a space (the fake model), an http tool replying 8 kB and 1 MB
 * of one letter (and a larger reply in a run), a tool with ten `^(a+)+$` properties invoked, JSON nested 400,000 deep, a 205 kB schema registered (400)
 * and the largest allowed one (201), 200 idle SSE streams of one run, 50 bodies sent a byte at a time.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SCHEMA_LIMITS } from "../src/roles/tools/schema-engine";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./support/backends";
import { ensureBinary, startChild, type ChildProcess } from "./support/binary";
import { startFakeModel, type FakeModel } from "./support/fake-model";
import { TEST_JWT_SECRET } from "./support/harness";

const HEALTH_BOUND_MS = 100;
const BODY_TIMEOUT_MS = 1000;

/** Probes /healthz every 25 ms until stopped; the slowest answer seen. */
function probeHealth(url: string) {
  let worst = 0;
  let probes = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const res = await fetch(`${url}/healthz`);
      await res.arrayBuffer();
      worst = Math.max(worst, performance.now() - started);
      probes++;
      await Bun.sleep(25);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { worst, probes };
    },
  };
}

/** User + system CPU seconds a process has used (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * `bigReply`: the size of the larger http tool reply in a run. On the embedded default the
 * database (PGlite) runs inside the process, so storing a reply costs event-loop time in
 * proportion to its size: 200 kB there, 1 MB (the reply cap) on the real backends.
 */
function stallSuite(name: string, bigReply: number, embedded: boolean, opts: () => { env: Record<string, string>; cleanup?: () => Promise<void> }) {
  describe(name, () => {
    let child: ChildProcess;
    let fake: FakeModel;
    let letters: ReturnType<typeof Bun.serve>;
    let dataDir: string;
    let token = "";
    let agentId = "";
    const worstByInput: Record<string, number> = {};
    /**
     * The bound of a probe. Embedded, PostgreSQL itself (PGlite) runs on the event loop, so an
     * ordinary run already holds it for a while (~10-30 ms, ~100 ms on a machine loaded 4×):
     * there the input may add at most HEALTH_BOUND_MS to what an ordinary run costs.
     */
    let bound = HEALTH_BOUND_MS;
    let setup: ReturnType<typeof opts>;

    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(child.url + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as any };
    };

    /** Runs `work` while probing /healthz: the slowest probe. */
    async function probed<T>(work: () => Promise<T>): Promise<{ result: T; worst: number }> {
      const probe = probeHealth(child.url);
      try {
        const result = await work();
        const { worst, probes } = await probe.stop();
        expect(probes).toBeGreaterThan(0);
        return { result, worst };
      } finally {
        await probe.stop(); // also when `work` threw
      }
    }

    /**
     * Runs `work` while probing /healthz and asserts every probe within the bound. On a shared
     * machine one probe can miss it by scheduling alone: a `repeatable` work is then run once
     * more, and that second run must stay within the bound (a stall caused by the input, such as
     * the seconds this test was written against, fails both).
     */
    async function underProbe<T>(input: string, work: () => Promise<T>, repeatable = false): Promise<T> {
      let { result, worst } = await probed(work);
      if (worst >= bound && repeatable) {
        console.log(`${name}: ${input}: slowest /healthz ${Math.round(worst)} ms, once more`);
        ({ result, worst } = await probed(work));
      }
      worstByInput[input] = Math.round(worst);
      expect(worst).toBeLessThan(bound);
      return result;
    }

    const runToEnd = async (input: string) => {
      const thread = await api("POST", "/v1/threads", {});
      const run = await api("POST", `/v1/threads/${thread.body.id}/runs`, { agent_id: agentId, input });
      expect(run.status).toBe(201);
      const done = await api("GET", `/v1/runs/${run.body.id}/wait?timeout_s=60`);
      return done.body;
    };

    beforeAll(async () => {
      ensureBinary();
      setup = opts();
      fake = await startFakeModel();
      letters = Bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        fetch(req) {
          const q = new URL(req.url).searchParams;
          const deep = Number(q.get("deep") ?? 0);
          return new Response(deep ? "[".repeat(deep) + "]".repeat(deep) : "a".repeat(Number(q.get("n"))));
        },
      });
      dataDir = mkdtempSync(join(tmpdir(), "agentos-stalls-"));
      child = await startChild([`--data-dir=${dataDir}`], {
        env: {
          MODEL_BASE_URL: fake.url,
          AGENTOS_ALLOW_PRIVATE_TARGETS: "true",
          AGENTOS_BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
          AGENTOS_DELTA_FLUSH_MS: "20",
          ...setup.env,
        },
      });
      const signup = await fetch(`${child.url}/v1/auth/signup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: `${uniqueName("stall")}@example.com`, password: "stalls-password-1" }),
      }).then((r) => r.json() as Promise<any>);
      token = signup.access_token;
      expect((await api("PUT", "/v1/billing/plan", { plan: "enterprise" })).status).toBe(200);
      agentId = (await api("POST", "/v1/agents", { name: "stalls", model: "fake-model", context_window: 2_000_000 })).body.id;
      // One ordinary run first: the process's one-time warm-up (first queries, code paths) is not what is measured.
      expect((await runToEnd("hello")).status).toBe("completed");
      if (embedded) {
        const ordinary = await probed(() => runToEnd("hello again"));
        bound = HEALTH_BOUND_MS + ordinary.worst;
        worstByInput["(ordinary run: the embedded baseline)"] = Math.round(ordinary.worst);
      }
    }, 120_000);

    afterAll(async () => {
      console.log(`${name}: slowest /healthz (ms) per input`, worstByInput);
      await child?.stop();
      fake?.stop();
      letters?.stop(true);
      rmSync(dataDir, { recursive: true, force: true });
      await setup?.cleanup?.();
    });

    test("runs whose input is 10,000, 20,000 and 200,000 characters without a space", async () => {
      for (const n of [10_000, 20_000, 200_000]) {
        const run = await underProbe(`run input ${n} chars`, () => runToEnd("a".repeat(n)), true);
        expect(run.status).toBe("completed");
      }
      // The model saw the whole input, and the prompt was counted (a plausible token count).
      const last = fake.requests.at(-1)!.body.messages.at(-1);
      expect(last.content).toHaveLength(200_000);
    }, 120_000);

    test(`an http tool replying 8 kB, 1 MB and ${bigReply} bytes of one letter, invoked and in a run`, async () => {
      const tool = await api("POST", "/v1/tools", { name: "letters", kind: "http", config: { url: `http://127.0.0.1:${letters.port}/?n=8000` } });
      expect(tool.status).toBe(201);
      const invoked = await underProbe("http tool 8 kB invoke", () => api("POST", `/v1/tools/${tool.body.id}/invoke`, { arguments: {} }), true);
      expect(invoked.body.ok).toBe(true);
      expect(invoked.body.output).toHaveLength(8000);
      const mega = await api("POST", "/v1/tools", { name: "letters_1mb", kind: "http", config: { url: `http://127.0.0.1:${letters.port}/?n=1000000` } });
      const megaInvoked = await underProbe("http tool 1 MB invoke", () => api("POST", `/v1/tools/${mega.body.id}/invoke`, { arguments: {} }), true);
      expect(megaInvoked.body.output).toHaveLength(1_000_000);
      const big = await api("POST", "/v1/tools", { name: "letters_big", kind: "http", config: { url: `http://127.0.0.1:${letters.port}/?n=${bigReply}` } });
      const withTool = (await api("PATCH", `/v1/agents/${agentId}`, { tools: [tool.body.id, big.body.id] })).body;
      expect(withTool.tools).toHaveLength(2);
      fake.script({ tool_calls: [{ name: "letters", arguments: {} }, { name: "letters_big", arguments: {} }] }, { content: "read them" });
      const run = await underProbe(`http tool 8 kB + ${bigReply} B in a run`, () => runToEnd("call both tools"));
      expect(run.status).toBe("completed");
      const toolMessages = fake.requests.at(-1)!.body.messages.filter((m: any) => m.role === "tool");
      expect(toolMessages).toHaveLength(2);
      expect(toolMessages.some((m: any) => m.content.length >= 8000 && m.content.length < 9000)).toBe(true);
      expect(toolMessages.some((m: any) => m.content.length >= bigReply)).toBe(true);
      await api("PATCH", `/v1/agents/${agentId}`, { tools: [] });
    }, 120_000);

    test("an http tool replying JSON nested 400,000 levels deep: kept as text, not parsed", async () => {
      const tool = await api("POST", "/v1/tools", { name: "deep", kind: "http", config: { url: `http://127.0.0.1:${letters.port}/?deep=400000` } });
      const invoked = await underProbe("http tool, JSON 400,000 levels deep", () => api("POST", `/v1/tools/${tool.body.id}/invoke`, { arguments: {} }), true);
      expect(invoked.status).toBe(200);
      expect(invoked.body.ok).toBe(true);
      expect(invoked.body.output).toHaveLength(800_000);
    }, 60_000);

    test("a tool with ten ^(a+)+$ properties, invoked with 'aaaa…!' values", async () => {
      const properties: Record<string, unknown> = {};
      for (let i = 0; i < 10; i++) properties[`p${i}`] = { type: "string", pattern: "^(a+)+$" };
      const tool = await api("POST", "/v1/tools", { name: "redos", kind: "http", parameters: { type: "object", properties }, config: { url: `http://127.0.0.1:${letters.port}/?n=1` } });
      expect(tool.status).toBe(201);
      for (const n of [30, 100_000]) {
        const args = Object.fromEntries(Object.keys(properties).map((k) => [k, `${"a".repeat(n)}!`]));
        const invoked = await underProbe(`ten ReDoS patterns, values of ${n} chars`, () => api("POST", `/v1/tools/${tool.body.id}/invoke`, { arguments: args }), true);
        expect(invoked.status).toBe(200);
        expect(invoked.body.ok).toBe(false);
        expect(invoked.body.error.code).toBe("invalid_arguments");
      }
      const backref = await api("POST", "/v1/tools", { name: "backref", kind: "client", parameters: { type: "object", properties: { word: { type: "string", pattern: "(\\w)\\1" } } } });
      expect(backref.status).toBe(400);
      expect(backref.body.error.message).toContain("parameters.properties.word.pattern");
    }, 60_000);

    test("a 205 kB parameters schema is refused naming the limit; the largest allowed one registers and validates", async () => {
      const hugeProps: Record<string, unknown> = {};
      for (let i = 0; i < 2500; i++) hugeProps[`property_number_${i}`] = { type: "string", description: "x".repeat(40) };
      const huge = { type: "object", properties: hugeProps };
      expect(JSON.stringify(huge).length).toBeGreaterThan(200_000);
      const refused = await underProbe("205 kB schema", () => api("POST", "/v1/tools", { name: "huge", kind: "client", parameters: huge }), true);
      expect(refused.status).toBe(400);
      expect(refused.body.error.code).toBe("invalid_parameters_schema");
      expect(refused.body.error.message).toContain(`the limit is ${SCHEMA_LIMITS.bytes}`);

      const properties: Record<string, unknown> = {};
      for (let i = 0; i < SCHEMA_LIMITS.properties / 2 - 10; i++) {
        properties[`p${i}`] = { type: "object", properties: { v: { type: "string", maxLength: 10, pattern: "^[a-z]+$", format: "email" } }, required: ["v"] };
      }
      let attempt = 0;
      const largest = await underProbe(
        "largest allowed schema (64 kB)",
        () => api("POST", "/v1/tools", { name: `largest_${attempt++}`, kind: "http", parameters: { type: "object", properties }, config: { url: `http://127.0.0.1:${letters.port}/?n=1` } }),
        true,
      );
      expect(largest.status).toBe(201);
      // Not repeatable: a second invoke finds the validator compiled.
      const invoked = await underProbe("largest allowed schema, first invoke", () => api("POST", `/v1/tools/${largest.body.id}/invoke`, { arguments: { p0: { v: "nope" } } }));
      expect(invoked.body.error.code).toBe("invalid_arguments");
    }, 60_000);

    test("200 idle SSE streams of one run", async () => {
      // The model answers after the probed window: 200 streams ending at once is work for this test process, not the server.
      fake.script({ content: "slow", delayMs: 6000 });
      const thread = await api("POST", "/v1/threads", {});
      const run = (await api("POST", `/v1/threads/${thread.body.id}/runs`, { agent_id: agentId, input: "wait" })).body;
      const controller = new AbortController();
      const streams = await Promise.all(
        Array.from({ length: 200 }, () => fetch(`${child.url}/v1/runs/${run.id}/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal })),
      );
      expect(streams.every((s) => s.status === 200)).toBe(true);
      const texts = streams.map((s) => s.text().catch(() => ""));
      const cpuBefore = cpuSeconds(child.proc.pid);
      const idleSince = performance.now();
      await underProbe("200 idle SSE streams", () => Bun.sleep(1500), true);
      const idleSeconds = (performance.now() - idleSince) / 1000;
      console.log(`${name}: CPU of the server with 200 idle SSE streams: ${Math.round(((cpuSeconds(child.proc.pid) - cpuBefore) / idleSeconds) * 100)} % of a core`);
      const ends = await Promise.all(texts);
      controller.abort();
      // Every stream saw the run to its end.
      expect(ends.filter((t) => t.includes("event: run.completed")).length).toBe(200);
    }, 60_000);

    test("50 request bodies sent a byte at a time are answered 408 and closed", async () => {
      const slowBodies = async () => {
        const seen = Array.from({ length: 50 }, () => ({ reply: "", closed: false }));
        const sockets = await Promise.all(
          seen.map((s) =>
            Bun.connect({
              hostname: "127.0.0.1",
              port: child.port,
              socket: {
                data: (_sock, d) => void (s.reply += d.toString()),
                close: () => void (s.closed = true),
                error() {},
              },
            }),
          ),
        );
        for (const socket of sockets) {
          socket.write(`POST /v1/agents HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{`);
        }
        const started = Date.now();
        while (Date.now() - started < BODY_TIMEOUT_MS + 3000 && !seen.every((s) => s.closed)) {
          sockets.forEach((socket, i) => !seen[i]!.closed && socket.write(" "));
          await Bun.sleep(100);
        }
        return seen;
      };
      const seen = await underProbe("50 slow bodies", slowBodies, true);
      for (const s of seen) {
        expect(s.closed).toBe(true);
        expect(s.reply).toStartWith("HTTP/1.1 408");
        expect(s.reply).toContain('"code":"request_timeout"');
      }
      // The server still takes bodies that arrive in time.
      expect((await api("POST", "/v1/agents", { name: "after-slow-bodies", model: "fake-model" })).status).toBe(201);
    }, 30_000);
  });
}

stallSuite("no tenant stalls the others: compiled binary, embedded default", 200_000, true, () => ({ env: {} }));

await describeReal("no tenant stalls the others: compiled binary, real backends", () => {
  const namespace = uniqueName("stalls");
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  stallSuite("real PostgreSQL/Redis/NATS", 1_000_000, false, () => ({
    env: { DATABASE_URL: db.url, REDIS_URL: REAL_URLS.redis, NATS_URL: REAL_URLS.nats, JWT_SECRET: TEST_JWT_SECRET, AGENTOS_NAMESPACE: namespace },
    cleanup: async () => {
      await db.drop();
      await dropNatsNamespace(namespace);
      await dropRedisNamespace(namespace);
    },
  }));
});
