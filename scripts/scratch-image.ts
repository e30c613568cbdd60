/**
 * The FROM-scratch image built with podman from the rootfs scripts/scratch-rootfs.sh makes,
 * without the Dockerfile's first stages (they pull images from a registry): the final stage of
 * Dockerfile.scratch is used as it is, its `COPY --from=rootfs /rootfs /` pointed at the local
 * rootfs. Used by `bun run bench image` and test/scratch-image.test.ts.
 *
 *   bun run scripts/scratch-image.ts [--slim] [--tag=localhost/agentos:scratch]
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const REPO = resolve(import.meta.dir, "..");

/** The `FROM scratch` stage of Dockerfile.scratch, copying `rootfs/` from the build context. */
export function finalStage(): string {
  const text = readFileSync(join(REPO, "Dockerfile.scratch"), "utf8");
  const start = text.search(/^FROM scratch\b/m);
  if (start < 0) throw new Error("Dockerfile.scratch has no FROM scratch stage");
  const stage = text.slice(start);
  if (!/^COPY --from=rootfs \/rootfs \/$/m.test(stage)) throw new Error("Dockerfile.scratch: the final stage no longer copies /rootfs from the rootfs stage");
  return stage.replace(/^COPY --from=rootfs \/rootfs \/$/m, "COPY rootfs/ /");
}

function run(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): string {
  const r = Bun.spawnSync(cmd, { cwd: opts.cwd ?? REPO, env: { ...process.env, ...opts.env }, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (${r.exitCode}):\n${r.stdout.toString().slice(-2000)}\n${r.stderr.toString().slice(-2000)}`);
  return r.stdout.toString();
}

export const podmanAvailable = () => Bun.which("podman") !== null;

export interface BuiltImage {
  tag: string;
  id: string;
  binary: string;
  workDir: string;
  /** Removes the image and the build context. */
  remove(): void;
}

/** Assembles the rootfs around `binary` and builds the image with podman. */
export function buildScratchImage(o: { binary: string; tag: string }): BuiltImage {
  const workDir = join(tmpdir(), `agentos-image-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`);
  mkdirSync(workDir, { recursive: true });
  run(["sh", join(REPO, "scripts/scratch-rootfs.sh"), join(workDir, "rootfs")], { env: { AGENTOS_BINARY: o.binary } });
  writeFileSync(join(workDir, "Containerfile"), finalStage());
  run(["podman", "build", "--quiet", "--tag", o.tag, "--file", "Containerfile", "."], { cwd: workDir });
  const id = run(["podman", "image", "inspect", "--format", "{{.Id}}", o.tag]).trim();
  return {
    tag: o.tag,
    id,
    binary: o.binary,
    workDir,
    remove() {
      Bun.spawnSync(["podman", "rmi", "--force", o.tag], { stdout: "ignore", stderr: "ignore" });
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

export interface ImageSizes {
  /** `podman save <image> | gzip -9`, bytes (the measure). */
  save_gzip9: number;
  /** Blobs of `podman push --compression-format zstd` to an OCI layout (podman's default zstd level): what a registry stores and serves. */
  oci_zstd: number;
  /** The same with the layer recompressed at `zstd -19` (podman 4.3 has no --compression-level). */
  oci_zstd19: number;
  /** Blobs of `podman push --compression-format gzip` (default level). */
  oci_gzip: number;
  /** The image's size uncompressed (podman image inspect .Size). */
  raw: number;
}

/** Bytes of every blob of an OCI layout, and the paths of its layers (the blobs that are not JSON). */
function ociBlobs(dir: string): { total: number; layers: string[] } {
  const blobs = join(dir, "blobs/sha256");
  let total = 0;
  const layers: string[] = [];
  for (const f of readdirSync(blobs)) {
    const path = join(blobs, f);
    const size = statSync(path).size;
    total += size;
    const head = readFileSync(path).subarray(0, 1).toString();
    if (head !== "{") layers.push(path);
  }
  return { total, layers };
}

const pipeBytes = (script: string, ...args: string[]) => {
  const r = Bun.spawnSync(["sh", "-c", `${script} | wc -c`, "sh", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${script} failed: ${r.stderr.toString()}`);
  return Number(r.stdout.toString().trim());
};

/** The image's size the ways `podman save` or a registry would ship it. */
export function measureImage(image: BuiltImage): ImageSizes {
  const push = (format: "zstd" | "gzip") => {
    const dir = join(image.workDir, `oci-${format}`);
    rmSync(dir, { recursive: true, force: true });
    run(["podman", "push", "--quiet", "--compression-format", format, image.tag, `oci:${dir}`]);
    return ociBlobs(dir);
  };
  const zstd = push("zstd");
  const gzip = push("gzip");
  const layersBytes = zstd.layers.reduce((n, l) => n + statSync(l).size, 0);
  const layers19 = zstd.layers.reduce((n, l) => n + pipeBytes(`zstd -dc "$1" | zstd -19 -T0 -q -c`, l), 0);
  return {
    save_gzip9: pipeBytes(`podman save "$1" | gzip -9`, image.tag),
    oci_zstd: zstd.total,
    oci_zstd19: zstd.total - layersBytes + layers19,
    oci_gzip: gzip.total,
    raw: Number(run(["podman", "image", "inspect", "--format", "{{.Size}}", image.tag]).trim()),
  };
}

if (import.meta.main) {
  const slim = Bun.argv.includes("--slim");
  const tag = Bun.argv.find((a) => a.startsWith("--tag="))?.slice(6) ?? `localhost/agentos:scratch${slim ? "-slim" : ""}`;
  const image = buildScratchImage({ binary: join(REPO, slim ? "dist/agentos-slim" : "dist/agentos"), tag });
  rmSync(image.workDir, { recursive: true, force: true });
  console.log(`built ${tag} (${image.id.slice(0, 12)})`);
}
