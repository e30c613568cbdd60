/** The group-commit batcher alone, over a fake statement: when it batches, order, bounds, failures. */
import { describe, expect, test } from "bun:test";
import { backendUnavailable } from "../outage";
import { Batcher, type BatchStatement } from "./batcher";

/** A statement that records its calls and answers after `release()` (so a batch stays in flight). */
function recordingStatement(opts: { failMany?: (items: readonly number[]) => unknown; failOne?: (item: number) => unknown } = {}) {
  const calls: { kind: "many" | "one"; items: number[] }[] = [];
  let gates: (() => void)[] = [];
  const wait = () => new Promise<void>((r) => gates.push(r));
  const statement: BatchStatement<number, string> = {
    async many(items) {
      calls.push({ kind: "many", items: [...items] });
      await wait();
      const err = opts.failMany?.(items);
      if (err) throw err;
      return items.map((n) => `r${n}`);
    },
    async one(item) {
      calls.push({ kind: "one", items: [item] });
      const err = opts.failOne?.(item);
      if (err) throw err;
      return `alone${item}`;
    },
  };
  const release = async () => {
    // Let the submitted promises settle and the next batch start.
    for (let i = 0; i < 5 && gates.length === 0; i++) await Bun.sleep(0);
    const open = gates;
    gates = [];
    for (const g of open) g();
    await Bun.sleep(0);
  };
  return { statement, calls, release };
}

const settled = (p: Promise<unknown>) => p.then((v) => ({ ok: v }), (e) => ({ err: (e as Error).message }));

describe("Batcher", () => {
  test("a lone item goes at once, alone; items submitted while it flies go together next, in order", async () => {
    const s = recordingStatement();
    const b = new Batcher(s.statement, 64);
    const first = b.submit(1);
    expect(s.calls).toEqual([{ kind: "many", items: [1] }]); // no timer: sent synchronously
    const next = [2, 3, 4].map((n) => b.submit(n));
    expect(s.calls).toHaveLength(1);
    await s.release();
    expect(await first).toBe("r1");
    expect(s.calls[1]).toEqual({ kind: "many", items: [2, 3, 4] });
    await s.release();
    expect(await Promise.all(next)).toEqual(["r2", "r3", "r4"]);
    expect(b.stats).toMatchObject({ batches: 2, items: 4, largest: 3 });
  });

  test("at most maxBatch items per statement; the rest follow in the next ones", async () => {
    const s = recordingStatement();
    const b = new Batcher(s.statement, 2);
    const all = [1, 2, 3, 4, 5, 6].map((n) => b.submit(n));
    for (let i = 0; i < 4; i++) await s.release();
    expect(await Promise.all(all)).toEqual(["r1", "r2", "r3", "r4", "r5", "r6"]);
    expect(s.calls.map((c) => c.items)).toEqual([[1], [2, 3], [4, 5], [6]]);
  });

  test("a failed batch is retried item by item: only the bad item fails", async () => {
    const s = recordingStatement({ failMany: (items) => (items.includes(3) ? new Error("check constraint") : null), failOne: (n) => (n === 3 ? new Error("bad item 3") : null) });
    const b = new Batcher(s.statement, 64);
    const lone = b.submit(1);
    const batch = [2, 3, 4].map((n) => settled(b.submit(n)));
    await s.release();
    await s.release();
    expect(await lone).toBe("r1");
    expect(await Promise.all(batch)).toEqual([{ ok: "alone2" }, { err: "bad item 3" }, { ok: "alone4" }]);
    expect(s.calls.slice(1).map((c) => `${c.kind}:${c.items}`)).toEqual(["many:2,3,4", "one:2", "one:3", "one:4"]);
    // The batcher goes on.
    const after = b.submit(5);
    await s.release();
    expect(await after).toBe("r5");
  });

  test("an outage fails every item of the batch with it (no retry alone); the next batches go on", async () => {
    let down = true;
    const s = recordingStatement({ failMany: () => (down ? backendUnavailable("database", "connection closed") : null) });
    const b = new Batcher(s.statement, 64);
    const first = settled(b.submit(1));
    const batch = [2, 3].map((n) => settled(b.submit(n)));
    await s.release();
    await s.release();
    expect(await first).toEqual({ err: expect.stringContaining("unavailable") });
    expect(await Promise.all(batch)).toEqual([{ err: expect.stringContaining("unavailable") }, { err: expect.stringContaining("unavailable") }]);
    expect(s.calls.every((c) => c.kind === "many")).toBe(true);
    down = false;
    const after = b.submit(4);
    await s.release();
    expect(await after).toBe("r4");
  });

  test("a statement that throws synchronously or answers the wrong count fails its callers, not the batcher", async () => {
    let mode: "throw" | "short" | "ok" = "throw";
    const b = new Batcher<number, number>({
      many: (items) => {
        if (mode === "throw") throw new Error("sync boom");
        return Promise.resolve(mode === "short" ? [] : items.map((n) => n * 10));
      },
      retryAlone: () => false,
    }, 8);
    expect(await settled(b.submit(1))).toEqual({ err: "sync boom" });
    mode = "short";
    expect(await settled(b.submit(2))).toEqual({ err: "batch statement answered 0 results for 1 items" });
    mode = "ok";
    expect(await b.submit(3)).toBe(30);
  });

  test("maxBatch 1: no group commit — every item is its own statement, sent at once, concurrently", async () => {
    const s = recordingStatement();
    const b = new Batcher(s.statement, 1);
    const all = [1, 2, 3].map((n) => b.submit(n));
    expect(s.calls.map((c) => c.items)).toEqual([[1], [2], [3]]); // none waits for another
    await s.release();
    expect(await Promise.all(all)).toEqual(["r1", "r2", "r3"]);
  });

  test("refuses a batch size below 1", () => {
    expect(() => new Batcher({ many: async () => [] }, 0)).toThrow(/at least 1/);
  });
});
