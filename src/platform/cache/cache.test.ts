/** One contract, two stores: in-process and Redis (atomic Lua sliding window). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { describeReal, dropRedisNamespace, REAL_URLS, uniqueName } from "../../../test/support/backends";
import { silentLogger } from "../logging";
import { openCache, type Cache } from "./index";
import { slidingWindow } from "./sliding-window";

function cacheContract(open: () => Promise<{ cache: Cache; cleanup(): Promise<void> }>) {
  let cache: Cache;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ cache, cleanup } = await open());
  });
  afterAll(async () => {
    await cache.close();
    await cleanup();
  });

  test("get/set/del with expiry", async () => {
    await cache.set("k", { a: 1 }, 200);
    expect(await cache.get<{ a: number }>("k")).toEqual({ a: 1 });
    await cache.del("k");
    expect(await cache.get("k")).toBeUndefined();
    await cache.set("short", 1, 30);
    await Bun.sleep(60);
    expect(await cache.get("short")).toBeUndefined();
  });

  test("rate limit: exactly `limit` requests pass under concurrency, then 429 data", async () => {
    const key = uniqueName("rl");
    const results = await Promise.all(Array.from({ length: 25 }, () => cache.rateLimit(key, 10, 60_000)));
    expect(results.filter((r) => r.allowed)).toHaveLength(10);
    const denied = results.find((r) => !r.allowed)!;
    expect(denied).toMatchObject({ limit: 10, remaining: 0 });
    expect(denied.retryAfterMs).toBeGreaterThan(0);
    expect(denied.resetAt).toBeGreaterThan(Date.now() / 1000);
    expect(await cache.problem()).toBeNull();
  });
}

describe("sliding window", () => {
  test("the previous window counts by its remaining overlap", () => {
    const start = 60_000 * 1000;
    // Halfway through the window, 10 of the previous window still weigh 5.
    expect(slidingWindow(10, 4, start + 30_000, 10, 60_000)).toMatchObject({ allowed: true, remaining: 0 });
    expect(slidingWindow(10, 5, start + 30_000, 10, 60_000).allowed).toBe(false);
    expect(slidingWindow(0, 0, start, 10, 60_000)).toMatchObject({ allowed: true, remaining: 9 });
  });
});

describe("in-process cache", () => cacheContract(async () => ({ cache: await openCache({ namespace: "t", log: silentLogger }), cleanup: async () => {} })));

await describeReal("Redis cache", () =>
  cacheContract(async () => {
    const namespace = uniqueName("t");
    return { cache: await openCache({ url: REAL_URLS.redis, namespace, log: silentLogger }), cleanup: () => dropRedisNamespace(namespace) };
  }),
);

describe("batched limiter", () => {
  test("exact for small limits (one at a time): 10 of 25 concurrent pass", async () => {
    const { createBatchedLimiter } = await import("../http/rate-limit");
    const enforce = createBatchedLimiter(await openCache({ namespace: "t", log: silentLogger }), 60_000);
    const results = await Promise.allSettled(Array.from({ length: 25 }, () => enforce("org:a", 10)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
    const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(rejected.reason.status).toBe(429);
    expect(rejected.reason.headers["retry-after"]).toBeDefined();
  });

  test("large limits reserve in batches: two limiters sharing a store never exceed the limit by more than their batches", async () => {
    const { createBatchedLimiter } = await import("../http/rate-limit");
    const cache = await openCache({ namespace: "t", log: silentLogger });
    let storeCalls = 0;
    const counting = { ...cache, rateLimit: (...a: Parameters<typeof cache.rateLimit>) => (storeCalls++, cache.rateLimit(...a)) } as typeof cache;
    const a = createBatchedLimiter(counting, 60_000);
    const b = createBatchedLimiter(counting, 60_000);
    const limit = 5000; // batch of 50
    let passed = 0;
    for (let i = 0; i < 3000; i++) {
      await (i % 2 ? a : b)("org:big", limit).then(() => passed++, () => {});
    }
    expect(passed).toBe(3000);
    expect(storeCalls).toBeLessThanOrEqual(3000 / 50 + 2);
    const headers = await a("org:big", limit);
    expect(Number(headers["x-ratelimit-remaining"])).toBeLessThanOrEqual(limit - 3001);
  });

  test("a busy process reserves ahead and does not run dry; batches follow its rate, never over 1% of the limit", async () => {
    const { createBatchedLimiter } = await import("../http/rate-limit");
    const cache = await openCache({ namespace: "t", log: silentLogger });
    const takes: number[] = [];
    // A store 5 ms away: a limiter that waited for it would leave requests without a token.
    const slow = { ...cache, rateLimit: async (...a: Parameters<typeof cache.rateLimit>) => (takes.push(a[3] ?? 1), await Bun.sleep(5), cache.rateLimit(...a)) } as typeof cache;
    const enforce = createBatchedLimiter(slow, 60_000);
    const limit = 1_000_000;
    await enforce("org:busy", limit);
    let fromMemory = 0;
    let total = 0;
    for (let round = 0; round < 60; round++) {
      // The first rounds find the rate; count after them.
      for (let i = 0; i < 100; i++) if (enforce.now("org:busy", limit) && round >= 20) fromMemory++;
      if (round >= 20) total += 100;
      await Bun.sleep(1);
    }
    expect(fromMemory / total).toBeGreaterThan(0.9);
    expect(Math.max(...takes)).toBeGreaterThan(100);
    expect(Math.max(...takes)).toBeLessThanOrEqual(limit / 100);
    // Small limits are never spent from memory: they are exact at the store.
    expect(enforce.now("org:small", 60)).toBeUndefined();
  });
});
