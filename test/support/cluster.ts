/**
 * A split deployment of the compiled binary on loopback: 2 gateways, auth, agents, 2 workers,
 * memory, tools, billing and notify — one process each, every one started with `--role=<role>`
 * on its own port — sharing a fresh PostgreSQL database, Redis and NATS under one namespace
 * and one JWT secret. Used by `scripts/cluster.ts` (interactive) and by the cluster and fault
 * tests (kill -9 one member, restart it with the very same arguments, list the processes).
 *
 * Also here: `startNatsServer()`, a private `nats-server -js` on a free port and its own store
 * dir, for tests that stop and restart NATS (never the shared server on 4222).
 */
import { dropNatsNamespace, dropRedisNamespace } from "./backends";
import { waitFor as waitForValue } from "./wait";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { REAL_URLS } from "./backends";
import { ensureBinary, freePort, PORT_TAKEN, REPO } from "./binary";
import { TEST_INTERNAL_KEY } from "./harness";

/** The members, in start order after the first (which applies the migrations alone). */
export const CLUSTER_LAYOUT: { name: string; role: string }[] = [
  { name: "auth", role: "auth" },
  { name: "gateway#1", role: "gateway" },
  { name: "gateway#2", role: "gateway" },
  { name: "agents", role: "agents" },
  { name: "worker#1", role: "worker" },
  { name: "worker#2", role: "worker" },
  { name: "memory", role: "memory" },
  { name: "tools", role: "tools" },
  { name: "billing", role: "billing" },
  { name: "notify", role: "notify" },
];

export interface ClusterOptions {
  modelBaseUrl: string;
  modelApiKey?: string;
  /** Admin URL of the PostgreSQL server the fresh database is created on. */
  postgresUrl?: string;
  natsUrl?: string;
  redisUrl?: string;
  jwtSecret?: string;
  /** Seals RPC between the members (default: the test suite's key). */
  internalKey?: string;
  namespace?: string;
  /** Extra environment for every member (tunables such as AGENTOS_RUN_LEASE_MS). */
  env?: Record<string, string>;
  logLevel?: "debug" | "info" | "warn" | "error";
  /** Where each member's stdout/stderr goes (`<dir>/<name>.log`); default a temp dir. */
  logDir?: string;
  readyTimeoutMs?: number;
  shutdownTimeoutMs?: number;
}

export interface ClusterMember {
  name: string;
  role: string;
  port: number;
  url: string;
  /** Everything after the binary: the exact argv a restart reuses. */
  args: string[];
  logFile: string;
  proc: Bun.Subprocess | null;
  restarts: number;
}

export interface MemberInfo {
  name: string;
  role: string;
  pid: number | null;
  url: string;
  alive: boolean;
  restarts: number;
}

export interface Cluster {
  namespace: string;
  databaseName: string;
  databaseUrl: string;
  natsUrl: string;
  redisUrl: string;
  jwtSecret: string;
  logDir: string;
  members: ClusterMember[];
  member(name: string): ClusterMember;
  /** Gateways whose process is running, in layout order. */
  liveGateways(): ClusterMember[];
  list(): MemberInfo[];
  isAlive(name: string): boolean;
  /** Sends the signal (default SIGKILL) and waits for the exit; returns the exit code or signal. */
  kill(name: string, signal?: NodeJS.Signals): Promise<number | null>;
  /** Starts the member again with the same arguments and port; waits for /readyz 200. */
  restart(name: string): Promise<ClusterMember>;
  readyz(name: string): Promise<{ status: number; body: any }>;
  /** The last `chars` characters of the member's log. */
  logTail(name: string, chars?: number): string;
  /**
   * SIGTERM to every member (SIGKILL after the grace period), then drops the database and the
   * namespace (NATS streams, Redis keys). `keepNatsStreams`: a private NATS whose store is deleted anyway.
   */
  stop(opts?: { keepLogs?: boolean; keepNatsStreams?: boolean }): Promise<void>;
}

const alive = (p: Bun.Subprocess | null) => p !== null && p.exitCode === null && p.signalCode === null;

function stamp() {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  // A random tail: two clusters started in the same second (parallel test runs) must not collide.
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}_${Math.random().toString(36).slice(2, 6)}`;
}

async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropDatabase(adminUrl: string, name: string) {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
}


async function waitReady(m: ClusterMember, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(m.proc)) throw new Error(`${m.name} (--role=${m.role}) exited with ${m.proc?.exitCode ?? m.proc?.signalCode} before ready:\n${tail(m.logFile, 3000)}`);
    const ok = await fetch(`${m.url}/readyz`, { signal: AbortSignal.timeout(3000) }).then((r) => r.status === 200, () => false);
    if (ok) return;
    await Bun.sleep(100);
  }
  throw new Error(`${m.name} not ready within ${timeoutMs} ms:\n${tail(m.logFile, 3000)}`);
}

function tail(file: string, chars: number): string {
  try {
    const text = readFileSync(file, "utf8");
    return text.slice(-chars);
  } catch {
    return "(no log)";
  }
}

/** Every child we started, so an abrupt exit of the launcher does not leave orphans. */
const everyChild = new Set<Bun.Subprocess>();
process.on("exit", () => {
  for (const p of everyChild) if (alive(p)) p.kill("SIGKILL");
});

async function movePort(m: ClusterMember) {
  m.port = await freePort();
  m.url = `http://127.0.0.1:${m.port}`;
  m.args = m.args.map((a) => (a.startsWith("--port=") ? `--port=${m.port}` : a));
}

function spawnMember(binary: string, m: ClusterMember, env: Record<string, string>): Bun.Subprocess {
  const fd = openSync(m.logFile, "a");
  try {
    const proc = Bun.spawn([binary, ...m.args], { cwd: REPO, env, stdin: "ignore", stdout: fd, stderr: fd });
    everyChild.add(proc);
    void proc.exited.then(() => everyChild.delete(proc));
    return proc;
  } finally {
    closeSync(fd); // the child has its own copy
  }
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const binary = ensureBinary();
  const postgresUrl = opts.postgresUrl ?? REAL_URLS.postgres;
  const natsUrl = opts.natsUrl ?? REAL_URLS.nats;
  const redisUrl = opts.redisUrl ?? REAL_URLS.redis;
  const jwtSecret = opts.jwtSecret ?? Buffer.from(crypto.getRandomValues(new Uint8Array(36))).toString("base64");
  const ts = stamp();
  const namespace = opts.namespace ?? `cl${ts.replace(/_/g, "").toLowerCase()}`;
  const databaseName = `agentos_cluster_${ts}`;
  const logDir = opts.logDir ?? mkdtempSync(join(tmpdir(), "agentos-cluster-"));
  mkdirSync(logDir, { recursive: true });
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  const databaseUrl = await createDatabase(postgresUrl, databaseName);

  // Secrets go in the environment, not argv (argv is world-readable in /proc).
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    AGENTOS_ALLOW_PRIVATE_TARGETS: "true", // test tool servers listen on loopback
    JWT_SECRET: jwtSecret,
    AGENTOS_INTERNAL_KEY: opts.internalKey ?? TEST_INTERNAL_KEY,
    ...(opts.modelApiKey ? { MODEL_API_KEY: opts.modelApiKey } : {}),
    ...opts.env,
  };
  const members: ClusterMember[] = [];
  for (const { name, role } of CLUSTER_LAYOUT) {
    const port = await freePort();
    const dataDir = join(logDir, `data-${name.replace("#", "")}`);
    mkdirSync(dataDir, { recursive: true });
    members.push({
      name,
      role,
      port,
      url: `http://127.0.0.1:${port}`,
      args: [
        "serve",
        `--role=${role}`,
        `--port=${port}`,
        "--host=127.0.0.1",
        `--data-dir=${dataDir}`,
        `--database-url=${databaseUrl}`,
        `--redis-url=${redisUrl}`,
        `--nats-url=${natsUrl}`,
        `--namespace=${namespace}`,
        `--model-base-url=${opts.modelBaseUrl}`,
        `--log-level=${opts.logLevel ?? "warn"}`,
        `--shutdown-timeout=${opts.shutdownTimeoutMs ?? 10_000}`,
      ],
      logFile: join(logDir, `${name.replace("#", "")}.log`),
      proc: null,
      restarts: 0,
    });
  }

  const byName = (name: string) => {
    const m = members.find((x) => x.name === name);
    if (!m) throw new Error(`no cluster member '${name}' (members: ${members.map((x) => x.name).join(", ")})`);
    return m;
  };
  const launch = async (m: ClusterMember) => {
    for (let attempt = 1; ; attempt++) {
      m.proc = spawnMember(binary, m, env);
      try {
        await waitReady(m, readyTimeoutMs);
        return m;
      } catch (err) {
        // Its port was taken since it was picked: the member moves to another one.
        if (attempt >= 3 || alive(m.proc) || !PORT_TAKEN.test(tail(m.logFile, 500))) throw err;
        await movePort(m);
      }
    }
  };

  let stopped = false;
  const cluster: Cluster = {
    namespace,
    databaseName,
    databaseUrl,
    natsUrl,
    redisUrl,
    jwtSecret,
    logDir,
    members,
    member: byName,
    liveGateways: () => members.filter((m) => m.role === "gateway" && alive(m.proc)),
    list: () => members.map((m) => ({ name: m.name, role: m.role, pid: m.proc?.pid ?? null, url: m.url, alive: alive(m.proc), restarts: m.restarts })),
    isAlive: (name) => alive(byName(name).proc),
    async kill(name, signal = "SIGKILL") {
      const m = byName(name);
      if (!m.proc || !alive(m.proc)) return m.proc?.exitCode ?? null;
      m.proc.kill(signal);
      const code = await m.proc.exited;
      return code;
    },
    async restart(name) {
      const m = byName(name);
      if (alive(m.proc)) throw new Error(`${name} is still running (pid ${m.proc!.pid}); kill it first`);
      m.restarts++;
      return launch(m);
    },
    async readyz(name) {
      const r = await fetch(`${byName(name).url}/readyz`, { signal: AbortSignal.timeout(5000) });
      return { status: r.status, body: await r.json().catch(() => null) };
    },
    logTail: (name, chars = 4000) => tail(byName(name).logFile, chars),
    async stop(stopOpts = {}) {
      if (stopped) return;
      stopped = true;
      const running = members.filter((m) => alive(m.proc));
      for (const m of running) m.proc!.kill("SIGTERM");
      const grace = (opts.shutdownTimeoutMs ?? 10_000) + 5000;
      await Promise.all(
        running.map((m) =>
          Promise.race([m.proc!.exited, Bun.sleep(grace).then(() => m.proc!.kill("SIGKILL"))]),
        ),
      );
      await Promise.all(running.map((m) => m.proc!.exited));
      const cleanups = [
        dropDatabase(postgresUrl, databaseName),
        stopOpts.keepNatsStreams ? Promise.resolve() : dropNatsNamespace(namespace, natsUrl),
        dropRedisNamespace(namespace, redisUrl),
      ];
      const results = await Promise.allSettled(cleanups);
      if (!stopOpts.keepLogs && !opts.logDir) rmSync(logDir, { recursive: true, force: true });
      const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
      if (failed.length) console.warn(`cluster cleanup: ${failed.map((f) => (f.reason as Error).message).join("; ")}`);
    },
  };

  try {
    // One member applies the migrations (and creates the streams) before the rest start at once.
    await launch(members[0]);
    await Promise.all(members.slice(1).map(launch));
  } catch (err) {
    await cluster.stop({ keepLogs: true }).catch(() => {});
    throw err;
  }
  return cluster;
}

// ------------------------------------------------------------------ a private NATS

export interface NatsServer {
  url: string;
  port: number;
  storeDir: string;
  pid(): number | null;
  running(): boolean;
  /** SIGTERM (default) and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port with the same store dir; waits until JetStream is healthy. */
  start(): Promise<void>;
  /** Stops it and deletes its store. */
  destroy(): Promise<void>;
}

/**
 * `nats-server -js -p <free port> -sd <temp dir>` (with a monitor port for its /healthz);
 * `config` adds `-c <file>` (users, permissions, TLS) and `env` its environment.
 */
export async function startNatsServer(opts: { bin?: string; readyTimeoutMs?: number; config?: string; env?: Record<string, string>; scheme?: string } = {}): Promise<NatsServer> {
  const bin = opts.bin ?? "nats-server";
  if (!Bun.which(bin)) throw new Error(`${bin} is not on PATH: install nats-server (Debian: apt-get install nats-server) to restart NATS in fault tests`);
  let port = await freePort();
  let monitor = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "agentos-nats-"));
  const logFile = join(storeDir, "nats.log");
  let proc: Bun.Subprocess | null = null;
  const start = async () => {
    const fd = openSync(logFile, "a");
    try {
      // A config file names its own store dir (nats-server refuses it twice).
      const config = opts.config ? ["-c", opts.config] : ["-sd", join(storeDir, "js")];
      proc = Bun.spawn([bin, ...config, "-js", "-a", "127.0.0.1", "-p", String(port), "-m", String(monitor)], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...opts.env },
        stdin: "ignore",
        stdout: fd,
        stderr: fd,
      });
    } finally {
      closeSync(fd);
    }
    everyChild.add(proc!);
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
    while (Date.now() < deadline) {
      if (!alive(proc)) throw new Error(`nats-server exited before ready:\n${tail(logFile, 2000)}`);
      const ok = await fetch(`http://127.0.0.1:${monitor}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200, () => false);
      if (ok) return;
      await Bun.sleep(50);
    }
    throw new Error(`nats-server not healthy within ${opts.readyTimeoutMs ?? 20_000} ms:\n${tail(logFile, 2000)}`);
  };
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    const p = proc as Bun.Subprocess | null;
    if (!p || !alive(p)) return;
    p.kill(signal);
    await p.exited;
  };
  // A free port can be taken by another process between the probe and the bind: pick again.
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (err) {
      if (attempt >= 3 || !/address already in use/i.test(String(err))) throw err;
      port = await freePort();
      monitor = await freePort();
    }
  }
  return {
    url: `${opts.scheme ?? "nats"}://127.0.0.1:${port}`,
    port,
    storeDir,
    pid: () => (proc as Bun.Subprocess | null)?.pid ?? null,
    running: () => alive(proc),
    stop,
    start,
    async destroy() {
      await stop("SIGKILL");
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/** A private nats-server running the shipped least-privilege configuration (deploy/nats/agentos.conf). */
export interface LockedNats {
  server: NatsServer;
  /** The platform user's URL (credentials in it), for NATS_URL. */
  platformUrl: string;
  /** The tool-worker user's URL, for customer tool workers. */
  toolWorkerUrl: string;
  passwords: { platform: string; toolWorker: string };
}

/** deploy/nats/agentos.conf with `namespace` in place of `agentos`, on a free port with a temp store. */
export async function startLockedNats(namespace: string): Promise<LockedNats> {
  const dir = mkdtempSync(join(tmpdir(), "agentos-natsconf-"));
  const shipped = readFileSync(join(REPO, "deploy/nats/agentos.conf"), "utf8");
  const conf = shipped.replaceAll('"agentos.>"', `"${namespace}.>"`).replace('"/var/lib/nats"', JSON.stringify(join(dir, "js")));
  if (conf === shipped) throw new Error("deploy/nats/agentos.conf no longer names the agentos namespace or its store dir");
  writeFileSync(join(dir, "agentos.conf"), conf);
  // A letter first: nats-server types an environment variable's value, and one that starts with
  // a digit fails to parse as a number ("Expected a digit but got 'r'"): seen once in CI.
  const random = () => `p${Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString("base64url")}`;
  const passwords = { platform: random(), toolWorker: random() };
  const server = await startNatsServer({ config: join(dir, "agentos.conf"), env: { AGENTOS_NATS_PASSWORD: passwords.platform, TOOL_WORKER_NATS_PASSWORD: passwords.toolWorker } });
  const destroy = server.destroy;
  server.destroy = async () => {
    await destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    server,
    platformUrl: `nats://agentos:${passwords.platform}@127.0.0.1:${server.port}`,
    toolWorkerUrl: `nats://tool-worker:${passwords.toolWorker}@127.0.0.1:${server.port}`,
    passwords,
  };
}

// ------------------------------------------------------------------ fixtures the cluster tests share

export interface HttpReply {
  status: number;
  body: any;
  headers: Headers;
}

/** One HTTP request (JSON in and out); network errors are thrown. */
export async function http(base: string, method: string, path: string, o: { token?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HttpReply> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base + path, {
    method,
    headers,
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
    signal: AbortSignal.timeout(o.timeoutMs ?? 30_000),
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, headers: res.headers };
}

/** Polls `probe` until it returns a truthy value (every 100 ms, 30 s by default). */
export const waitFor = <T>(what: string, probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 30_000, everyMs = 100) =>
  waitForValue(what, probe, timeoutMs, everyMs);

/** `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, at most 5 minutes old — what SPEC asks receivers to check. */
export function signatureValid(header: string | null, body: string, secret: string, now = Date.now()): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m || !secret) return false;
  if (Math.abs(now / 1000 - Number(m[1])) > 300) return false;
  const expected = new Bun.CryptoHasher("sha256", secret).update(`${m[1]}.${body}`).digest("hex");
  return expected === m[2];
}

export interface SignedToolServer {
  url: string;
  /** The tool's signing secret (shown once at creation): set it before runs call the tool. */
  secret: string;
  /** Every call, with whether its X-AgentOS-Signature verified. */
  calls: { tool_call_id: string; run_id: string | null; arguments: unknown; signatureOk: boolean; at: number }[];
  inFlight: number;
  delayMs: number;
  stop(): void;
}

/** An `http` tool endpoint on loopback: rejects a bad signature with 401, otherwise echoes the arguments. */
export function startSignedToolServer(delayMs = 0): SignedToolServer {
  const state: SignedToolServer = { url: "", secret: "", calls: [], inFlight: 0, delayMs, stop: () => server.stop(true) };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      state.inFlight++;
      try {
        const text = await req.text();
        const body = JSON.parse(text || "null");
        const signatureOk = signatureValid(req.headers.get("x-agentos-signature"), text, state.secret);
        state.calls.push({ tool_call_id: body?.tool_call_id ?? "", run_id: body?.run_id ?? null, arguments: body?.arguments, signatureOk, at: Date.now() });
        if (state.delayMs) await Bun.sleep(state.delayMs);
        if (!signatureOk) return Response.json({ error: "bad signature" }, { status: 401 });
        return Response.json({ echo: body.arguments, answered_by: "loopback tool server" });
      } finally {
        state.inFlight--;
      }
    },
  });
  state.url = `http://127.0.0.1:${server.port}/tool`;
  return state;
}

export interface WebhookDelivery {
  eventId: string | null;
  type: string;
  event: any;
  signatureOk: boolean;
  status: number;
  at: number;
}

export interface WebhookReceiver {
  url: string;
  secret: string;
  deliveries: WebhookDelivery[];
  inFlight: number;
  /** Distinct event ids acknowledged with 2xx (the dedupe a receiver does by X-AgentOS-Event-Id). */
  acknowledged(type?: string): Map<string, any>;
  stop(): void;
}

/**
 * A webhook receiver on loopback: verifies every signature (400 when wrong), answers after
 * `delayMs`, and fails the first attempt of an event with 503 when `failFirst(eventId)` says so
 * (so deliveries are retried).
 */
export function startWebhookReceiver(opts: { delayMs?: number; failFirst?: (eventId: string) => boolean } = {}): WebhookReceiver {
  const seen = new Set<string>();
  const state: WebhookReceiver = {
    url: "",
    secret: "",
    deliveries: [],
    inFlight: 0,
    acknowledged(type) {
      const out = new Map<string, any>();
      for (const d of state.deliveries) if (d.status < 300 && d.eventId && (!type || d.type === type)) out.set(d.eventId, d.event);
      return out;
    },
    stop: () => server.stop(true),
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      state.inFlight++;
      try {
        const text = await req.text();
        const event = JSON.parse(text || "null");
        const eventId = req.headers.get("x-agentos-event-id");
        const signatureOk = signatureValid(req.headers.get("x-agentos-signature"), text, state.secret);
        if (opts.delayMs) await Bun.sleep(opts.delayMs);
        let status = 200;
        if (!signatureOk || eventId !== event?.id) status = 400;
        else if (opts.failFirst?.(eventId!) && !seen.has(eventId!)) status = 503;
        if (eventId) seen.add(eventId);
        state.deliveries.push({ eventId, type: event?.type, event, signatureOk, status, at: Date.now() });
        return new Response(status === 200 ? "ok" : "no", { status });
      } finally {
        state.inFlight--;
      }
    },
  });
  state.url = `http://127.0.0.1:${server.port}/hook`;
  return state;
}

/** Reads a run's Server-Sent Events until the stream ends (it ends after the terminal event). */
export async function readRunEvents(base: string, token: string, runId: string, timeoutMs = 20_000): Promise<{ status: number; events: { id: number; event: string; data: any }[] }> {
  const res = await fetch(`${base}/v1/runs/${runId}/events`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) return { status: res.status, events: [] };
  const text = await res.text();
  const events = text
    .split("\n\n")
    .filter((block) => block.trim() && !block.startsWith(":"))
    .map((block) => {
      const fields = Object.fromEntries(block.split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trimStart()]));
      return { id: Number(fields.id), event: fields.event, data: JSON.parse(fields.data) };
    });
  return { status: res.status, events };
}

export const TERMINAL_RUN_EVENTS = ["run.completed", "run.failed", "run.cancelled", "run.expired"];
