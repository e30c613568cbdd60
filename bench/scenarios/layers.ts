/**
 * profile (layers): what each layer of the authenticated read costs per request, measured in
 * process as CPU time (user + system, process.cpuUsage) per call over many calls — not wall
 * time, so other work on the machine inflates it far less than rps. Each layer is the code the
 * request runs, called alone with the values of a real request (a real agent read through the
 * gateway on the real back ends): the request context and id, the auth macro's token check,
 * the rate limiter, the metrics, the logging decision, response validation, structuredClone of
 * the cached value, JSON serialisation, the response headers; then the whole request through
 * the app (`app.handle`, no socket) and `/healthz` the same way (the framework's floor: routing,
 * hooks, context). What the whole request costs beyond the sum is the framework's share.
 */
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { startTestProcess } from "../../test/support/harness";
import { requestContext } from "../../src/platform/context";
import { newId } from "../../src/platform/ids";
import { createJwt } from "../../src/platform/jwt";
import { createAuthGuard } from "../../src/platform/http/auth-guard";
import { createOrgRateLimiter } from "../../src/roles/gateway/rate-limits";
import { Agent } from "../../src/roles/agents/model";
import { round } from "../lib/proc";
import { printTable } from "../lib/results";
import { BENCH_PLAN_LIMITS } from "../lib/target";

const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system; // µs
};

/** CPU µs per call of fn (sync or async), the median of 5 batches after a warm-up. */
async function cost(fn: () => unknown, n: number): Promise<number> {
  const batch = async () => {
    const t0 = cpuNow();
    for (let i = 0; i < n; i++) {
      const r = fn();
      if (r instanceof Promise) await r;
    }
    return (cpuNow() - t0) / n;
  };
  await batch();
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) xs.push(await batch());
  xs.sort((a, b) => a - b);
  return xs[2];
}

export async function measureLayers(o: { real: boolean; iterations: number }) {
  const t = await startTestProcess({ real: o.real, config: { planLimitsJson: BENCH_PLAN_LIMITS } });
  try {
    const user = await t.signup();
    const created = await t.request("POST", "/v1/agents", { token: user.token, body: { name: "bench-agent", model: "gpt-4o-mini", instructions: "You answer benchmark requests." } });
    if (created.status !== 201) throw new Error(`create agent: ${created.status}`);
    const path = `/v1/agents/${created.body.id}`;
    const app = t.process.app;
    const headers = { authorization: `Bearer ${user.token}` };
    const viaApp = (p: string) => () => requestContext.run({ requestId: newId("req"), traceparent: undefined, clientIp: undefined } as never, () => app.handle(new Request(`http://localhost${p}`, { headers })));
    const first = (await viaApp(path)()) as Response;
    if (first.status !== 200) throw new Error(`GET ${path} in process: ${first.status} ${await first.text()}`);
    const agent = await first.json();

    const jwt = createJwt(t.config.jwtSecret ?? "", 7200);
    const guard = createAuthGuard({ jwt, seed: "bench", resolveApiKey: async () => null });
    const auth = `Bearer ${user.token}`;
    const principal = await guard.authenticate(auth).catch(() => null);
    const platform = t.process.platform as any;
    const limiter = createOrgRateLimiter({ cache: platform.cache, log: platform.log, getLimits: async () => ({ requests_per_minute: 1_000_000_000 }) as never });
    const metrics = platform.metrics;
    const check = TypeCompiler.Compile(Agent);
    const json = JSON.stringify(agent);
    const n = o.iterations;
    const rows: { layer: string; "CPU µs/request": number }[] = [];
    const add = async (layer: string, fn: () => unknown, iterations = n) => rows.push({ layer, "CPU µs/request": round(await cost(fn, iterations), 2) });

    await add("request context + request id (server.ts: AsyncLocalStorage.run, newId)", () => requestContext.run({ requestId: newId("req") } as never, () => 1));
    if (principal) await add("auth macro: bearer parse + cached JWT lookup", () => guard.authenticate(auth));
    if (principal) await add("rate limiter (batched reservation, headers)", () => limiter.afterAuth(principal));
    await add("metrics: histogram observe + counter inc", () => {
      const labels = { route: "/v1/agents/:id", method: "GET", status: 200 };
      metrics.httpDuration.observe(0.001, labels);
      metrics.httpRequests.inc(labels);
    });
    await add("logging decision (level check)", () => platform.log.level === "debug" || platform.log.level === "info");
    await add("response validation (compiled TypeBox check of Agent)", () => check.Check(agent));
    await add("structuredClone of the cached agent", () => structuredClone(agent));
    await add("JSON serialisation (JSON.stringify)", () => JSON.stringify(agent));
    await add("headers + Response (content-type, request id, 3 rate-limit headers)", () =>
      new Response(json, { headers: { "content-type": "application/json", "x-request-id": "req_x", "x-ratelimit-limit": "1", "x-ratelimit-remaining": "1", "x-ratelimit-reset": "1" } }),
    );
    const layersSum = rows.reduce((s, r) => s + r["CPU µs/request"], 0);
    const per = Math.max(2000, Math.floor(n / 10));
    await add("whole request in process: app.handle(GET /v1/agents/:id), no socket", viaApp(path), per);
    await add("framework floor: app.handle(GET /healthz) (routing, hooks, context)", viaApp("/healthz"), per);
    const whole = rows.at(-2)!["CPU µs/request"];
    const floor = rows.at(-1)!["CPU µs/request"];
    rows.push({ layer: "sum of the layers above the two app.handle rows", "CPU µs/request": round(layersSum, 2) });
    rows.push({ layer: "whole − floor − layers = the route's framework work (routing, macro resolve, hooks, response mapping)", "CPU µs/request": round(whole - floor - layersSum, 2) });
    return { path, rows };
  } finally {
    await t.stop();
  }
}

export async function runLayers(o: { real: boolean; iterations: number }) {
  console.log(`\n== per-layer cost of GET /v1/agents/:id (cached), in process, ${o.real ? "real" : "embedded"} back ends (CPU time per call, median of 5 batches)`);
  const r = await measureLayers(o);
  printTable(r.rows);
  return r;
}
