/**
 * Verifying an AgentOS webhook delivery (README "Verifying a webhook"; the scheme of
 * src/roles/notify/signature.ts): `X-AgentOS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
 * of "<t>.<raw body>">` keyed by the webhook's secret. Web Crypto only, so it runs in Bun,
 * Node 20+, Deno and edge runtimes alike.
 *
 *   const ok = await verifyWebhook({ header: req.headers.get("x-agentos-signature"), body: rawBody, secret });
 *   if (!ok) return new Response("bad signature", { status: 400 });
 */

export const SIGNATURE_HEADER = "x-agentos-signature";
/** Deduplicate deliveries on it: delivery is at least once. */
export const EVENT_ID_HEADER = "x-agentos-event-id";
/** Older signatures are refused (replays). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export interface VerifyWebhookInput {
  /** The X-AgentOS-Signature header as received. */
  header: string | null | undefined;
  /** The raw body, exactly as received (not re-serialised JSON). */
  body: string;
  /** The webhook's secret (shown once by POST /v1/webhooks). */
  secret: string;
  toleranceSeconds?: number;
  /** Milliseconds since the epoch (tests). */
  now?: number;
}

/** True when the header signs the body with the secret and is at most `toleranceSeconds` old. */
export async function verifyWebhook(input: VerifyWebhookInput): Promise<boolean> {
  const parts = new Map((input.header ?? "").split(",").map((kv) => kv.trim().split("=", 2) as [string, string]));
  const t = Number(parts.get("t"));
  const v1 = parts.get("v1") ?? "";
  if (!Number.isInteger(t) || !/^[0-9a-f]{64}$/.test(v1)) return false;
  if (Math.abs((input.now ?? Date.now()) / 1000 - t) > (input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return false;
  const expected = await hmacSha256(input.secret, `${t}.${input.body}`);
  return constantTimeEqual(expected, hexBytes(v1));
}

async function hmacSha256(secret: string, message: string): Promise<Uint8Array> {
  const encoder = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
}

const hexBytes = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (byte) => parseInt(byte, 16));

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
