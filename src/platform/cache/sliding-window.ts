/**
 * Sliding-window counter: the previous window weighted by its remaining overlap, plus the
 * current one. `take` asks for several requests' worth at once (gateways take tokens in
 * batches); `granted` is how many were given (0 when limited).
 */
export function slidingWindow(prev: number, cur: number, now: number, limit: number, windowMs: number, take = 1) {
  const windowStart = Math.floor(now / windowMs) * windowMs;
  const weight = 1 - (now - windowStart) / windowMs;
  const count = Math.floor(prev * weight) + cur;
  const resetAt = Math.ceil((windowStart + windowMs) / 1000);
  if (count >= limit) {
    // Wait until enough of the previous window has slid out (or the window ends).
    const needed = count - limit + 1;
    const retryAfterMs = prev > 0 ? Math.min(windowStart + windowMs - now, Math.ceil((needed / prev) * windowMs)) : windowStart + windowMs - now;
    return { allowed: false, granted: 0, limit, remaining: 0, resetAt, retryAfterMs: Math.max(1, retryAfterMs) };
  }
  const granted = Math.min(take, limit - count);
  return { allowed: true, granted, limit, remaining: Math.max(0, limit - count - granted), resetAt, retryAfterMs: 0 };
}
