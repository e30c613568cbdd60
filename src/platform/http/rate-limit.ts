/**
 * Rate limiting at the edge: the sliding-window counter of the cache (Redis Lua script or
 * in-process), rendered as X-RateLimit-* headers, and 429 with Retry-After past the limit.
 */
import type { Cache } from "../cache";
import { AppError } from "../errors";

export async function enforceRateLimit(cache: Cache, key: string, limit: number, windowMs: number, what = "requests"): Promise<Record<string, string>> {
  const r = await cache.rateLimit(key, limit, windowMs);
  const headers = {
    "x-ratelimit-limit": String(r.limit),
    "x-ratelimit-remaining": String(r.remaining),
    "x-ratelimit-reset": String(r.resetAt),
  };
  if (!r.allowed) {
    const retryAfter = String(Math.max(1, Math.ceil(r.retryAfterMs / 1000)));
    throw new AppError(429, "rate_limited", `Too many ${what}; retry after ${retryAfter} s.`, { limit: r.limit, window_seconds: windowMs / 1000 }, {
      ...headers,
      "retry-after": retryAfter,
    });
  }
  return headers;
}
