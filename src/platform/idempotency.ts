/**
 * Idempotency keys with Stripe's semantics: the first request under a key (scoped to the
 * organization, up to 255 characters) claims it by inserting a row BEFORE it executes; its
 * response (status and body) is stored and replayed for 24 h. The same key with a different
 * body or route → 409 `idempotency_key_reused`; while the first is still running → 409
 * `request_in_progress`. A request that fails with a 5xx releases the key so it can be retried.
 *
 * A claim still without a response after `staleClaimMs` (--idempotency-stale, default 60 s, well past
 * the 15 s inter-role RPC timeout) was abandoned — its process died (kill -9, OOM) between
 * claiming and answering — and the next retry takes it over; otherwise the key would answer
 * `request_in_progress` for 24 h. The claim's `created_at` is its fencing token: an abandoned
 * request that wakes up cannot overwrite or release its successor's claim.
 *
 * Taking over is only safe if the abandoned work did not commit. A work that writes in one
 * transaction calls `commit(tx, result)` inside it: the response is then stored atomically with
 * the effect (and the transaction fails if the claim is no longer its own), so a retry either
 * replays it or re-executes work that never happened. Works that do not call it keep a small
 * window (the effect committed, the process died before the response was stored) in which a
 * retry that takes over executes them again.
 */
import { sha256Hex } from "./hash";
import { and, eq, isNull, lt, sql } from "drizzle-orm";
import { idempotencyKeys } from "../../schema";
import type { Db, DbOrTx } from "./db";
import { AppError, badRequest, conflict } from "./errors";
import { outageOf } from "./outage";

const TTL_MS = 24 * 3600_000;

/**
 * What the HTTP layer hands a create (the `idempotent` macro, src/platform/http/idempotency.ts):
 * the client's Idempotency-Key and the canonical route (`POST /v1/threads/:id/runs`). Plain
 * JSON, so it crosses RPC to the service that owns the transaction.
 */
export interface IdempotencyScope {
  key: string;
  route: string;
}

/** One create: the scope (null without a key), and what makes the request's hash. */
export interface IdempotentRequest {
  orgId: string;
  scope: IdempotencyScope | null | undefined;
  /** The path's ids. */
  params?: Record<string, string>;
  body: unknown;
  /** --idempotency-stale: an unanswered claim older than this is taken over by a retry. */
  staleClaimMs: number;
}

/** Retries `attempt` every second until it succeeds or `forMs` has passed (the claim is stale by then anyway). */
function retryInBackground(attempt: () => Promise<unknown>, forMs: number) {
  const until = Date.now() + forMs;
  const tick = () => {
    attempt().catch(() => {
      if (Date.now() < until) setTimeout(tick, 1_000).unref?.();
    });
  };
  setTimeout(tick, 1_000).unref?.();
}

/** Stores the response inside the work's own transaction (see the header). */
export type CommitResponse<T> = (tx: DbOrTx, result: { status: number; body: T }) => Promise<void>;

export interface IdempotentResult<T> {
  status: number;
  body: T;
  replayed: boolean;
}

/** What identifies a request under its key: route, path ids and body (key order ignored). */
export const requestHashOf = (route: string, params: Record<string, string> | undefined, body: unknown) => sha256Hex(`${route}\n${stableStringify({ params: params ?? {}, body: body ?? null })}`);

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
  opts: IdempotentRequest,
  work: (commit: CommitResponse<T>) => Promise<{ status: number; body: T }>,
): Promise<IdempotentResult<T>> {
  if (!opts.scope) return { ...(await work(async () => {})), replayed: false };
  const { key, route } = opts.scope;
  if (key.length === 0 || key.length > 255) throw badRequest("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters.");
  const requestHash = requestHashOf(route, opts.params, opts.body);
  const now = new Date();

  // Expired keys are removed lazily, for this key only, so the claim below can succeed.
  await db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.orgId, opts.orgId), eq(idempotencyKeys.key, key), lt(idempotencyKeys.expiresAt, now)));
  const claimTime = sql<string>`${idempotencyKeys.createdAt}::text`;
  const claimed = await db
    .insert(idempotencyKeys)
    .values({ orgId: opts.orgId, key, route: route, requestHash, expiresAt: new Date(now.getTime() + TTL_MS) })
    .onConflictDoNothing()
    .returning({ at: claimTime });

  let claimedAt = claimed[0]?.at;
  if (claimedAt === undefined) {
    const [existing] = await db.select().from(idempotencyKeys).where(and(eq(idempotencyKeys.orgId, opts.orgId), eq(idempotencyKeys.key, key)));
    if (!existing) throw conflict("request_in_progress", "A request with this Idempotency-Key is being processed; retry shortly.");
    if (existing.requestHash !== requestHash) {
      throw conflict("idempotency_key_reused", "This Idempotency-Key was used with a different request; use a new key for a new request.");
    }
    if (existing.responseStatus === null) {
      // Take over an abandoned claim (conditional: of concurrent retries, one wins).
      const [taken] = await db
        .update(idempotencyKeys)
        .set({ createdAt: sql`now()`, expiresAt: new Date(now.getTime() + TTL_MS) })
        .where(and(
          eq(idempotencyKeys.orgId, opts.orgId),
          eq(idempotencyKeys.key, key),
          isNull(idempotencyKeys.responseStatus),
          sql`${idempotencyKeys.createdAt} < now() - make_interval(secs => ${opts.staleClaimMs / 1000})`,
        ))
        .returning({ at: claimTime });
      if (!taken) throw conflict("request_in_progress", "A request with this Idempotency-Key is still being processed; retry shortly.");
      claimedAt = taken.at;
    } else {
      const stored = existing.responseBody as { error?: ReturnType<AppError["toJSON"]> } & T;
      if (existing.responseStatus >= 400 && stored?.error) throw AppError.fromJSON(stored.error);
      return { status: existing.responseStatus, body: stored as T, replayed: true };
    }
  }

  // Only this claim (fenced by its created_at), and only while unanswered, is answered or released.
  const mine = and(
    eq(idempotencyKeys.orgId, opts.orgId),
    eq(idempotencyKeys.key, key),
    sql`${idempotencyKeys.createdAt} = ${claimedAt}::timestamptz`,
    isNull(idempotencyKeys.responseStatus),
  );
  const release = () => db.delete(idempotencyKeys).where(mine);
  let committedInWork = false;
  const commit: CommitResponse<T> = async (tx, r) => {
    const stored = await tx
      .update(idempotencyKeys)
      .set({ responseStatus: r.status, responseBody: sql`${JSON.stringify(r.body)}::jsonb` })
      .where(mine)
      .returning({ key: idempotencyKeys.key });
    // Taken over by a retry (this request was presumed dead): roll the work back, it runs there.
    if (stored.length === 0) throw conflict("request_in_progress", "A retry with this Idempotency-Key took over this request; retry to get its result.");
    committedInWork = true;
  };
  let result: { status: number; body: T };
  try {
    result = await work(commit);
  } catch (err) {
    if (err instanceof AppError && err.status < 500) {
      await db.update(idempotencyKeys).set({ responseStatus: err.status, responseBody: sql`${JSON.stringify({ error: err.toJSON() })}::jsonb` }).where(mine);
    } else {
      await release().catch((releaseErr) => {
        // The database went away (often the cause of this 5xx): release the claim once it is
        // back, so that a retry is not answered request_in_progress until the claim goes stale.
        if (!outageOf(releaseErr)) throw releaseErr;
        retryInBackground(release, opts.staleClaimMs);
      });
    }
    throw err;
  }
  if (!committedInWork) await db.update(idempotencyKeys).set({ responseStatus: result.status, responseBody: sql`${JSON.stringify(result.body)}::jsonb` }).where(mine);
  return { ...result, replayed: false };
}
