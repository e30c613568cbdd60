import { describe, expect, test } from "bun:test";
import { MemoryBus } from "./bus";
import { createEdgeCache, publishInvalidation } from "./edge-cache";

describe("edge cache", () => {
  test("hits after the first load; concurrent misses share one load", async () => {
    const cache = createEdgeCache<{ n: number }>(new MemoryBus("t"), "things");
    let loads = 0;
    const load = async () => {
      loads++;
      await Bun.sleep(10);
      return { n: 1 };
    };
    const values = await Promise.all([cache.get("a", load), cache.get("a", load), cache.get("a", load)]);
    expect(values).toEqual([{ n: 1 }, { n: 1 }, { n: 1 }]);
    await cache.get("a", load);
    expect(loads).toBe(1);
  });

  test("an invalidation from another process (the bus) drops the entry", async () => {
    const bus = new MemoryBus("t");
    const a = createEdgeCache<number>(bus, "things");
    let value = 1;
    expect(await a.get("k", async () => value)).toBe(1);
    value = 2;
    publishInvalidation(bus, "things", "k");
    await Bun.sleep(5);
    expect(await a.get("k", async () => value)).toBe(2);
  });

  test("a load that overlaps an invalidation is not cached", async () => {
    const cache = createEdgeCache<number>(new MemoryBus("t"), "things");
    let value = 1;
    const slow = cache.get("k", async () => {
      const v = value;
      await Bun.sleep(20);
      return v;
    });
    await Bun.sleep(5);
    value = 2;
    cache.invalidate("k");
    expect(await slow).toBe(1); // the caller that asked before the change may see the old value…
    expect(await cache.get("k", async () => value)).toBe(2); // …but it was not cached
  });

  test("errors are not cached and entries expire", async () => {
    const cache = createEdgeCache<number>(new MemoryBus("t"), "things", { ttlMs: 20 });
    await expect(cache.get("e", async () => { throw new Error("nope"); })).rejects.toThrow("nope");
    expect(await cache.get("e", async () => 3)).toBe(3);
    await Bun.sleep(30);
    expect(await cache.get("e", async () => 4)).toBe(4);
  });

  test("callers get copies: mutating a result does not change the cache", async () => {
    const cache = createEdgeCache<{ list: number[] }>(new MemoryBus("t"), "things");
    const first = await cache.get("c", async () => ({ list: [1] }));
    first.list.push(2);
    expect(await cache.get("c", async () => ({ list: [9] }))).toEqual({ list: [1] });
  });
});
