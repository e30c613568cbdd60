/**
 * The FROM-scratch image built for real with podman (Debian's package; .ci/run installs it):
 * the final stage of Dockerfile.scratch over the rootfs scripts/scratch-rootfs.sh makes, for
 * the full and the slim binary. `podman run` does not work on this machine kind (no user
 * namespaces), so booting stays with test/scratch-rootfs.test.ts (chroot); this checks what
 * the image holds and how it starts. With CI=true a missing podman fails the test.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { ensureBinary } from "./support/binary";
import { buildScratchImage, podmanAvailable, type BuiltImage } from "../scripts/scratch-image";

const CI = process.env.CI === "true";
const available = podmanAvailable();
if (!available && !CI) console.warn("scratch-image: skipped: podman is not installed (apt-get install -y podman)");

const inspect = (tag: string) => {
  const r = Bun.spawnSync(["podman", "image", "inspect", tag], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return JSON.parse(r.stdout.toString())[0];
};

describe.skipIf(!available && !CI)("scratch image built with podman", () => {
  const built: BuiltImage[] = [];
  afterAll(() => {
    for (const image of built) image.remove();
  });

  test("podman is installed", () => {
    expect(available).toBe(true);
  });

  for (const variant of ["full", "slim"] as const) {
    test(`${variant}: one layer with the binary, runs /app/agentos serve as 65532`, () => {
      const binary = ensureBinary(variant);
      const image = buildScratchImage({ binary, tag: `localhost/agentos-test-${variant}:${Date.now().toString(36)}` });
      built.push(image);
      const info = inspect(image.tag);
      expect(info.Config.Entrypoint).toEqual(["/app/agentos"]);
      expect(info.Config.Cmd).toEqual(["serve"]);
      expect(info.Config.User).toBe("65532:65532");
      expect(info.Config.Env).toContain("AGENTOS_DATA_DIR=/data");
      expect(info.RootFS.Layers).toHaveLength(1);
      // the binary plus a few MB of libraries and /etc
      expect(info.Size).toBeGreaterThan(statSync(binary).size);
      expect(info.Size).toBeLessThan(statSync(binary).size + 16 * 1024 * 1024);
    }, 600_000);
  }
});
