/**
 * The compiled binary for tests: built once when missing or older than the sources, then
 * started as a child process on a free port; `stop()` sends SIGTERM and returns the exit code.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "../..");
export const BINARY = join(REPO, "dist/agentos");
/** `bun run build --slim`: no embedded database (DATABASE_URL required), no source map. */
export const SLIM_BINARY = join(REPO, "dist/agentos-slim");

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

export function binaryIsStale(binary = BINARY): boolean {
  if (!existsSync(binary)) return true;
  const sources = ["src", "schema", "console", "sdk", "scripts/build.ts", "scripts/build-console.ts", "package.json", "package-lock.json", "tsconfig.json"].map((p) => join(REPO, p));
  return Math.max(...sources.map(newestMtime)) > statSync(binary).mtimeMs;
}

/** Builds dist/agentos with `bun run build` (or dist/agentos-slim with --slim) unless it is up to date. */
export function ensureBinary(variant: "full" | "slim" = "full"): string {
  const binary = variant === "slim" ? SLIM_BINARY : BINARY;
  if (binaryIsStale(binary)) {
    const build = Bun.spawnSync([process.execPath, "run", "build", ...(variant === "slim" ? ["--slim"] : [])], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    if (build.exitCode !== 0) throw new Error(`bun run build failed (${build.exitCode}):\n${build.stdout}\n${build.stderr}`);
  }
  return binary;
}

/**
 * Ports handed out in this test process: never the same one twice. The kernel can give a port
 * just released to the next bind(0), so two cluster members once got one port: the second
 * could not listen and exited, and its /readyz was answered by the first (every faults test
 * then failed, memory being down).
 */
const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  for (;;) {
    const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = listener.port;
    listener.stop(true);
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** What the binary prints when its port was taken between freePort and its start (by an outgoing connection's local port, say). */
export const PORT_TAKEN = /Failed to start server\. Is port \d+ in use\?/;

export interface ChildProcess {
  url: string;
  port: number;
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  output(): Promise<{ stdout: string; stderr: string }>;
  /** SIGTERM (or the given signal) and wait: the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** The minimal environment of a child process (nothing of the test runner's own settings leaks in). */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...extra };
}

type StartOptions = { env?: Record<string, string>; cmd?: string[]; readyTimeoutMs?: number };

/** Starts `cmd` (default: the compiled binary) with `--port` and waits until /readyz is 200; on another port when its port was taken meanwhile. */
export async function startChild(args: string[], opts: StartOptions = {}): Promise<ChildProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startChildOn(await freePort(), args, opts);
    } catch (err) {
      if (attempt >= 3 || !PORT_TAKEN.test(String((err as Error).message))) throw err;
    }
  }
}

async function startChildOn(port: number, args: string[], opts: StartOptions): Promise<ChildProcess> {
  const cmd = opts.cmd ?? [ensureBinary()];
  const proc = Bun.spawn([...cmd, ...args, `--port=${port}`, "--host=127.0.0.1"], {
    cwd: REPO,
    // Test tool servers and webhook receivers listen on loopback: allowed unless a test says "false".
    env: childEnv({ LOG_LEVEL: "warn", AGENTOS_ALLOW_PRIVATE_TARGETS: "true", ...opts.env }),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = {
    url,
    port,
    proc,
    output: async () => ({ stdout: await new Response(proc.stdout).text(), stderr: await new Response(proc.stderr).text() }),
    async stop(signal = "SIGTERM") {
      proc.kill(signal);
      return proc.exited;
    },
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      const { stderr } = await child.output();
      throw new Error(`process exited with ${proc.exitCode} before ready: ${stderr.slice(-2000)}`);
    }
    const ok = await fetch(`${url}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) return child;
    await Bun.sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error(`not ready within ${opts.readyTimeoutMs ?? 60_000} ms`);
}
