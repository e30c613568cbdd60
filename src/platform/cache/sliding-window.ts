/** Sliding-window counter: the previous window weighted by its remaining overlap, plus the current one. */
export function slidingWindow(prev: number, cur: number, now: number, limit: number, windowMs: number) {
  const windowStart = Math.floor(now / windowMs) * windowMs;
  const weight = 1 - (now - windowStart) / windowMs;
  const count = Math.floor(prev * weight) + cur;
  const resetAt = Math.ceil((windowStart + windowMs) / 1000);
  if (count >= limit) {
    // Wait until enough of the previous window has slid out (or the window ends).
    const needed = count - limit + 1;
    const retryAfterMs = prev > 0 ? Math.min(windowStart + windowMs - now, Math.ceil((needed / prev) * windowMs)) : windowStart + windowMs - now;
    return { allowed: false, limit, remaining: 0, resetAt, retryAfterMs: Math.max(1, retryAfterMs) };
  }
  return { allowed: true, limit, remaining: Math.max(0, limit - count - 1), resetAt, retryAfterMs: 0 };
}
