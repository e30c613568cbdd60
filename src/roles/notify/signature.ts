/**
 * Webhook signatures (SPEC §2): `X-AgentOS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
 * of "<t>.<body>" keyed by the webhook secret>`. Receivers recompute it over the raw body,
 * compare in constant time and reject timestamps older than 5 minutes (replays).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "x-agentos-signature";
export const EVENT_ID_HEADER = "x-agentos-event-id";
export const SIGNATURE_TOLERANCE_SECONDS = 300;

export function signPayload(secret: string, body: string, unixSeconds = Math.floor(Date.now() / 1000)): string {
  const v1 = createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
  return `t=${unixSeconds},v1=${v1}`;
}

/** True when `header` signs `body` with `secret` and is at most `toleranceSeconds` old. */
export function verifySignature(header: string | null, body: string, secret: string, toleranceSeconds = SIGNATURE_TOLERANCE_SECONDS, now = Date.now()): boolean {
  if (!header) return false;
  const parts = Object.fromEntries(header.split(",").map((kv) => kv.trim().split("=", 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1 || !/^[0-9a-f]{64}$/.test(parts.v1)) return false;
  if (Math.abs(now / 1000 - t) > toleranceSeconds) return false;
  const expected = Buffer.from(createHmac("sha256", secret).update(`${t}.${body}`).digest("hex"), "hex");
  return timingSafeEqual(expected, Buffer.from(parts.v1, "hex"));
}
