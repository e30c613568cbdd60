/**
 * The FROM-scratch image, without Docker: build dist/agentos (when missing or
 * older than the sources), assemble the image's rootfs with
 * scripts/scratch-rootfs.sh, then (as root) run the binary in a chroot of it,
 * as uid 65532 with only /proc mounted, exactly what the image gives it:
 * /readyz must answer 200 within 60 s, SIGTERM must exit 0, and a second boot
 * on the same /data must come up again (PGlite persisted under /data/pglite).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureBinary, freePort } from "./support/binary";

const REPO = resolve(import.meta.dir, "..");
const BIN = join(REPO, "dist/agentos");
const MAIN = join(REPO, "src/main.ts");
const SCRIPT = join(REPO, "scripts/scratch-rootfs.sh");
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

const isRoot = process.getuid?.() === 0;
const haveTools = ["unshare", "chroot", "mount", "umount", "ldd"].every((t) => Bun.which(t, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }));
const hasMain = existsSync(MAIN);

if (!hasMain) console.warn(`scratch-rootfs: skipped: ${MAIN} does not exist yet`);
else if (!isRoot) console.warn("scratch-rootfs: chroot boot test skipped: run as root (e.g. `sudo bun test test/scratch-rootfs.test.ts`) to boot the binary in the scratch rootfs");
else if (!haveTools) console.warn("scratch-rootfs: chroot boot test skipped: needs unshare, chroot, mount, umount, ldd");

function procMounted(root: string): boolean {
  const target = join(root, "proc");
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[1] === target);
}

function tail(path: string, lines = 40): string {
  if (!existsSync(path)) return "(no output)";
  return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
}

let workDir = "";
let rootfs = "";

describe.skipIf(!hasMain)("scratch image rootfs", () => {
  beforeAll(() => {
    ensureBinary();
    workDir = mkdtempSync(join(tmpdir(), "agentos-scratch-"));
    rootfs = join(workDir, "rootfs");
    const assemble = Bun.spawnSync(["sh", SCRIPT, rootfs], {
      cwd: REPO,
      env: { ...process.env, AGENTOS_BINARY: BIN },
      stdout: "pipe",
      stderr: "pipe",
    });
    if (assemble.exitCode !== 0) {
      throw new Error(`scratch-rootfs.sh failed (${assemble.exitCode}):\n${assemble.stdout.toString()}\n${assemble.stderr.toString()}`);
    }
  }, 600_000);

  afterAll(() => {
    if (!workDir) return;
    if (rootfs && procMounted(rootfs)) Bun.spawnSync(["umount", "-l", join(rootfs, "proc")]);
    if (rootfs && procMounted(rootfs)) throw new Error(`${rootfs}/proc is still mounted; not removing ${workDir}`);
    rmSync(workDir, { recursive: true, force: true });
  });

  test("contains the binary, loader, libraries, CA bundle, users and dirs", () => {
    expect(statSync(join(rootfs, "app/agentos")).mode & 0o111).toBeTruthy();
    expect(statSync(join(rootfs, "app/agentos")).size).toBe(statSync(BIN).size);
    const ldd = Bun.spawnSync(["ldd", BIN]).stdout.toString();
    for (const line of ldd.split("\n")) {
      const m = line.match(/=>\s+(\/\S+)/) ?? line.match(/^\s*(\/\S+)/);
      if (m) expect(statSync(join(rootfs, m[1])).isFile()).toBe(true); // dereferenced, not a symlink
    }
    expect(readFileSync(join(rootfs, "etc/ssl/certs/ca-certificates.crt"), "utf8")).toContain("BEGIN CERTIFICATE");
    expect(readFileSync(join(rootfs, "etc/passwd"), "utf8")).toMatch(/^agentos:x:65532:65532:/m);
    expect(readFileSync(join(rootfs, "etc/group"), "utf8")).toMatch(/^agentos:x:65532:/m);
    expect(statSync(join(rootfs, "tmp")).mode & 0o7777).toBe(0o1777);
    expect(statSync(join(rootfs, "proc")).isDirectory()).toBe(true);
    expect(readdirSync(join(rootfs, "proc"))).toEqual([]);
    if (isRoot) expect(statSync(join(rootfs, "data")).uid).toBe(65532);
  });

  test.skipIf(!isRoot || !haveTools)(
    "boots in a chroot as uid 65532, gets ready, stops cleanly on SIGTERM, reboots on the same /data",
    async () => {
      for (const boot of [1, 2]) {
        const port = await freePort();
        const log = join(workDir, `boot-${boot}.log`);
        const logFd = openSync(log, "w");
        const started = performance.now();
        const proc = Bun.spawn(
          [
            "unshare", "-m", "sh", "-c",
            'mount -t proc proc "$1/proc" && exec chroot --userspec=65532:65532 "$1" /app/agentos serve --role=all --port="$2" --data-dir=/data',
            "sh", rootfs, String(port),
          ],
          {
            // What the image gives it: no DATABASE_URL etc. from the test environment.
            env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/data", AGENTOS_DATA_DIR: "/data" },
            stdout: logFd,
            stderr: logFd,
          },
        );
        try {
          let readyAfter = -1;
          while (performance.now() - started < READY_TIMEOUT_MS) {
            if (proc.exitCode !== null) break;
            const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) }).catch(() => null);
            if (res?.status === 200) {
              readyAfter = performance.now() - started;
              break;
            }
            await Bun.sleep(100);
          }
          if (readyAfter < 0) throw new Error(`boot ${boot}: not ready within ${READY_TIMEOUT_MS} ms (exit ${proc.exitCode}); output:\n${tail(log)}`);
          console.log(`scratch-rootfs: boot ${boot} ready after ${Math.round(readyAfter)} ms`);

          for (const path of ["/healthz", "/metrics"]) {
            const res = await fetch(`http://127.0.0.1:${port}${path}`);
            expect({ path, status: res.status }).toEqual({ path, status: 200 });
          }
          // Runs as the unprivileged user (pid of unshare == pid of agentos: sh and chroot exec).
          const status = readFileSync(`/proc/${proc.pid}/status`, "utf8");
          expect(status).toMatch(/^Uid:\s+65532\s/m);

          proc.kill("SIGTERM");
          const code = await Promise.race([proc.exited, Bun.sleep(STOP_TIMEOUT_MS).then(() => "timeout" as const)]);
          if (code === "timeout") throw new Error(`boot ${boot}: still running ${STOP_TIMEOUT_MS} ms after SIGTERM; output:\n${tail(log)}`);
          expect({ boot, exitCode: code }).toEqual({ boot, exitCode: 0 });
        } finally {
          if (proc.exitCode === null) {
            proc.kill("SIGKILL");
            await proc.exited;
          }
          closeSync(logFd);
        }
        expect(existsSync(join(rootfs, "data/pglite/PG_VERSION"))).toBe(true);
        expect(statSync(join(rootfs, "data/pglite")).uid).toBe(65532);
      }
    },
    2 * (READY_TIMEOUT_MS + STOP_TIMEOUT_MS) + 10_000,
  );
});
