/**
 * Sealed RPC envelopes: what makes the bus not a trusted network (SPEC §6). Every RPC
 * request and reply between AgentOS processes is encrypted (AES-256-CTR) and then signed
 * (HMAC-SHA256) with keys derived from the deployment's internal key. The signature covers
 * the subject, a timestamp, a random nonce, the IV and the ciphertext, so a message cannot
 * be forged, altered, moved to another subject, or replayed outside a one-minute window
 * (and a nonce is accepted once per process within it). Encryption keeps passwords, API keys
 * and tokens unreadable to anyone else on the NATS server (customer tool workers included).
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";

/** How far a request's timestamp may be from this process's clock. */
export const RPC_REPLAY_WINDOW_MS = 60_000;
export const MIN_INTERNAL_KEY_BYTES = 32;

export interface Sealed {
  v: 1;
  /** Unix ms at sealing. */
  ts: number;
  nonce: string;
  iv: string;
  ct: string;
  sig: string;
}

export type RefusalReason = "unsigned" | "bad_signature" | "stale" | "replayed" | "malformed";

export class RpcRefused extends Error {
  constructor(readonly reason: RefusalReason) {
    super(`rpc envelope refused: ${reason}`);
    this.name = "RpcRefused";
  }
}

const b64 = (buf: Buffer) => buf.toString("base64url");
const derive = (secret: string, info: string) => Buffer.from(hkdfSync("sha256", Buffer.from(secret, "utf8"), "agentos-rpc-v1", info, 32));

export function isSealed(value: unknown): value is Sealed {
  const v = value as Sealed;
  return !!v && typeof v === "object" && v.v === 1 && typeof v.ts === "number" && typeof v.nonce === "string" &&
    typeof v.iv === "string" && typeof v.ct === "string" && typeof v.sig === "string";
}

/** Nonces seen within the replay window: three rotating generations, each one window long. */
class NonceMemory {
  private generations: Set<string>[] = [new Set(), new Set(), new Set()];
  private rotatedAt = Date.now();

  /** True the first time a nonce is seen. */
  remember(nonce: string, now: number): boolean {
    if (now - this.rotatedAt >= RPC_REPLAY_WINDOW_MS) {
      this.generations = [new Set(), this.generations[0], this.generations[1]];
      this.rotatedAt = now;
    }
    if (this.generations.some((g) => g.has(nonce))) return false;
    this.generations[0].add(nonce);
    return true;
  }
}

export class RpcSeal {
  private encKey: Buffer;
  private macKey: Buffer;
  private nonces = new NonceMemory();

  constructor(internalKey: string) {
    if (Buffer.byteLength(internalKey, "utf8") < MIN_INTERNAL_KEY_BYTES) throw new Error(`the internal key must be at least ${MIN_INTERNAL_KEY_BYTES} bytes`);
    this.encKey = derive(internalKey, "encrypt");
    this.macKey = derive(internalKey, "sign");
  }

  seal(subject: string, payload: unknown, now = Date.now()): Sealed {
    const nonce = b64(randomBytes(16));
    const iv = randomBytes(16);
    const cipher = createCipheriv("aes-256-ctr", this.encKey, iv);
    const ct = b64(Buffer.concat([cipher.update(JSON.stringify(payload ?? null), "utf8"), cipher.final()]));
    const sealed = { v: 1 as const, ts: now, nonce, iv: b64(iv), ct };
    return { ...sealed, sig: this.sign(subject, sealed) };
  }

  /**
   * The payload of a sealed message on `subject`. Requests (`fresh: true`) must also be
   * recent and never seen before; replies are bound to their request by the subject.
   */
  open<T>(subject: string, value: unknown, opts: { fresh: boolean; now?: number }): T {
    if (!isSealed(value)) throw new RpcRefused(value && typeof value === "object" && "sig" in value ? "malformed" : "unsigned");
    const expected = Buffer.from(this.sign(subject, value), "base64url");
    const given = Buffer.from(value.sig, "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new RpcRefused("bad_signature");
    const now = opts.now ?? Date.now();
    if (opts.fresh) {
      if (Math.abs(now - value.ts) > RPC_REPLAY_WINDOW_MS) throw new RpcRefused("stale");
      if (!this.nonces.remember(value.nonce, now)) throw new RpcRefused("replayed");
    }
    try {
      const decipher = createDecipheriv("aes-256-ctr", this.encKey, Buffer.from(value.iv, "base64url"));
      const plain = Buffer.concat([decipher.update(Buffer.from(value.ct, "base64url")), decipher.final()]);
      return JSON.parse(plain.toString("utf8")) as T;
    } catch {
      throw new RpcRefused("malformed");
    }
  }

  /** The subject a reply to the request `nonce` on `subject` is sealed for. */
  static replySubject(subject: string, nonce: string) {
    return `reply:${subject}:${nonce}`;
  }

  private sign(subject: string, s: Omit<Sealed, "sig">) {
    return createHmac("sha256", this.macKey).update(`v1\n${subject}\n${s.ts}\n${s.nonce}\n${s.iv}\n${s.ct}`).digest("base64url");
  }
}
