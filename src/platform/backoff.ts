/**
 * Exponential backoff with "equal jitter": half of the ceiling fixed, half random, so many
 * clients retrying the same failure spread out. `attempt` 0 waits about `baseMs`.
 */
export function jitteredBackoffMs(baseMs: number, maxMs: number, attempt: number, random = Math.random()): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}
