/**
 * Group commit: concurrent writes of one shape go to the database as ONE statement (one round
 * trip, one commit — one WAL flush — for N requests). No timer: an item submitted while nothing
 * is in flight goes at once, alone; items submitted while a batch is in flight wait for it and
 * go together next, up to `maxBatch` per statement. So batching happens only under concurrency,
 * and a lone request pays no latency for it.
 *
 * One batch is in flight at a time (per batcher): batches reach the database in submission
 * order, and each statement starts after the previous one committed (so `now()` defaults grow
 * with the order of submission). `maxBatch` 1 turns the group commit off: every item is its own
 * statement, sent at once, concurrently with the others (as without a batcher).
 *
 * When a batch fails with an error that is not an outage (a constraint, bad data in one item),
 * its items are executed again one by one, so one bad item fails only its own caller. On an
 * outage (connection lost, circuit open) every item of the batch fails with that error — as a
 * single statement would have — and the batches after it go on as usual: no item is dropped and
 * every caller gets an answer.
 */
import { outageOf } from "../outage";
import { connectionFailure } from "./gate";

export interface BatchStatement<In, Out> {
  /** Executes all items in one statement; resolves to exactly one result per item, in order. */
  many(items: readonly In[]): Promise<Out[]>;
  /** One item alone (after `many` failed); `many([item])` when not given. */
  one?(item: In): Promise<Out>;
  /** Whether a failure of `many` is worth retrying item by item; default: anything but an outage. */
  retryAlone?(err: unknown): boolean;
}

interface Pending<In, Out> {
  item: In;
  resolve(out: Out): void;
  reject(err: unknown): void;
}

const notAnOutage = (err: unknown) => !outageOf(err) && !connectionFailure(err);

export class Batcher<In, Out> {
  private queue: Pending<In, Out>[] = [];
  private flying = false;
  /** Statements sent and items they carried (what the tests and the bench look at). */
  readonly stats = { batches: 0, items: 0, largest: 0, retriedAlone: 0 };

  constructor(private statement: BatchStatement<In, Out>, private maxBatch: number) {
    if (!(maxBatch >= 1)) throw new Error(`batch size must be at least 1, got ${maxBatch}`);
  }

  /** Resolves with the item's own result once its batch committed (or rejects with its own error). */
  submit(item: In): Promise<Out> {
    // A batch of at most one is no group commit: each item its own statement, concurrently, as without a batcher.
    if (this.maxBatch === 1) return this.alone(item);
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.flying) void this.fly();
    });
  }

  private async fly() {
    this.flying = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        await this.send(batch);
      }
    } finally {
      this.flying = false;
    }
  }

  private async send(batch: Pending<In, Out>[]) {
    this.stats.batches++;
    this.stats.items += batch.length;
    if (batch.length > this.stats.largest) this.stats.largest = batch.length;
    let results: Out[];
    try {
      results = await this.statement.many(batch.map((p) => p.item));
      if (results.length !== batch.length) throw new Error(`batch statement answered ${results.length} results for ${batch.length} items`);
    } catch (err) {
      const retry = this.statement.retryAlone ?? notAnOutage;
      if (batch.length === 1 || !retry(err)) {
        for (const p of batch) p.reject(err);
        return;
      }
      await this.sendAlone(batch);
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i].resolve(results[i]);
  }

  private async alone(item: In): Promise<Out> {
    this.stats.batches++;
    this.stats.items++;
    this.stats.largest = Math.max(this.stats.largest, 1);
    return (await this.statement.many([item]))[0];
  }

  /** One by one, in order (the next batch waits: submission order holds through a failure too). */
  private async sendAlone(batch: Pending<In, Out>[]) {
    this.stats.retriedAlone += batch.length;
    const one = this.statement.one ?? (async (item: In) => (await this.statement.many([item]))[0]);
    for (const p of batch) {
      try {
        p.resolve(await one(p.item));
      } catch (err) {
        p.reject(err);
      }
    }
  }
}
