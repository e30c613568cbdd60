/**
 * Private PostgreSQL and Redis instances on free loopback ports, for tests that kill and
 * restart them (never the shared servers). PostgreSQL: `initdb` + `pg_ctl` in a temp dir,
 * as the `postgres` user when the tests run as root (PostgreSQL refuses to run as root).
 * The private NATS is `startNatsServer` in cluster.ts.
 */
import { chownSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "./binary";

export interface PrivateServer {
  url: string;
  port: number;
  /** Kills it (PostgreSQL: `pg_ctl stop -m immediate`; Redis: SIGKILL). */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  destroy(): Promise<void>;
}

function which(name: string, extra: string[] = []): string {
  const found = Bun.which(name) ?? extra.find((p) => Bun.file(p).size > 0);
  if (!found) throw new Error(`${name} is not installed (Debian: apt-get install postgresql redis-server) — outage tests start private instances`);
  return found;
}

export async function startPrivatePostgres(): Promise<PrivateServer> {
  const pgBin = (tool: string) => which(tool, [15, 16, 17, 14].map((v) => `/usr/lib/postgresql/${v}/bin/${tool}`));
  const asRoot = userInfo().uid === 0;
  const dir = mkdtempSync(join(tmpdir(), "agentos-pg-"));
  const data = join(dir, "data");
  const as = (cmd: string[]) => (asRoot ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd);
  const run = (cmd: string[]) => {
    const r = Bun.spawnSync(as(cmd), { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (${r.exitCode}): ${r.stderr.toString().slice(-1500)}`);
  };
  if (asRoot) {
    const { uid, gid } = postgresIds();
    chownSync(dir, uid, gid);
  }
  run([pgBin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const port = await freePort();
  // fsync=off only risks data on an OS crash; never synchronous_commit=off: an immediate stop
  // would then lose commits already acknowledged (accepted runs the test then misses).
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = async () => run([pgBin("pg_ctl"), "-D", data, "-o", options, "-l", join(dir, "log"), "-w", "-t", "30", "start"]);
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async kill() {
      run([pgBin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]);
    },
    start,
    async destroy() {
      try {
        run([pgBin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {
        /* already stopped */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("no postgres user: PostgreSQL cannot run as root, create one (apt-get install postgresql does)");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

export async function startPrivateRedis(): Promise<PrivateServer> {
  const bin = which("redis-server");
  const port = await freePort();
  let proc: Bun.Subprocess | null = null;
  const start = async () => {
    proc = Bun.spawn([bin, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const up = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((s) => (s.end(), true), () => false);
      if (up) return;
      await Bun.sleep(50);
    }
    throw new Error(`redis-server did not listen on ${port} within 10 s`);
  };
  const kill = async () => {
    const p = proc as Bun.Subprocess | null;
    if (!p || p.exitCode !== null) return;
    p.kill("SIGKILL");
    await p.exited;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, kill, start, destroy: kill };
}
