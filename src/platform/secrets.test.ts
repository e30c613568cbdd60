/** Secrets at rest: AES-256-GCM, versioned and key-tagged, rotation by previous keys. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "./config";
import { silentLogger } from "./logging";
import { decryptSecret, encryptSecret, loadSecretBox, SecretBox, useSecretBox } from "./secrets";

const OLD = "old-secret-key-that-is-long-enough-0123456789";
const NEW = "new-secret-key-that-is-long-enough-0123456789";

describe("secrets", () => {
  test("seals as v1:<keyid>:<iv>:<ct>:<tag> (base64url), never the plain text; each seal differs", () => {
    const box = new SecretBox(NEW);
    const a = box.encrypt("sk-live-123");
    const b = box.encrypt("sk-live-123");
    expect(a).toMatch(/^v1:[A-Za-z0-9_-]{11}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]{22}$/);
    expect(a).not.toContain("sk-live");
    expect(a).not.toBe(b);
    expect(box.decrypt(a)).toBe("sk-live-123");
  });

  test("rotation: the old key in the previous list still decrypts; new seals use the new key", () => {
    const sealedOld = new SecretBox(OLD).encrypt("provider key");
    const rotated = new SecretBox(NEW, [OLD]);
    expect(rotated.decrypt(sealedOld)).toBe("provider key");
    expect(rotated.isStale(sealedOld)).toBe(true);
    const sealedNew = rotated.encrypt("provider key");
    expect(rotated.isStale(sealedNew)).toBe(false);
    expect(() => new SecretBox(OLD).decrypt(sealedNew)).toThrow(/neither AGENTOS_SECRET_KEY/);
    expect(() => new SecretBox(NEW).decrypt(sealedOld)).toThrow(/neither AGENTOS_SECRET_KEY/);
  });

  test("tampering (ciphertext, tag, or a relabelled key id) fails authentication", () => {
    const box = new SecretBox(NEW, [OLD]);
    const [v, id, iv, ct, tag] = box.encrypt("abc").split(":");
    const flip = (s: string) => (s[0] === "A" ? "B" : "A") + s.slice(1);
    expect(() => box.decrypt([v, id, iv, flip(ct), tag].join(":"))).toThrow();
    expect(() => box.decrypt([v, id, iv, ct, flip(tag)].join(":"))).toThrow();
    const oldId = new SecretBox(OLD).encrypt("x").split(":")[1];
    expect(() => box.decrypt([v, oldId, iv, ct, tag].join(":"))).toThrow();
    expect(() => box.decrypt("plain")).toThrow(/not a sealed/);
  });

  test("no key: refused with 503 secret_key_missing, never stored in clear", () => {
    expect(() => new SecretBox(null).encrypt("x")).toThrow(expect.objectContaining({ status: 503, code: "secret_key_missing" }));
  });

  test("the embedded default generates a key once (0600) in the data dir; the process box backs encryptSecret", () => {
    const dir = mkdtempSync(join(tmpdir(), "secrets-"));
    try {
      const config = { ...parseConfig([], {}), dataDir: dir };
      const first = loadSecretBox(config, silentLogger);
      const sealed = first.encrypt("kept");
      expect(statSync(join(dir, "secret-key")).mode & 0o777).toBe(0o600);
      const again = loadSecretBox(config, silentLogger);
      expect(again.decrypt(sealed)).toBe("kept");
      useSecretBox(again);
      expect(decryptSecret(encryptSecret("through the process box"))).toBe("through the process box");
      expect(readFileSync(join(dir, "secret-key"), "utf8").trim().length).toBeGreaterThanOrEqual(32);
      expect(() => parseConfig(["--secret-key=short"], {})).toThrow(/at least 32/);
      expect(parseConfig([], { AGENTOS_SECRET_KEY: NEW, AGENTOS_SECRET_KEY_PREVIOUS: `${OLD}, ${OLD}` }).secretKeyPrevious).toEqual([OLD, OLD]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
