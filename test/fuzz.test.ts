/**
 * Schemathesis-style robustness (SPEC §3, issue 6 part 4), driven by the OpenAPI document the
 * process serves at /swagger/json — every operation in it, discovered at run time:
 *   - generated requests (valid bodies/queries from the JSON Schemas, and mutations of them),
 *     a fixed hostile set per operation (paths, Authorization, malformed/oversized/deep bodies,
 *     content types, hostile numbers and strings, Idempotency-Key lengths), hostile paths and
 *     raw protocol abuse: zero 5xx, every non-2xx in the error shape, every 2xx documented and
 *     matching its schema, input the schema rejects gets a 4xx, the process stays up;
 *   - a deleted resource then answers 404;
 *   - cross-organization probes: the second organization gets 404 on every resource of the
 *     first (GET/PUT/PATCH/DELETE/POST on items and nested collections) and its lists never
 *     contain the first organization's ids.
 *
 *   - the regression corpus (test/fuzz/corpus/*.json): every input that ever failed, replayed
 *     with the status and error code it must get.
 *
 * Deterministic in CI: fixed seeds (FIXED_SEEDS) plus the corpus. `FUZZ_RUNS=<n>` sets the
 * generated requests per operation and kind (default 40, split over the seeds);
 * `FUZZ_SEED=<n>[,<n>…]` replays given seeds; `FUZZ_SEED=random FUZZ_RUNS=2000` is the long
 * local exploration (the seed is printed); `FUZZ_SAVE=<dir>` writes findings as corpus files;
 * `FUZZ_BUDGET_MS` caps the generated part (default 60 s; unlimited when FUZZ_RUNS is set).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { HOSTILE_PATHS, toJsonText } from "./support/fuzz/hostile";
import { createAjv, operationsOf, pathParamNames, Validators, type Operation } from "./support/fuzz/openapi";
import { Oracle, describeRequest, type FuzzRequest } from "./support/fuzz/oracle";
import { rawCases, rawRequest } from "./support/fuzz/raw-http";
import { chunkedOversize, deepNestingRequests, generatedRequests, hostileRequests, validBody, type GenContext } from "./support/fuzz/requests";
import { Resources, fillPath, type Resource, type User } from "./support/fuzz/resources";
import { corpusRequest, loadCorpus, saveFinding } from "./support/fuzz/corpus";
import { startChild } from "./support/binary";
import { answerMcp, isMcpRequest } from "./support/mcp-server";
import { startTestProcess, type TestProcess } from "./support/harness";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
/** The seeds CI runs: fixed, so a green run means the same thing every time. */
const FIXED_SEEDS = [1, 20_260_901];
const SEEDS =
  process.env.FUZZ_SEED === "random" ? [Math.floor(Math.random() * 2 ** 31)] : process.env.FUZZ_SEED ? process.env.FUZZ_SEED.split(",").map(Number) : FIXED_SEEDS;
const SEED = SEEDS[0];
const SAVE_DIR = process.env.FUZZ_SAVE;
const BUDGET_MS = Number(process.env.FUZZ_BUDGET_MS ?? (process.env.FUZZ_RUNS ? Infinity : 60_000));
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 8);
/** FUZZ_ONLY=<regex>: fuzz only the operations whose "METHOD /path" matches (debugging). */
const ONLY = process.env.FUZZ_ONLY ? new RegExp(process.env.FUZZ_ONLY) : undefined;
const VERBOSE = process.env.FUZZ_VERBOSE === "1";
const timings: [string, number, number][] = [];
/** Plans without a practical rate limit or quota: the fuzz must reach the handlers, not the 429. */
const UNLIMITED_PLANS = JSON.stringify(
  Object.fromEntries(["free", "pro", "business", "enterprise"].map((p) => [p, { requests_per_minute: 100_000_000, runs_per_month: 100_000_000, tokens_per_month: 100_000_000_000 }])),
);

let proc: TestProcess;
let doc: any;
let ops: Operation[];
let validators: Validators;
let replyValidators: Validators;
let sink: { url: string; hits: number; stop(): void };
/** Operations the document marks as needing a bearer token that answer without one. */
const publicDespiteDoc: string[] = [];
let coercing: Validators;
let resources: Resources;
let userA: User;
let userB: User;
const stats: Record<string, number> = {};

const ORDER = ["POST", "GET", "PUT", "PATCH", "DELETE"];
const byMethod = (a: Operation, b: Operation) => ORDER.indexOf(a.method) - ORDER.indexOf(b.method) || a.path.localeCompare(b.path);

function genContext(user: User, seed: number, runs = RUNS): GenContext {
  return { resources, user, validators, coercing, maxBodyBytes: proc.config.maxBodyBytes, runs, seed };
}

function assertClean(oracle: Oracle, phase: string) {
  stats[phase] = oracle.sent;
  const statuses = [...oracle.byStatus.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}:${n}`).join(" ");
  console.log(`fuzz[${phase}] seeds=${SEEDS.join(",")} sent=${oracle.sent} (${oracle.coded} with an exact error code) statuses ${statuses}`);
  if (oracle.undocumented.size) {
    console.log(`fuzz[${phase}] undocumented non-2xx statuses (not failed): ${[...oracle.undocumented].map(([k, s]) => `${k} → ${[...s].join(",")}`).join("; ")}`);
  }
  if (oracle.slow.length) console.log(`fuzz[${phase}] ${oracle.slow.length} slow replies (not failed; > ${oracle.slowMs} ms):\n  ${oracle.slow.slice(0, 10).join("\n  ")}`);
  const report = oracle.report();
  if (report) console.log(`fuzz[${phase}] FINDINGS (seeds ${SEEDS.join(",")}; FUZZ_SEED=${SEEDS.join(",")} replays them):\n${report}`);
  if (SAVE_DIR) for (const f of oracle.findings.values()) if (f.first) saveFinding(SAVE_DIR, f.check, f.first);
  expect(report).toBe("");
}

async function asUser(user: User, method: string, path: string, body?: unknown) {
  const res = await fetch(proc.url + path, {
    method,
    headers: { authorization: `Bearer ${user.token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : toJsonText(body),
  });
  const text = await res.text();
  return { status: res.status, text };
}

beforeAll(async () => {
  proc = await startTestProcess({ config: { planLimitsJson: UNLIMITED_PLANS } });
  // The document is read before any other request: Elysia adds `additionalProperties: false`
  // to a route's body schema when it compiles the route on its first request (the server
  // still strips unknown fields and accepts the body), so a document read later says
  // "unknown fields refused" for the routes already called and not for the others.
  const res = await proc.request("GET", "/swagger/json");
  expect(res.status).toBe(200);
  doc = res.body;
  const a = await proc.signup();
  const b = await proc.signup();
  userA = { token: a.token, orgId: a.orgId, userId: a.userId, label: "A" };
  userB = { token: b.token, orgId: b.orgId, userId: b.userId, label: "B" };
  ops = operationsOf(doc).sort(byMethod);
  // Replies are checked as they are; requests as the server sees them (defaults filled in).
  replyValidators = new Validators(createAjv());
  validators = new Validators(createAjv({ useDefaults: true }));
  coercing = new Validators(createAjv({ coerceTypes: true, useDefaults: true }));
  sink = startSink();
  resources = new Resources(ops, proc.url, validators, SEED, sink.url);
  await calibrateAuth();
  // A few of everything for A (parents first), one of everything for B.
  for (const collection of resources.creatable) {
    for (let i = 0; i < 3; i++) await resources.create(userA, collection);
    await resources.create(userB, collection);
  }
  console.log(
    `fuzz: seeds=${SEEDS.join(",")} runs=${RUNS} operations=${ops.length} creatable=${resources.creatable.join(", ")} created=${resources.all.length}` +
      (resources.failures.length ? `\nfuzz: could not create: ${[...new Set(resources.failures.map((f) => `${f.collection} (${f.reason})`))].join("; ")}` : ""),
  );
}, 120_000);

/** A local receiver for every URL the fuzz generates (webhooks, tool endpoints, MCP servers): never the internet. */
function startSink() {
  let hits = 0;
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req) => (hits++, isMcpRequest(req) ? answerMcp(req) : new Response("ok")) });
  return { url: `http://127.0.0.1:${server.port}`, get hits() { return hits; }, stop: () => server.stop(true) };
}

/**
 * The document applies bearer security globally, so public routes (signup, login …) claim it
 * too. Ask the server: an operation that does not answer 401 without credentials is public.
 */
async function calibrateAuth() {
  for (const op of ops.filter((o) => o.authenticated)) {
    const body = validBody(op, genContext(userA, SEED));
    const path = fillPath(op.path, Object.fromEntries(pathParamNames(op.path).map((n) => [n, "x"])));
    const res = await fetch(proc.url + path, {
      method: op.method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : toJsonText(body),
    });
    await res.body?.cancel();
    // 401: strict. 2xx: public. Anything else (validation first, 404 …): credentials expect a 4xx.
    op.strictAuth = res.status === 401;
    if (res.status >= 200 && res.status < 300) {
      op.authenticated = false;
      publicDespiteDoc.push(`${op.key} (${res.status})`);
    }
  }
  if (publicDespiteDoc.length) console.log(`fuzz: documented as needing a bearer token but public: ${publicDespiteDoc.join(", ")}`);
}

afterAll(async () => {
  sink?.stop();
  await proc?.stop();
  console.log(`fuzz: requests sent per phase ${JSON.stringify(stats)}, total ${Object.values(stats).reduce((a, b) => a + b, 0)}; calls the server made to the local URL sink: ${sink?.hits ?? 0}`);
});

describe("fuzz: every operation of /swagger/json", () => {
  test("the document lists the API", () => {
    expect(ops.length).toBeGreaterThan(10);
    for (const key of ["POST /v1/auth/signup", "GET /v1/auth/me", "GET /healthz"]) expect(ops.map((o) => o.key)).toContain(key);
    // Without documented request bodies nothing can be created and most of the fuzz would
    // silently test less: the document must describe them.
    for (const collection of ["/v1/agents", "/v1/threads", "/v1/tools", "/v1/webhooks"]) expect(resources.creatable).toContain(collection);
    expect(resources.all.length).toBeGreaterThan(5);
  });

  test("generated and hostile requests: no 5xx, error shape, documented replies, 4xx for invalid input", async () => {
    const oracle = new Oracle(proc.url, replyValidators);
    const started = Date.now();
    const watchdog = VERBOSE ? setInterval(() => {
      for (const [r, t] of oracle.inFlight) if (Date.now() - t > 3000) console.log(`fuzz: in flight for ${Date.now() - t} ms: ${describeRequest(r)}`);
    }, 3000) : undefined;
    let skipped = 0;
    for (const [i, op] of ops.entries()) {
      if (ONLY && !ONLY.test(op.key)) continue;
      const ctx = genContext(userA, SEED + i * 1000);
      if (VERBOSE) console.log(`fuzz: ${op.key}: generating`);
      const requests: FuzzRequest[] = [...hostileRequests(op, ctx), ...(op.body ? [chunkedOversize(op, ctx)] : [])];
      if (Date.now() - started < BUDGET_MS) {
        for (const seed of SEEDS) requests.push(...generatedRequests(op, genContext(userA, seed + i * 1000, Math.ceil(RUNS / SEEDS.length))));
      } else skipped++;
      const opStarted = Date.now();
      if (VERBOSE) console.log(`fuzz: ${op.key}: sending ${requests.length}`);
      const replies = await oracle.sendAll(requests, CONCURRENCY);
      timings.push([op.key, requests.length, Date.now() - opStarted]);
      if (VERBOSE) console.log(`fuzz: ${op.key}: ${requests.length} requests in ${Date.now() - opStarted} ms`);
      adoptCreated(op, requests, replies);
      // No operation may end the caller's session as a side effect of fuzzing it.
      const me = await asUser(userA, "GET", "/v1/auth/me");
      if (me.status !== 200) throw new Error(`after fuzzing ${op.key} the first user's token answers ${me.status}: ${me.text.slice(0, 300)}`);
    }
    clearInterval(watchdog);
    const slowest = timings.sort((a, b) => b[2] - a[2]).slice(0, 6).map(([k, n, ms]) => `${k} ${n} req ${ms} ms`);
    console.log(`fuzz: operations phase ${Date.now() - started} ms; slowest: ${slowest.join("; ")}`);
    if (skipped) console.log(`fuzz: time budget ${BUDGET_MS} ms reached: generated requests skipped for ${skipped} of ${ops.length} operations`);
    assertClean(oracle, "operations");
  }, 300_000);

  test("the regression corpus: every input that ever failed gets the answer it must", async () => {
    const corpus = loadCorpus();
    expect(corpus.length).toBeGreaterThan(30);
    const fresh = async (collection: string) => (await resources.create(userA, collection))?.id;
    const ids = { agent: await fresh("/v1/agents"), thread: await fresh("/v1/threads"), tool: await fresh("/v1/tools"), webhook: await fresh("/v1/webhooks") };
    for (const [name, id] of Object.entries(ids)) if (!id) throw new Error(`the corpus needs a ${name} of the first user`);
    const oracle = new Oracle(proc.url, replyValidators);
    await oracle.sendAll(corpus.map((entry) => corpusRequest(entry, ids, userA.token)), CONCURRENCY);
    assertClean(oracle, "corpus");
  }, 60_000);

  test("hostile paths", async () => {
    const oracle = new Oracle(proc.url, replyValidators);
    const requests: FuzzRequest[] = [];
    for (const path of HOSTILE_PATHS) {
      for (const method of ["GET", "POST", "DELETE"]) {
        requests.push({ method, path, headers: { authorization: `Bearer ${userA.token}`, ...(method === "POST" ? { "content-type": "application/json" } : {}) }, body: method === "POST" ? "{}" : undefined, expect: "any", label: "hostile path" });
      }
    }
    const replies = await oracle.sendAll(requests, CONCURRENCY);
    replies.forEach((r, i) => {
      if (r && /"devDependencies"|"dependencies"|DATABASE_URL|BEGIN .*PRIVATE KEY/.test(r.text)) oracle.record("hostile path served a file it must not", requests[i], r.status, r.text.slice(0, 200));
    });
    assertClean(oracle, "paths");
  }, 120_000);

  test("raw protocol abuse (invalid bytes, contradictory lengths, smuggling, huge headers)", async () => {
    const raw: string[] = [];
    for (const c of rawCases(userA.token)) {
      const r = await rawRequest(proc.process.port, c.bytes);
      const health = await fetch(`${proc.url}/healthz`).then((x) => x.status, () => 0);
      raw.push(`${c.label}: ${r.status === 0 ? "closed" : r.status}`);
      stats.raw = (stats.raw ?? 0) + 1;
      // Bun's HTTP parser answers malformed requests itself (e.g. 505 for a NUL or a bare LF in
      // the request line): runtime behaviour, listed in the log. A 5xx from OUR code (JSON error
      // body), a hang or a dead process fails.
      const fromApp = /\r\n\r\n\{"error"/.test(r.text);
      if ((r.status >= 500 && fromApp) || (r.status === -1 && !c.mayWait) || health !== 200) {
        raw.push(`  ✗ ${r.status === -1 ? "no reply within 5 s" : `status ${r.status}`}, /healthz ${health}: ${r.text.slice(0, 300)}`);
      }
    }
    // Routing must not depend on the Host header: a Kubernetes Service named "api" is reached
    // as http://api/… (seen: Hosts shorter than 4 characters routed every request to a 404).
    for (const host of ["api", "gw", "x", "gw:80", "api.internal"]) {
      const enc = (t: string) => Uint8Array.from(Buffer.from(t, "latin1"));
      const r = await rawRequest(proc.process.port, enc(`GET /v1/auth/me HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
      stats.raw++;
      if (r.status !== 401) raw.push(`  ✗ GET /v1/auth/me with Host: ${host} → ${r.status} (expected 401): ${r.text.split("\r\n\r\n")[1]?.slice(0, 160)}`);
    }
    console.log(`fuzz[raw] ${raw.join("; ").replace(/\s+/g, " ")}`);
    expect(raw.filter((l) => l.includes("✗"))).toEqual([]);
  }, 120_000);

  test("a deleted resource then answers 404", async () => {
    const problems: string[] = [];
    let sent = 0;
    for (const del of ops.filter((o) => o.method === "DELETE")) {
      const names = pathParamNames(del.path);
      const last = names.at(-1);
      const collection = last && resources.collectionFor(del.path, last);
      if (!collection || del.path !== `${collection}/{${last}}`) continue;
      const created = await resources.create(userA, collection);
      if (!created) {
        problems.push(`${del.key}: could not create a ${collection} to delete`);
        continue;
      }
      const path = fillPath(del.path, { ...created.bindings, [last]: created.id });
      const first = await asUser(userA, "DELETE", path);
      sent++;
      resources.deleted.add(created.id);
      if (first.status < 200 || first.status >= 300) {
        problems.push(`${del.key} ${path} → ${first.status} ${first.text.slice(0, 200)} (expected 2xx)`);
        continue;
      }
      // Every other operation on the item (GET, PATCH, PUT, POST …/action, DELETE again) → 404.
      for (const op of ops.filter((o) => o.path === del.path || o.path.startsWith(`${del.path}/`))) {
        const ctx = genContext(userA, SEED);
        const r = await asUser(userA, op.method, fillPath(op.path, { ...created.bindings, [last]: created.id, ...fillerFor(op.path) }), validBody(op, ctx));
        sent++;
        // GET and DELETE must say 404; a write may fail validation first (400/422) but never succeed.
        const ok = op.method === "GET" || op.method === "DELETE" ? r.status === 404 : r.status === 404 || (r.status >= 400 && r.status < 500 && r.status !== 409);
        if (!ok) problems.push(`after DELETE ${path}: ${op.key} → ${r.status} ${r.text.slice(0, 200)} (expected 404)`);
      }
      // …and the collection's list no longer shows it.
      if (ops.some((o) => o.method === "GET" && o.path === collection)) {
        const list = await asUser(userA, "GET", `${fillPath(collection, created.bindings)}?limit=100`);
        sent++;
        if (list.text.includes(created.id)) problems.push(`after DELETE, GET ${collection} still lists ${created.id}`);
      }
    }
    stats.delete = sent;
    if (problems.length) console.log(`fuzz[delete] FINDINGS:\n${problems.join("\n")}`);
    expect(problems).toEqual([]);
  }, 120_000);

  test("cross-organization probes: 404 on the other organization's resources, no leaks in lists", async () => {
    const problems: string[] = [];
    let sent = 0;
    const ownedByA = resources.all.filter((r) => r.owner === userA && resources.isAlive(r));
    const secretsOfA = [userA.orgId, userA.userId, ...ownedByA.map((r) => r.id)];
    // Every operation whose path reaches a resource of A through a creatable parameter.
    for (const op of ops) {
      const names = pathParamNames(op.path);
      const bound = names.filter((n) => resources.collectionFor(op.path, n));
      if (!bound.length) continue;
      const deepest = bound.at(-1)!;
      const collection = resources.collectionFor(op.path, deepest)!;
      const targets = ownedByA.filter((r: Resource) => r.collection === collection).slice(0, 5);
      for (const r of targets) {
        const values = { ...fillerFor(op.path), ...r.bindings, [deepest]: r.id };
        const path = fillPath(op.path, values);
        const body = validBody(op, genContext(userB, SEED));
        const reply = await asUser(userB, op.method, path, body);
        sent++;
        if (reply.status === 400 || reply.status === 422) {
          // The input itself may be invalid (validation runs first): the owner must then get the same.
          const owner = await asUser(userA, op.method, path, body);
          sent++;
          if (owner.status === reply.status) continue;
        }
        if (reply.status !== 404) problems.push(`B ${op.method} ${path} (A's ${collection} ${r.id}) → ${reply.status} ${reply.text.slice(0, 200)} (expected 404)`);
        // Ids B sent itself may be echoed ("agent … not found"); any other id of A is a leak.
        const leaked = secretsOfA.filter((s) => reply.text.includes(s) && !path.includes(s));
        if (leaked.length) problems.push(`B ${op.method} ${path} reply contains A's ids ${leaked.join(", ")}`);
      }
    }
    // A's resources survived B's DELETEs.
    for (const r of ownedByA) {
      const get = ops.find((o) => o.method === "GET" && o.path === `${r.collection}/{${lastParam(r)}}`);
      if (!get) continue;
      const reply = await asUser(userA, "GET", fillPath(get.path, { ...r.bindings, [lastParam(r)]: r.id }));
      sent++;
      if (reply.status === 404 && resources.isAlive(r)) problems.push(`A's ${r.id} is gone after B's probes (GET ${get.path} → 404)`);
    }
    // Every list B can read (B's own parents where the path needs them) never shows A's ids.
    for (const op of ops.filter((o) => o.method === "GET")) {
      const names = pathParamNames(op.path);
      let values: Record<string, string> = {};
      if (names.length) {
        values = resources.bind(op.path, userB, () => 0);
        if (names.some((n) => !(n in values))) continue;
      }
      const reply = await asUser(userB, "GET", `${fillPath(op.path, values)}?limit=100`);
      sent++;
      const leaked = secretsOfA.filter((s) => reply.text.includes(s));
      if (leaked.length) problems.push(`B GET ${op.path} (${reply.status}) shows A's ids ${leaked.slice(0, 5).join(", ")}`);
    }
    stats["cross-org"] = sent;
    if (problems.length) console.log(`fuzz[cross-org] FINDINGS:\n${problems.join("\n")}`);
    expect(problems).toEqual([]);
  }, 120_000);

  test("10,000 levels of nesting, twice per field, in a child process: replies, no hang", async () => {
    // A child process from the sources (not the compiled binary: this tests the routes, and
    // the binary is covered elsewhere). If the server freezes, requests time out here.
    const dataDir = mkdtempSync(join(tmpdir(), "agentos-fuzz-deep-"));
    const child = await startChild([`--data-dir=${dataDir}`], {
      cmd: [process.execPath, "src/main.ts", "serve"],
      env: { AGENTOS_PLAN_LIMITS: UNLIMITED_PLANS, LOG_LEVEL: "error" },
    });
    try {
      const signup = await fetch(`${child.url}/v1/auth/signup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: `deep-${SEED}@example.com`, password: "correct horse battery" }),
      }).then((r) => r.json() as Promise<any>);
      const user: User = { token: signup.access_token, orgId: signup.organization.id, userId: signup.user.id, label: "deep" };
      const childResources = new Resources(ops, child.url, validators, SEED, sink.url);
      for (const collection of childResources.creatable) await childResources.create(user, collection);
      const oracle = new Oracle(child.url, replyValidators, 10_000);
      for (const op of ops.filter((o) => o.body && (!ONLY || ONLY.test(o.key)))) {
        const ctx: GenContext = { resources: childResources, user, validators, coercing, maxBodyBytes: proc.config.maxBodyBytes, runs: 0, seed: SEED };
        // One at a time: a hang is then pinned to the request that caused it.
        for (const r of deepNestingRequests(op, ctx)) {
          const reply = await oracle.send(r);
          if (reply) continue;
          const alive = await fetch(`${child.url}/healthz`, { signal: AbortSignal.timeout(3000) }).then((x) => x.status, () => 0);
          if (alive !== 200) {
            oracle.record("the process stopped answering (/healthz) after this request", r, 0, `healthz: ${alive || "no reply in 3 s"}`);
            stats.deep = oracle.sent;
            throw new Error(`fuzz[deep] the server froze:\n${oracle.report()}`);
          }
        }
      }
      assertClean(oracle, "deep");
    } finally {
      await child.stop("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);

  test("the process is still up", async () => {
    expect((await fetch(`${proc.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${proc.url}/readyz`)).status).toBe(200);
    expect((await asUser(userA, "GET", "/v1/auth/me")).status).toBe(200);
  });
});

function lastParam(r: Resource): string {
  const op = ops.find((o) => o.path.startsWith(`${r.collection}/{`));
  return op ? /^\{([^}]+)\}/.exec(op.path.slice(r.collection.length + 1))![1] : "id";
}

/** Remembers what the fuzz created (2xx POST with an id) and deleted (2xx DELETE). */
function adoptCreated(op: Operation, requests: FuzzRequest[], replies: ({ status: number; json: unknown } | null)[]) {
  requests.forEach((req, i) => {
    const r = replies[i];
    if (!r || r.status < 200 || r.status >= 300) return;
    if (op.method === "DELETE") {
      for (const seg of req.path.split("?")[0].split("/")) resources.deleted.add(safeDecode(seg));
      return;
    }
    const id = (r.json as { id?: unknown })?.id;
    if (op.method === "POST" && resources.isCreatable(op.path) && typeof id === "string") {
      const bindings: Record<string, string> = {};
      const segs = req.path.split("?")[0].split("/");
      op.path.split("/").forEach((t, j) => {
        const m = /^\{(.+)\}$/.exec(t);
        if (m) bindings[m[1]] = safeDecode(segs[j]);
      });
      resources.adopt(userA, op.path, bindings, id);
    }
  });
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Values for path parameters that are not resource ids (e.g. a memory block {label}). */
function fillerFor(path: string): Record<string, string> {
  return Object.fromEntries(pathParamNames(path).filter((n) => !resources.collectionFor(path, n)).map((n) => [n, "persona"]));
}
