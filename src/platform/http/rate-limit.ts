/**
 * Rate limiting at the edge: the sliding-window counter of the cache (Redis Lua script or
 * in-process), rendered as X-RateLimit-* headers, and 429 with Retry-After past the limit.
 */
import type { Cache, RateLimitResult } from "../cache";
import { AppError } from "../errors";

function headersOf(r: { limit: number; remaining: number; resetAt: number }) {
  return {
    "x-ratelimit-limit": String(r.limit),
    "x-ratelimit-remaining": String(r.remaining),
    "x-ratelimit-reset": String(r.resetAt),
  };
}

function limited(r: RateLimitResult, windowMs: number, what: string): AppError {
  const retryAfter = String(Math.max(1, Math.ceil(r.retryAfterMs / 1000)));
  return new AppError(429, "rate_limited", `Too many ${what}; retry after ${retryAfter} s.`, { limit: r.limit, window_seconds: windowMs / 1000 }, {
    ...headersOf(r),
    "retry-after": retryAfter,
  });
}

/** One shared-store round trip per request: exact, for small limits (login, signup per IP). */
export async function enforceRateLimit(cache: Cache, key: string, limit: number, windowMs: number, what = "requests"): Promise<Record<string, string>> {
  const r = await cache.rateLimit(key, limit, windowMs);
  if (!r.allowed) throw limited(r, windowMs, what);
  return headersOf(r);
}

/**
 * A limiter for large limits on the hot path: each process reserves a batch of requests from
 * the shared window (1% of the limit, at most 100) and spends it locally, so Redis sees one
 * round trip per batch instead of one per request. A limit under 100/window reserves one at a
 * time and stays exact; above, the overshoot across N gateways is bounded by N batches, and
 * tokens left when the window turns are dropped rather than carried over.
 */
export function createBatchedLimiter(cache: Cache, windowMs: number, what = "requests") {
  interface Bucket {
    window: number;
    limit: number;
    tokens: number;
    shared?: RateLimitResult;
    /** The reservation in flight: concurrent requests wait for it instead of asking again. */
    refill?: Promise<void>;
  }
  const buckets = new Map<string, Bucket>();

  function reserve(key: string, bucket: Bucket): Promise<void> {
    const take = Math.max(1, Math.min(100, Math.floor(bucket.limit / 100)));
    bucket.refill = cache.rateLimit(key, bucket.limit, windowMs, take).then(
      (r) => {
        bucket.tokens += r.granted;
        bucket.shared = r;
        bucket.refill = undefined;
      },
      (err) => {
        bucket.refill = undefined;
        throw err;
      },
    );
    return bucket.refill;
  }

  return async function enforce(key: string, limit: number): Promise<Record<string, string>> {
    if (limit < 100) return enforceRateLimit(cache, key, limit, windowMs, what); // exact, one at a time
    const window = Math.floor(Date.now() / windowMs);
    let bucket = buckets.get(key);
    if (!bucket || bucket.window !== window || bucket.limit !== limit) {
      if (buckets.size >= 100_000) buckets.clear();
      bucket = { window, limit, tokens: 0 };
      buckets.set(key, bucket);
    }
    // Each reservation either grants tokens or reports the window full, so this ends.
    for (;;) {
      if (bucket.tokens > 0) {
        bucket.tokens--;
        const shared = bucket.shared!;
        return headersOf({ limit, remaining: shared.remaining + bucket.tokens, resetAt: shared.resetAt });
      }
      if (bucket.shared && !bucket.shared.allowed && !bucket.refill) {
        const full = bucket.shared;
        bucket.shared = undefined; // the next request asks the store again (the window slides)
        throw limited(full, windowMs, what);
      }
      await (bucket.refill ?? reserve(key, bucket));
    }
  };
}
