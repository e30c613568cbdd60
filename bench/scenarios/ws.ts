/**
 * ws: `clients` WebSocket clients on ONE gateway process (GET /v1/ws?token=…), all of one
 * organization, receiving its domain events, on the compiled binary:
 *
 *   - real: `--role=gateway` alone (the process measured) + the other roles in a second
 *     process, on the real PostgreSQL/NATS/Redis: an event goes agents role → outbox →
 *     relay → NATS `live.<org>` → the gateway → every socket;
 *   - embedded: `--role=all` in one process (in-process bus), which is then what is measured.
 *
 * The clients are `client-processes` separate Bun processes (bench/lib/ws-clients.ts; Bun's
 * WebSocket client), each with its fd limit raised (the hard limit here is 20,000 per
 * process). Once every socket is open: the gateway's RSS with the sockets idle, then
 * `events` agents are created at `event-rate` per second (each → one `agent.created` event
 * pushed to every socket), and each client times every frame against the event's
 * `created_at` (commit time in PostgreSQL; the relay's poll interval is part of it).
 */
import { machineInfo } from "../lib/machine";
import { cpuMeter, machineCpuMeter, memoryMiB, round } from "../lib/proc";
import { printTable, writeResults } from "../lib/results";
import { createRealBackends, FD_LIMIT, onCleanup, REPO, startTarget, type Mode, type Target } from "../lib/target";
import { RUN_PLAN_LIMITS } from "./runs";

export interface WsOptions {
  modes: Mode[];
  clients: number;
  clientProcesses: number;
  /** Events per phase. */
  events: number;
  /** One phase per rate (events per second). */
  eventRates: number[];
}

interface ClientProc {
  proc: Bun.Subprocess<"pipe", "pipe", "inherit">;
  next(key: string): Promise<any>;
  send(line: string): void;
}

/** One client process; its stdout is read line by line for {"ready"} / {"report"}. */
function spawnClients(wsUrl: string, count: number): ClientProc {
  const script = `${REPO}/bench/lib/ws-clients.ts`;
  const proc = Bun.spawn(["sh", "-c", `ulimit -n ${FD_LIMIT} && exec "$@"`, "sh", process.execPath, script, wsUrl, String(count)], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const waiting = new Map<string, (v: any) => void>();
  const arrived = new Map<string, any>();
  void (async () => {
    let buffer = "";
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      buffer += new TextDecoder().decode(chunk);
      let i: number;
      while ((i = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (!line.startsWith("{")) continue;
        const msg = JSON.parse(line);
        for (const key of Object.keys(msg)) {
          const w = waiting.get(key);
          if (w) {
            waiting.delete(key);
            w(msg[key]);
          } else arrived.set(key, msg[key]);
        }
      }
    }
  })();
  onCleanup(async () => {
    proc.kill("SIGKILL");
    await proc.exited;
  });
  return {
    proc,
    next: (key) =>
      new Promise((resolve, reject) => {
        if (arrived.has(key)) {
          const v = arrived.get(key);
          arrived.delete(key);
          return resolve(v);
        }
        waiting.set(key, resolve);
        void proc.exited.then((code) => reject(new Error(`ws client process exited with ${code} before '${key}'`)));
      }),
    send: (line) => {
      proc.stdin.write(`${line}\n`);
      proc.stdin.flush();
    },
  };
}

function percentiles(hist: Map<number, number>, total: number) {
  const keys = [...hist.keys()].sort((a, b) => a - b);
  const at = (p: number) => {
    const rank = Math.ceil(p * total);
    let seen = 0;
    for (const k of keys) {
      seen += hist.get(k)!;
      if (seen >= rank) return k;
    }
    return keys.at(-1) ?? 0;
  };
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: keys.at(-1) ?? 0 };
}

async function request(url: string, method: string, path: string, token?: string, body?: unknown) {
  const res = await fetch(url + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

async function startServers(mode: Mode): Promise<{ gateway: Target; stop(): Promise<void> }> {
  const env = { AGENTOS_PLAN_LIMITS: RUN_PLAN_LIMITS };
  if (mode === "embedded") {
    const all = await startTarget({ mode, roles: "all", env });
    return { gateway: all, stop: () => all.stop() };
  }
  const backends = await createRealBackends();
  try {
    const rest = await startTarget({ mode, roles: "auth,agents,memory,tools,billing,notify,worker", backends, env });
    const gateway = await startTarget({ mode, roles: "gateway", backends, env }).catch(async (err) => {
      await rest.stop();
      throw err;
    });
    return {
      gateway,
      async stop() {
        await gateway.stop();
        await rest.stop();
        await backends.drop();
      },
    };
  } catch (err) {
    await backends.drop();
    throw err;
  }
}

/** `events` agents created at `rate` per second; every socket should get each agent.created. */
async function eventPhase(gw: Target, token: string, clients: ClientProc[], opened: number, events: number, rate: number) {
  const cpu = cpuMeter(gw.pid);
  const machine = machineCpuMeter();
  let peak = memoryMiB(gw.pid).rss;
  const sampler = setInterval(() => (peak = Math.max(peak, memoryMiB(gw.pid).rss)), 100);
  const t0 = performance.now();
  const posts: Promise<unknown>[] = [];
  for (let i = 0; i < events; i++) {
    const wait = t0 + (i * 1000) / rate - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    posts.push(request(gw.url, "POST", "/v1/agents", token, { name: `ws-bench-${rate}-${i}`, model: "fake-model", instructions: "x" }));
  }
  await Promise.all(posts);
  const sendS = (performance.now() - t0) / 1000;
  await Bun.sleep(5000); // the last events reach every socket (relay + fan-out)
  clearInterval(sampler);
  const busy = cpu();
  const machineUse = machine();
  for (const c of clients) c.send("report");
  const reports = await Promise.all(clients.map((c) => c.next("report")));
  const hist = new Map<number, number>();
  let received = 0;
  let created = 0;
  for (const r of reports) {
    received += r.events;
    created += r.by_type["agent.created"] ?? 0;
    for (const [k, v] of Object.entries(r.hist as Record<string, number>)) hist.set(Number(k), (hist.get(Number(k)) ?? 0) + v);
  }
  const latency = percentiles(hist, received);
  const phase = {
    event_rate_per_s: rate,
    events_sent: events,
    send_window_s: round(sendS, 2),
    frames_offered_per_s: rate * opened,
    frames_expected_agent_created: events * opened,
    frames_received_agent_created: created,
    frames_received_all_events: received,
    delivery_latency_ms: latency,
    closed_sockets_so_far: reports.reduce((a, r) => a + r.closed, 0),
    gateway_cpu: busy,
    gateway_rss_peak_mib: round(peak, 1),
    client_cpu_percent: reports.map((r) => round((100 * r.cpu_seconds) / (sendS + 5), 1)),
    /** The whole machine (every process), in % of one core. */
    machine: machineUse,
  };
  console.log(`${rate} events/s (${(rate * opened).toLocaleString("en")} frames/s offered): delivered ${created}/${events * opened}; latency ms p50/p95/p99/max ${latency.p50}/${latency.p95}/${latency.p99}/${latency.max}; gateway CPU ${busy.cpu_percent}%, RSS peak ${round(peak, 1)} MiB; client processes CPU ${phase.client_cpu_percent.join("%, ")}%; machine ${machineUse.busy_percent}% of ${machineUse.cores * 100}%`);
  return phase;
}

async function measureMode(mode: Mode, o: WsOptions) {
  const servers = await startServers(mode);
  const gw = servers.gateway;
  console.log(`\n== ws, ${mode}: ${o.clients} clients in ${o.clientProcesses} processes on ${mode === "real" ? "--role=gateway" : "--role=all"} pid ${gw.pid}; ${o.events} events at ${o.eventRates.join(", ")}/s`);
  const clients: ClientProc[] = [];
  try {
    const email = `bench-ws-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}@example.com`;
    const token = (await request(gw.url, "POST", "/v1/auth/signup", undefined, { email, password: "correct horse battery staple" })).access_token as string;
    await request(gw.url, "GET", "/v1/agents?limit=1", token); // warm the auth path
    await Bun.sleep(2000);
    const rssBefore = memoryMiB(gw.pid);

    const wsUrl = `${gw.url.replace(/^http/, "ws")}/v1/ws?token=${token}`;
    const per = Math.ceil(o.clients / o.clientProcesses);
    const tConnect = performance.now();
    for (let i = 0; i < o.clientProcesses; i++) clients.push(spawnClients(wsUrl, Math.min(per, o.clients - i * per)));
    const ready = await Promise.all(clients.map((c) => c.next("ready")));
    const connectMs = Math.round(performance.now() - tConnect);
    const opened = ready.reduce((a, r) => a + r.opened, 0);
    const failedToOpen = ready.reduce((a, r) => a + r.failed, 0);
    console.log(`connected: ${opened} sockets (${failedToOpen} failed) in ${connectMs} ms`);
    await Bun.sleep(3000);
    const rssOpen = memoryMiB(gw.pid);
    const idleCpu = cpuMeter(gw.pid);
    await Bun.sleep(2000);
    const idle = idleCpu();
    console.log(`gateway RSS: ${rssBefore.rss} MiB before, ${rssOpen.rss} MiB with ${opened} sockets open (idle CPU ${idle.cpu_percent}%)`);

    const phases = [];
    for (const rate of o.eventRates) phases.push(await eventPhase(gw, token, clients, opened, o.events, rate));
    const result = {
      mode,
      gateway_process: mode === "real" ? "--role=gateway (alone)" : "--role=all",
      clients: o.clients,
      client_processes: o.clientProcesses,
      opened,
      failed_to_open: failedToOpen,
      connect_ms: connectMs,
      gateway_rss_mib: { before_sockets: rssBefore.rss, sockets_open_idle: rssOpen.rss, peak_during_events: Math.max(...phases.map((p) => p.gateway_rss_peak_mib)), after: memoryMiB(gw.pid).rss },
      gateway_rss_per_socket_kib: round(((rssOpen.rss - rssBefore.rss) * 1024) / Math.max(1, opened), 1),
      gateway_cpu_idle_percent: idle.cpu_percent,
      phases,
    };
    for (const c of clients) c.send("exit");
    return result;
  } catch (err) {
    console.error(`gateway output (last lines):\n${gw.tail()}`);
    throw err;
  } finally {
    for (const c of clients) c.proc.kill("SIGKILL");
    await servers.stop();
  }
}

export async function runWs(o: WsOptions) {
  const machine = machineInfo();
  const results = [];
  for (const mode of o.modes) results.push(await measureMode(mode, o));
  printTable(results.flatMap((r) => r.phases.map((p) => ({
    mode: r.mode,
    process: r.gateway_process,
    sockets: r.opened,
    "events/s": p.event_rate_per_s,
    "delivered/expected": `${p.frames_received_agent_created}/${p.frames_expected_agent_created}`,
    "latency p50/p95/p99 ms": `${p.delivery_latency_ms.p50}/${p.delivery_latency_ms.p95}/${p.delivery_latency_ms.p99}`,
    "RSS before/open/peak MiB": `${r.gateway_rss_mib.before_sockets}/${r.gateway_rss_mib.sockets_open_idle}/${p.gateway_rss_peak_mib}`,
    "gateway CPU %": p.gateway_cpu.cpu_percent,
  }))));
  const file = writeResults("ws", { scenario: "ws", machine, options: o, results });
  console.log(`\nwritten: ${file}`);
}
