/**
 * Idempotency keys with Stripe's semantics: the first request under a key (scoped to the
 * organization, up to 255 characters) claims it by inserting a row BEFORE it executes; its
 * response (status and body) is stored and replayed for 24 h. The same key with a different
 * body or route → 409 `idempotency_key_reused`; while the first is still running → 409
 * `request_in_progress`. A request that fails with a 5xx releases the key so it can be retried.
 */
import { and, eq, lt, sql } from "drizzle-orm";
import { idempotencyKeys } from "../../../schema";
import type { Db } from "../db";
import { AppError, badRequest, conflict } from "../errors";

const TTL_MS = 24 * 3600_000;

export interface IdempotentResult<T> {
  status: number;
  body: T;
  replayed: boolean;
}

function stableStringify(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(",")}]`;
  const keys = Object.keys(value as object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify((value as Record<string, unknown>)[k])}`).join(",")}}`;
}

/**
 * Runs `work` once per (organization, key). Without a key it just runs. `work` returns the
 * status and body of a success; an AppError it throws (4xx) is stored and replayed too.
 */
export async function withIdempotency<T>(
  db: Db,
  opts: { orgId: string; key: string | null | undefined; route: string; body: unknown },
  work: () => Promise<{ status: number; body: T }>,
): Promise<IdempotentResult<T>> {
  if (opts.key === null || opts.key === undefined) return { ...(await work()), replayed: false };
  const key = opts.key;
  if (key.length === 0 || key.length > 255) throw badRequest("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters.");
  const requestHash = new Bun.CryptoHasher("sha256").update(`${opts.route}\n${stableStringify(opts.body ?? null)}`).digest("hex");
  const now = new Date();

  // Expired keys are removed lazily, for this key only, so the claim below can succeed.
  await db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.orgId, opts.orgId), eq(idempotencyKeys.key, key), lt(idempotencyKeys.expiresAt, now)));
  const claimed = await db
    .insert(idempotencyKeys)
    .values({ orgId: opts.orgId, key, route: opts.route, requestHash, expiresAt: new Date(now.getTime() + TTL_MS) })
    .onConflictDoNothing()
    .returning({ key: idempotencyKeys.key });

  if (claimed.length === 0) {
    const [existing] = await db.select().from(idempotencyKeys).where(and(eq(idempotencyKeys.orgId, opts.orgId), eq(idempotencyKeys.key, key)));
    if (!existing) throw conflict("request_in_progress", "A request with this Idempotency-Key is being processed; retry shortly.");
    if (existing.requestHash !== requestHash) {
      throw conflict("idempotency_key_reused", "This Idempotency-Key was used with a different request; use a new key for a new request.");
    }
    if (existing.responseStatus === null) throw conflict("request_in_progress", "A request with this Idempotency-Key is still being processed; retry shortly.");
    const stored = existing.responseBody as { error?: ReturnType<AppError["toJSON"]> } & T;
    if (existing.responseStatus >= 400 && stored?.error) throw AppError.fromJSON(stored.error);
    return { status: existing.responseStatus, body: stored as T, replayed: true };
  }

  const release = () => db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.orgId, opts.orgId), eq(idempotencyKeys.key, key)));
  let result: { status: number; body: T };
  try {
    result = await work();
  } catch (err) {
    if (err instanceof AppError && err.status < 500) {
      await db.update(idempotencyKeys).set({ responseStatus: err.status, responseBody: sql`${JSON.stringify({ error: err.toJSON() })}::jsonb` })
        .where(and(eq(idempotencyKeys.orgId, opts.orgId), eq(idempotencyKeys.key, key)));
    } else {
      await release();
    }
    throw err;
  }
  await db.update(idempotencyKeys).set({ responseStatus: result.status, responseBody: sql`${JSON.stringify(result.body)}::jsonb` })
    .where(and(eq(idempotencyKeys.orgId, opts.orgId), eq(idempotencyKeys.key, key)));
  return { ...result, replayed: false };
}
