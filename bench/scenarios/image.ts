/**
 * image: the FROM-scratch image built with podman (scripts/scratch-image.ts) for the full and
 * the slim binary, its size as `podman save | gzip -9` and as a registry would hold it with
 * zstd layers (`podman push --compression-format zstd` to an OCI layout; the layer also at
 * zstd -19), against the goals; Bun's runtime alone the same ways (what is not ours); and
 * what our payload on top of the runtime holds (the bundle's outputs, raw / gzip -9 / zstd -19).
 * Sizes are bytes, so these figures do not depend on the machine's load.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { postgresPatchPlugin } from "../../src/platform/db/postgres-patch";
import { ensureBinary } from "../../test/support/binary";
import { buildScratchImage, measureImage, podmanAvailable } from "../../scripts/scratch-image";
import { machineInfo } from "../lib/machine";
import { printTable, writeResults } from "../lib/results";
import { REPO } from "../lib/target";

export const IMAGE_GOALS = { zstd_mb: 45, gzip_mb: 56 };
const MB = 1e6;
const mb = (bytes: number) => Math.round((bytes / MB) * 10) / 10;

function compressedBytes(file: string) {
  const count = (cmd: string) => Number(Bun.spawnSync(["sh", "-c", `${cmd} < "$1" | wc -c`, "sh", file], { stdout: "pipe" }).stdout.toString().trim());
  return { raw: Bun.file(file).size, gzip9: count("gzip -9 -c"), zstd19: count("zstd -19 -T0 -q -c") };
}

/** What the bundle embeds, file by file (a plain build of the same entry points and options). */
async function payload() {
  const out = mkdtempSync(join(tmpdir(), "agentos-payload-"));
  try {
    const r = await Bun.build({
      entrypoints: [join(REPO, "src/main.ts"), join(REPO, "src/roles/tools/schema-worker.ts")],
      root: join(REPO, "src"),
      outdir: out,
      target: "bun",
      format: "esm",
      minify: { whitespace: true, syntax: true, identifiers: false },
      plugins: [postgresPatchPlugin],
      sourcemap: "linked",
    });
    return r.outputs
      .filter((o) => o.size > 20_000)
      .map((o) => ({ file: relative(out, o.path).replace(/-[a-z0-9]{8}(?=\.)/, ""), kind: o.kind, ...compressedBytes(o.path) }))
      .sort((a, b) => b.raw - a.raw);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

export async function runImage() {
  if (!podmanAvailable()) {
    console.error("bench: image needs podman: apt-get install -y podman");
    process.exit(1);
  }
  const machine = machineInfo();
  const runtime = compressedBytes(process.execPath);
  console.log(`\n== image: Bun's runtime alone (${process.execPath}): ${mb(runtime.raw)} MB raw, ${mb(runtime.gzip9)} MB gzip -9, ${mb(runtime.zstd19)} MB zstd -19`);
  const images = [];
  for (const variant of ["full", "slim"] as const) {
    const binary = ensureBinary(variant);
    console.log(`   building the ${variant} image (podman, FROM scratch, ${relative(REPO, binary)})…`);
    const image = buildScratchImage({ binary, tag: `localhost/agentos-bench:${variant}` });
    try {
      images.push({ variant, binary_bytes: Bun.file(binary).size, ...measureImage(image) });
    } finally {
      image.remove();
    }
  }
  const files = await payload();
  const rows = images.map((i) => ({
    image: i.variant,
    "binary MB": mb(i.binary_bytes),
    "raw MB": mb(i.raw),
    "podman save | gzip -9 MB": mb(i.save_gzip9),
    [`gzip goal ≤ ${IMAGE_GOALS.gzip_mb}`]: i.save_gzip9 / MB <= IMAGE_GOALS.gzip_mb ? "met" : "MISSED",
    "OCI zstd (podman) MB": mb(i.oci_zstd),
    "OCI zstd -19 MB": mb(i.oci_zstd19),
    [`zstd goal ≤ ${IMAGE_GOALS.zstd_mb}`]: i.oci_zstd19 / MB <= IMAGE_GOALS.zstd_mb ? "met" : "MISSED",
    "ours on top of Bun, gzip / zstd-19 MB": `${mb(i.save_gzip9 - runtime.gzip9)} / ${mb(i.oci_zstd19 - runtime.zstd19)}`,
  }));
  console.log("");
  printTable(rows);
  console.log("\nWhat the bundle embeds (files over 20 kB; the slim build leaves out pglite.*, initdb.wasm and the maps):");
  printTable(files.map((f) => ({ file: f.file, kind: f.kind, "raw MB": mb(f.raw), "gzip -9 MB": mb(f.gzip9), "zstd -19 MB": mb(f.zstd19) })));
  const file = writeResults("image", { scenario: "image", machine, goals: IMAGE_GOALS, runtime, images, payload: files });
  console.log(`\nwritten: ${file}`);
}
