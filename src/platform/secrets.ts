/**
 * Secrets at rest (MCP server headers, provider API keys): AES-256-GCM under a key derived
 * from `--secret-key` / AGENTOS_SECRET_KEY (SHA-256 of it, so any string of >= 32 characters
 * works). Like the JWT secret, the embedded default generates one into the data dir; with a
 * real database and no key, the key is derived from JWT_SECRET (which every process already
 * shares), with a warning, so existing deployments keep starting.
 *
 * Stored form: `v1:<base64url iv>:<base64url ciphertext+tag>`. Rotation: start every process
 * with the new key as AGENTOS_SECRET_KEY and the old one as AGENTOS_SECRET_KEY_PREVIOUS
 * (tried when the new one fails), re-save the secrets, then drop the old key.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import type { Config } from "./config";
import { FatalError } from "./errors";
import { generatedSecret } from "./generated-secret";
import { loadJwtSecret } from "./jwt";
import type { Logger } from "./logging";

const VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface SecretBox {
  encrypt(plain: string): string;
  /** Throws when the text was not sealed under one of the box's keys (or was altered). */
  decrypt(sealed: string): string;
}

const keyOf = (secret: string) => createHash("sha256").update(secret).digest();

export function createSecretBox(secret: string, previous?: string): SecretBox {
  const keys = [keyOf(secret), ...(previous ? [keyOf(previous)] : [])];
  return {
    encrypt(plain) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", keys[0], iv);
      const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final(), cipher.getAuthTag()]);
      return `${VERSION}:${iv.toString("base64url")}:${body.toString("base64url")}`;
    },
    decrypt(sealed) {
      const [version, iv64, body64] = sealed.split(":");
      if (version !== VERSION || !iv64 || !body64) throw new Error("not a sealed secret");
      const iv = Buffer.from(iv64, "base64url");
      const body = Buffer.from(body64, "base64url");
      if (body.length < TAG_BYTES) throw new Error("not a sealed secret");
      for (const key of keys) {
        try {
          const decipher = createDecipheriv("aes-256-gcm", key, iv);
          decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
          return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString("utf8");
        } catch {
          /* next key */
        }
      }
      throw new Error("the secret was sealed under another AGENTOS_SECRET_KEY");
    },
  };
}

/** The secret key: from the config, or generated once into the data dir on the embedded default. */
export function loadSecretKey(config: Config, log: Logger): string {
  if (config.secretKey) {
    if (config.secretKey.length < 32) throw new FatalError("AGENTOS_SECRET_KEY must be at least 32 characters");
    return config.secretKey;
  }
  if (config.databaseUrl) {
    log.warn("AGENTOS_SECRET_KEY not set: secrets at rest are sealed under a key derived from JWT_SECRET; set AGENTOS_SECRET_KEY in production");
    return `agentos-secrets:${loadJwtSecret(config, log)}`;
  }
  return generatedSecret(config.dataDir, "secret-key", log, "AGENTOS_SECRET_KEY not set: generated one and stored it in the data dir; set AGENTOS_SECRET_KEY in production");
}

export function loadSecretBox(config: Config, log: Logger): SecretBox {
  return createSecretBox(loadSecretKey(config, log), config.secretKeyPrevious);
}
