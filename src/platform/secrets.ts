/**
 * Secrets at rest (provider API keys, MCP headers): AES-256-GCM with a key from
 * `--secret-key` / AGENTOS_SECRET_KEY. Sealed text is versioned and names its key:
 *
 *   v1:<keyid>:<iv>:<ciphertext>:<tag>      (each part base64url; keyid = 8 bytes of SHA-256(key))
 *
 * so a rotation is: start with the new key in AGENTOS_SECRET_KEY and the old one in
 * AGENTOS_SECRET_KEY_PREVIOUS; everything sealed before still opens (by its key id), new
 * secrets are sealed with the new key; re-save (or re-create) them, then drop the old key.
 * On the embedded default a key is generated once into the data dir (like the JWT secret);
 * with a real database every process must share the key, so it must be configured — without
 * one, storing a secret is refused (503 secret_key_missing) and nothing is stored in clear.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import type { Config } from "./config";
import { AppError } from "./errors";
import { generatedSecret } from "./generated-secret";
import type { Logger } from "./logging";

const VERSION = "v1";
const IV_BYTES = 12;

interface SecretKey {
  id: string;
  key: Buffer;
}

const b64 = (b: Buffer) => b.toString("base64url");
const unb64 = (s: string) => Buffer.from(s, "base64url");

function deriveKey(passphrase: string): SecretKey {
  const key = createHash("sha256").update(passphrase, "utf8").digest();
  return { id: b64(createHash("sha256").update(key).digest().subarray(0, 8)), key };
}

/** Seals with the current key; opens with the current or any previous key (by key id). */
export class SecretBox {
  private readonly current: SecretKey | null;
  private readonly byId = new Map<string, SecretKey>();

  constructor(currentKey: string | null, previousKeys: readonly string[] = []) {
    this.current = currentKey ? deriveKey(currentKey) : null;
    for (const k of [...(this.current ? [this.current] : []), ...previousKeys.map(deriveKey)]) if (!this.byId.has(k.id)) this.byId.set(k.id, k);
  }

  get configured() {
    return this.current !== null;
  }

  encrypt(plain: string): string {
    if (!this.current) throw new AppError(503, "secret_key_missing", "This deployment has no secret key (AGENTOS_SECRET_KEY) to encrypt secrets at rest; ask the operator to set one.");
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.current.key, iv);
    // The header is authenticated too: a sealed value cannot be relabelled to another key or version.
    cipher.setAAD(Buffer.from(`${VERSION}:${this.current.id}`));
    const ct = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return [VERSION, this.current.id, b64(iv), b64(ct), b64(cipher.getAuthTag())].join(":");
  }

  decrypt(sealed: string): string {
    const parts = sealed.split(":");
    if (parts.length !== 5 || parts[0] !== VERSION) throw new Error("secrets: not a sealed v1 value");
    const [version, keyId, iv, ct, tag] = parts;
    const key = this.byId.get(keyId);
    if (!key) throw new Error(`secrets: sealed with key ${keyId}, which is neither AGENTOS_SECRET_KEY nor in AGENTOS_SECRET_KEY_PREVIOUS`);
    const decipher = createDecipheriv("aes-256-gcm", key.key, unb64(iv));
    decipher.setAAD(Buffer.from(`${version}:${keyId}`));
    decipher.setAuthTag(unb64(tag));
    return Buffer.concat([decipher.update(unb64(ct)), decipher.final()]).toString("utf8");
  }

  /** True when `sealed` was sealed with a previous key (re-seal it after a rotation). */
  isStale(sealed: string): boolean {
    return sealed.split(":")[1] !== this.current?.id;
  }
}

/**
 * The deployment's secret box: AGENTOS_SECRET_KEY (+ previous keys); on the embedded default
 * without one, a key generated once and kept in `<data dir>/secret-key`.
 */
export function loadSecretBox(config: Config, log: Logger): SecretBox {
  if (config.secretKey) return new SecretBox(config.secretKey, config.secretKeyPrevious);
  if (config.databaseUrl) {
    log.warn("AGENTOS_SECRET_KEY not set: secrets (provider API keys, MCP server headers) cannot be stored; set it on every process");
    return new SecretBox(null, config.secretKeyPrevious);
  }
  const key = generatedSecret(config.dataDir, "secret-key", log, "AGENTOS_SECRET_KEY not set: generated one and stored it in the data dir; set AGENTOS_SECRET_KEY in production");
  return new SecretBox(key, config.secretKeyPrevious);
}

let processBox: SecretBox | null = null;

/** Sets the box behind encryptSecret/decryptSecret (the process's configuration, at start-up). */
export function useSecretBox(box: SecretBox) {
  processBox = box;
}

function box(): SecretBox {
  if (!processBox) throw new Error("secrets: no secret box configured (useSecretBox at start-up)");
  return processBox;
}

/** AES-256-GCM under the process's current key: `v1:<keyid>:<iv>:<ct>:<tag>`. */
export const encryptSecret = (plain: string): string => box().encrypt(plain);
/** Opens a sealed value with the current or a previous key; throws on tampering or an unknown key. */
export const decryptSecret = (sealed: string): string => box().decrypt(sealed);
