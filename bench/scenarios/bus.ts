/**
 * bus: the embedded default's in-process bus as the outbox relay uses it — domain events
 * published to the EVENTS log stream, each taken by two durable consumers (billing's ledger and
 * notify's intake in `--role=all`). Per round of 10,000 events: the wall time until both
 * consumers have every event, and the messages the stream still holds afterwards (after the
 * log tail has passed, when a last publish trims it). A cost that grows from round to round
 * is a cost that grows with the process's uptime.
 */
import { MemoryBus, LOG_TAIL_MS } from "../../src/platform/bus/memory";
import { round } from "../lib/proc";
import { printTable, writeResults } from "../lib/results";
import { machineInfo } from "../lib/machine";

const PER_ROUND = 10_000;
/** About what a run's domain event carries (ids, usage, a short text). */
const PAYLOAD = { run_id: "run_01M8XW6PMY053V8FS61AWWQCVJ", thread_id: "thr_01M8XW6PMY053V8FS61AWWQCVJ", usage: { prompt_tokens: 120, completion_tokens: 24, total_tokens: 144 }, text: "x".repeat(600) };

export async function runBus(opts: { rounds: number; tailMs?: number }) {
  const tailMs = opts.tailMs ?? LOG_TAIL_MS;
  const bus = new MemoryBus("bench", { logTailMs: tailMs });
  await bus.ensureStream({ name: "EVENTS", subjects: ["events.>"], kind: "log" });
  let handled = 0;
  for (const durable of ["billing", "notify"]) {
    await bus.consume("EVENTS", async () => (handled++, "ack"), { durable, concurrency: 8, ackWaitMs: 30_000, maxDeliver: 20 });
  }
  const rows: Record<string, unknown>[] = [];
  for (let r = 1; r <= opts.rounds; r++) {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    for (let n = 0; n < PER_ROUND; n++) await bus.publishDurable("EVENTS", bus.subject("events.run.completed"), PAYLOAD, { msgId: `evt-${r}-${n}` });
    while (handled < r * PER_ROUND * 2) await Bun.sleep(1);
    const cpu = process.cpuUsage(cpu0);
    rows.push({ round: r, "events so far": r * PER_ROUND, "ms for these 10,000": round(performance.now() - t0, 0), "CPU µs per event": round((cpu.user + cpu.system) / PER_ROUND, 1), "messages held": bus.retainedMessages("EVENTS") });
  }
  await Bun.sleep(tailMs + 50);
  await bus.publishDurable("EVENTS", bus.subject("events.run.completed"), PAYLOAD, { msgId: "evt-last" });
  const heldAfterTail = bus.retainedMessages("EVENTS");
  await bus.close();
  printTable(rows);
  console.log(`messages held ${tailMs} ms after the last round (one more publish trims): ${heldAfterTail}`);
  writeResults("bus", { machine: machineInfo(), options: { ...opts, tailMs, perRound: PER_ROUND }, rounds: rows, held_after_tail: heldAfterTail });
}
