/**
 * The SSE side of a run, on a fake agents role (counting its database reads) and the
 * in-process bus: streams of one run share one reader, resume by seq, and a reader that does
 * not keep up is cut off instead of growing memory.
 */
import { describe, expect, test } from "bun:test";
import { MemoryBus } from "../../platform/bus/memory";
import type { AppPlatform } from "../clients";
import { runLiveSubject, type RunEventOut } from "../../runs";
import { liveRunFeeds, MAX_SSE_BUFFERED_BYTES, runEventStream } from "./live";

function fakeRun(runId: string) {
  const events: RunEventOut[] = [];
  let status = "in_progress";
  let reads = 0;
  const bus = new MemoryBus("t");
  const p = {
    bus,
    log: { warn() {}, info() {}, error() {}, debug() {} },
    clients: {
      agents: {
        async runEvents(_org: string, id: string, after: number, limit: number) {
          reads++;
          if (id !== runId) throw new Error("unknown run");
          return { status, events: events.filter((e) => e.seq > after).slice(0, limit) };
        },
      },
    },
  } as unknown as AppPlatform;
  return {
    p,
    reads: () => reads,
    /** Appends an event (and rings the doorbell, as the worker does). */
    emit(type: string, data: unknown = {}) {
      const seq = events.length + 1;
      events.push({ seq, id: `evt_${seq}`, run_id: runId, type, data, created_at: new Date().toISOString() } as RunEventOut);
      if (type === "run.completed") status = "completed";
      bus.publish(runLiveSubject(bus, runId), { seq });
    },
  };
}

/** Reads an SSE body until it ends; returns the seqs and types seen. */
async function readAll(res: Response) {
  const text = await res.text();
  return [...text.matchAll(/^id: (\d+)\nevent: ([\w.]+)$/gm)].map((m) => ({ seq: Number(m[1]), type: m[2] }));
}

const waitUntil = async (cond: () => boolean, ms = 3000) => {
  for (const end = Date.now() + ms; !cond() && Date.now() < end; ) await Bun.sleep(5);
};

describe("run event streams", () => {
  test("100 streams of one run share one database reader: one read per doorbell, not one per stream", async () => {
    const run = fakeRun("run_a");
    run.emit("run.created");
    const streams = await Promise.all(Array.from({ length: 100 }, () => runEventStream(run.p, "org", "run_a", 0)));
    const bodies = streams.map(readAll);
    await waitUntil(() => liveRunFeeds() === 1);
    expect(liveRunFeeds()).toBe(1);
    await Bun.sleep(50);
    const afterOpen = run.reads();
    for (let i = 0; i < 5; i++) {
      run.emit("step.created");
      await Bun.sleep(20);
    }
    run.emit("run.completed");
    const seen = await Promise.all(bodies);
    for (const s of seen) expect(s.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // 6 doorbells (at most one read each, plus the final check): independent of the 100 streams.
    expect(run.reads() - afterOpen).toBeLessThanOrEqual(8);
    await waitUntil(() => liveRunFeeds() === 0);
    expect(liveRunFeeds()).toBe(0);
  });

  test("a stream joining late replays from its cursor (Last-Event-ID / after) then follows live, without gaps or repeats", async () => {
    const run = fakeRun("run_b");
    for (const t of ["run.created", "run.in_progress", "step.created"]) run.emit(t);
    const early = runEventStream(run.p, "org", "run_b", 0).then(readAll);
    await Bun.sleep(30);
    run.emit("step.completed");
    const late = runEventStream(run.p, "org", "run_b", 2).then(readAll);
    await Bun.sleep(30);
    run.emit("message.delta");
    run.emit("run.completed");
    expect((await early).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await late).map((e) => e.seq)).toEqual([3, 4, 5, 6]);
    // A finished run: the stream replays and ends at once, without a live reader.
    expect((await readAll(await runEventStream(run.p, "org", "run_b", 4))).map((e) => e.type)).toEqual(["message.delta", "run.completed"]);
  });

  test("a reader that does not keep up is cut off past the buffer cap, and its reader released", async () => {
    const run = fakeRun("run_c");
    run.emit("run.created");
    const res = await runEventStream(run.p, "org", "run_c", 0); // its body is never read
    await waitUntil(() => liveRunFeeds() === 1);
    const big = "x".repeat(64 * 1024);
    for (let i = 0; i * big.length < 2 * MAX_SSE_BUFFERED_BYTES && liveRunFeeds() > 0; i++) {
      run.emit("message.delta", { text: big });
      await Bun.sleep(2);
    }
    await waitUntil(() => liveRunFeeds() === 0);
    expect(liveRunFeeds()).toBe(0);
    await expect(res.text()).rejects.toThrow();
  });
});
