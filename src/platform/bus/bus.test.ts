/**
 * One contract, two buses: the in-process bus and NATS/JetStream must behave the same for
 * pub/sub, queue groups, request/reply and durable streams (ack, redelivery, dedupe, parking).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { describeReal, dropNatsNamespace, REAL_URLS, uniqueName } from "../../../test/support/backends";
import { silentLogger } from "../logging";
import { openBus, type Bus, type DurableJob } from "./index";
import { MemoryBus } from "./memory";

async function until(check: () => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(10);
  }
}

function busContract(open: () => Promise<{ bus: Bus; cleanup(): Promise<void> }>) {
  let bus: Bus;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ bus, cleanup } = await open());
  });
  afterAll(async () => {
    await bus.close();
    await cleanup();
  });

  test("publish reaches every plain subscriber and one member of each queue group", async () => {
    const got: string[] = [];
    const subject = bus.subject("test.fanout");
    const unsubs = [
      bus.subscribe(subject, () => void got.push("plain")),
      bus.subscribe(bus.subject("test.*"), () => void got.push("wildcard")),
      bus.subscribe(subject, () => void got.push("q1"), { queue: "g" }),
      bus.subscribe(subject, () => void got.push("q2"), { queue: "g" }),
    ];
    await Bun.sleep(50);
    for (let i = 0; i < 10; i++) bus.publish(subject, { i });
    await until(() => got.length >= 30);
    await Bun.sleep(50);
    expect(got.filter((g) => g === "plain")).toHaveLength(10);
    expect(got.filter((g) => g === "wildcard")).toHaveLength(10);
    expect(got.filter((g) => g === "q1" || g === "q2")).toHaveLength(10);
    for (const u of unsubs) u();
  });

  test("request/reply, and a clear error when nobody answers", async () => {
    const stop = bus.reply<{ n: number }, { doubled: number }>(bus.subject("test.rpc"), async (m) => ({ doubled: m.data.n * 2 }), { queue: "rpc" });
    await Bun.sleep(50);
    expect(await bus.request(bus.subject("test.rpc"), { n: 21 })).toEqual({ doubled: 42 });
    stop();
    await expect(bus.request(bus.subject("test.nobody"), {}, { timeoutMs: 500 })).rejects.toThrow();
  });

  test("work queue: each job handled once, nak redelivers, msgId dedupes", async () => {
    await bus.ensureStream({ name: "WQ", subjects: ["wq"], kind: "workqueue" });
    const seen: { id: string; delivery: number }[] = [];
    const handler = async (job: DurableJob<{ id: string }>) => {
      seen.push({ id: job.data.id, delivery: job.deliveryCount });
      if (job.data.id === "retry-me" && job.deliveryCount === 1) return { nak: 50 };
      return "ack" as const;
    };
    const opts = { durable: "workers", concurrency: 4, ackWaitMs: 5000, maxDeliver: 5 };
    const stopA = await bus.consume("WQ", handler, opts);
    const stopB = await bus.consume("WQ", handler, opts);
    for (const id of ["a", "b", "c", "retry-me"]) await bus.publishDurable("WQ", bus.subject("wq"), { id }, { msgId: `m-${id}` });
    await bus.publishDurable("WQ", bus.subject("wq"), { id: "a" }, { msgId: "m-a" }); // duplicate: dropped
    await until(() => seen.length >= 5);
    await Bun.sleep(200);
    stopA();
    stopB();
    const ids = seen.map((s) => s.id).sort();
    expect(ids).toEqual(["a", "b", "c", "retry-me", "retry-me"]);
    expect(seen.find((s) => s.id === "retry-me" && s.delivery === 2)).toBeTruthy();
  });

  test("log stream: every durable consumer gets every message; a poison message is parked", async () => {
    await bus.ensureStream({ name: "LOG", subjects: ["log.>"], kind: "log" });
    const billing: string[] = [];
    const notify: string[] = [];
    const parked: unknown[] = [];
    const unpark = bus.subscribe(bus.subject("dlq.LOG"), (m) => void parked.push(m.data));
    await Bun.sleep(50);
    const s1 = await bus.consume<{ id: string }>("LOG", async (j) => {
      billing.push(j.data.id);
      return "ack";
    }, { durable: "billing", concurrency: 2, ackWaitMs: 5000, maxDeliver: 3 });
    const s2 = await bus.consume<{ id: string }>("LOG", async (j) => {
      notify.push(j.data.id);
      return j.data.id === "poison" ? { nak: 10 } : "ack";
    }, { durable: "notify", concurrency: 2, ackWaitMs: 5000, maxDeliver: 3 });
    for (const id of ["e1", "e2", "poison"]) await bus.publishDurable("LOG", bus.subject(`log.${id}`), { id }, { msgId: id });
    await until(() => billing.length >= 3 && notify.filter((n) => n === "poison").length >= 3 && parked.length >= 1, 10_000);
    s1();
    s2();
    unpark();
    expect(billing.sort()).toEqual(["e1", "e2", "poison"]);
    expect(notify.filter((n) => n === "poison")).toHaveLength(3); // maxDeliver, then parked
    expect(parked).toHaveLength(1);
  });

  test("a job not acked in time is redelivered; working() keeps it", async () => {
    await bus.ensureStream({ name: "SLOW", subjects: ["slow"], kind: "workqueue" });
    const deliveries: number[] = [];
    const stop = await bus.consume<{ id: string }>("SLOW", async (job) => {
      deliveries.push(job.deliveryCount);
      if (job.deliveryCount === 1) {
        await Bun.sleep(2500); // longer than ackWait without heartbeats: redelivered meanwhile
        return "ack";
      }
      return "ack";
    }, { durable: "slow", concurrency: 2, ackWaitMs: 1000, maxDeliver: 5 });
    await bus.publishDurable("SLOW", bus.subject("slow"), { id: "x" }, { msgId: "slow-x" });
    await until(() => deliveries.length >= 2, 8000);
    stop();
    expect(deliveries.slice(0, 2)).toEqual([1, 2]);

    await bus.ensureStream({ name: "SLOW2", subjects: ["slow2"], kind: "workqueue" });
    const beats: number[] = [];
    const stop2 = await bus.consume<{ id: string }>("SLOW2", async (job) => {
      beats.push(job.deliveryCount);
      for (let i = 0; i < 5; i++) {
        await Bun.sleep(400);
        job.working();
      }
      return "ack";
    }, { durable: "slow2", concurrency: 1, ackWaitMs: 1000, maxDeliver: 5 });
    await bus.publishDurable("SLOW2", bus.subject("slow2"), { id: "y" }, { msgId: "slow-y" });
    await Bun.sleep(3000);
    stop2();
    expect(beats).toEqual([1]);
  });
}

describe("in-process bus", () => busContract(async () => ({ bus: await openBus({ namespace: uniqueName("t"), log: silentLogger, name: "test" }), cleanup: async () => {} })));

describe("in-process bus: a log stream keeps a short tail, not every message of the process's life", () => {
  test("messages every consumer was handed are dropped after the tail; a slow consumer holds them; order and completeness kept", async () => {
    const bus = new MemoryBus(uniqueName("t"), { logTailMs: 30 });
    await bus.ensureStream({ name: "EV", subjects: ["ev.>"], kind: "log" });
    const fast: number[] = [];
    const slow: number[] = [];
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((r) => (releaseSlow = r));
    const stopFast = await bus.consume<{ n: number }>("EV", async (j) => (fast.push(j.data.n), "ack"), { durable: "fast", concurrency: 1, ackWaitMs: 60_000, maxDeliver: 3 });
    const stopSlow = await bus.consume<{ n: number }>("EV", async (j) => {
      await slowGate;
      slow.push(j.data.n);
      return "ack";
    }, { durable: "slow", concurrency: 1, ackWaitMs: 60_000, maxDeliver: 3 });
    const publish = async (from: number, to: number) => {
      for (let n = from; n < to; n++) await bus.publishDurable("EV", bus.subject("ev.x"), { n }, { msgId: `m${n}` });
    };
    await publish(0, 3000);
    await until(() => fast.length === 3000);
    await Bun.sleep(50);
    await publish(3000, 3001); // a publish trims, but the slow consumer was handed at most its first two
    // (one in flight, one put back for redelivery: both hold their own reference)
    expect(bus.retainedMessages("EV")).toBeGreaterThanOrEqual(2999);
    releaseSlow();
    await until(() => slow.length === 3001 && fast.length === 3001);
    await Bun.sleep(50);
    await publish(3001, 3002);
    expect(bus.retainedMessages("EV")).toBeLessThanOrEqual(2); // the new message (and at most the one before it)
    // A consumer that subscribes now gets what the tail holds, and everything after it.
    const late: number[] = [];
    const stopLate = await bus.consume<{ n: number }>("EV", async (j) => (late.push(j.data.n), "ack"), { durable: "late", concurrency: 1, ackWaitMs: 60_000, maxDeliver: 3 });
    await publish(3002, 3010);
    await until(() => late.includes(3009) && fast.length === 3010 && slow.length === 3010);
    for (const got of [fast, slow]) expect(got).toEqual(Array.from({ length: 3010 }, (_, n) => n));
    expect(late.at(-8)).toBe(3002);
    stopFast();
    stopSlow();
    stopLate();
    await bus.close();
  });

  test("msgIds are remembered for the dedupe window, however many are published", async () => {
    const bus = new MemoryBus(uniqueName("t"));
    await bus.ensureStream({ name: "Q", subjects: ["q"], kind: "workqueue" });
    for (let n = 0; n < 5000; n++) await bus.publishDurable("Q", bus.subject("q"), { n }, { msgId: `id${n}` });
    await bus.publishDurable("Q", bus.subject("q"), { n: 0 }, { msgId: "id0" }); // a duplicate of the first: dropped
    expect(bus.retainedMessages("Q")).toBe(5000);
    await bus.close();
  });
});

await describeReal("NATS bus", () =>
  busContract(async () => {
    const namespace = uniqueName("t");
    const bus = await openBus({ url: REAL_URLS.nats, namespace, log: silentLogger, name: "test" });
    return { bus, cleanup: () => dropNatsNamespace(namespace) };
  }),
);
