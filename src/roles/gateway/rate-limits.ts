/**
 * Per-organization API rate limit at the edge. The plan's requests-per-minute come from the
 * billing role and are cached in-process for ~30 s (dropped early when billing announces a
 * plan change), and requests are reserved from the shared window in batches, so the hot path
 * is two Map lookups and a Redis round trip only once per batch.
 */
import type { Cache } from "../../platform/cache";
import type { Principal } from "../../platform/principal";
import { createBatchedLimiter } from "../../platform/http/rate-limit";
import type { Logger } from "../../platform/logging";
import type { PlanLimits } from "../billing/contract";

const LIMITS_TTL_MS = 30_000;
/** While billing cannot be reached and the org's limit was never read: a conservative limit, retried soon. */
const FALLBACK_REQUESTS_PER_MINUTE = 60;
const FALLBACK_TTL_MS = 5_000;
const MAX_ORGS = 100_000;
export const RATE_WINDOW_MS = 60_000;

export function createOrgRateLimiter(deps: { cache: Cache; log: Logger; getLimits(orgId: string): Promise<PlanLimits> }) {
  /** `value`: the limit once billing answered, so the fast path can use it without waiting. */
  interface KnownLimit {
    rpm: Promise<number>;
    until: number;
    value?: number;
  }
  const limits = new Map<string, KnownLimit>();
  /** The last limit billing gave for each org: kept through an outage of billing or the bus. */
  const lastKnown = new Map<string, number>();
  const enforce = createBatchedLimiter(deps.cache, RATE_WINDOW_MS);

  function requestsPerMinute(orgId: string): Promise<number> {
    const now = Date.now();
    const hit = limits.get(orgId);
    if (hit && hit.until > now) return hit.rpm;
    const entry = { until: now + LIMITS_TTL_MS } as KnownLimit;
    entry.rpm = deps.getLimits(orgId).then(
      (l) => {
        lastKnown.set(orgId, l.requests_per_minute);
        entry.value = l.requests_per_minute;
        return l.requests_per_minute;
      },
      (err) => {
        // The plan's limit from before the outage, not a far lower one that would turn the
        // org's normal traffic into 429s while billing is unreachable.
        const fallback = lastKnown.get(orgId) ?? FALLBACK_REQUESTS_PER_MINUTE;
        deps.log.warn("rate limit: plan limits unavailable; using the last known or the fallback", { org_id: orgId, requests_per_minute: fallback, error: (err as Error).message });
        limits.set(orgId, { rpm: Promise.resolve(fallback), until: Date.now() + FALLBACK_TTL_MS });
        return fallback;
      },
    );
    if (limits.size >= MAX_ORGS) limits.clear();
    if (lastKnown.size >= MAX_ORGS) lastKnown.clear();
    limits.set(orgId, entry);
    return entry.rpm;
  }

  return {
    /** The auth guard's afterAuth: X-RateLimit-* headers, or 429 with Retry-After. */
    async afterAuth(principal: Principal): Promise<Record<string, string>> {
      const rpm = await requestsPerMinute(principal.orgId);
      return enforce(`org:${principal.orgId}`, rpm);
    },
    /** afterAuth from memory: the org's limit is known and this process holds an allowance for it. */
    afterAuthNow(principal: Principal): Record<string, string> | undefined {
      const hit = limits.get(principal.orgId);
      if (!hit || hit.value === undefined || hit.until <= Date.now()) return undefined;
      return enforce.now(`org:${principal.orgId}`, hit.value);
    },
    forget(orgId?: string) {
      if (orgId) limits.delete(orgId);
      else limits.clear();
    },
  };
}
