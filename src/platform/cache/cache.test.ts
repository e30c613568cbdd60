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
