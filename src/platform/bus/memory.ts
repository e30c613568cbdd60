/**
 * The in-process bus of the embedded default (`--role=all`): same semantics as the NATS
 * bus — queue groups pick one member, work queues hand each job to one consumer with
 * ack/nak/redelivery, log streams give every durable consumer its own cursor, and
 * `msgId` dedupes within a window — so role code cannot tell them apart. One difference: a log
 * stream keeps a message only LOG_TAIL_MS after every consumer was handed it (JetStream keeps
 * EVENTS for 7 days); embedded consumers take in the recent window from the outbox at start.
 */
import {
  type Bus, type BusMessage, type ConsumeOptions, type DurableJob, type DurableStreamSpec, type Headers,
  type JobOutcome, type Unsubscribe, BusTimeoutError, NoRespondersError,
} from "./types";

type Handler = (msg: BusMessage<any>) => void | Promise<void>;
/** `order`: subscription order, kept across the two tables (delivery and queue-group rotation follow it). */
interface Sub { pattern: string; handler: Handler; queue?: string; order: number; tokens?: string[] }

const DEDUPE_WINDOW_MS = 2 * 60_000;
/**
 * How long a log stream keeps a message every consumer has been handed. Consumers of the
 * embedded bus take in the recent window from the database when they start (the outbox keeps
 * relayed events), so the stream only bridges the moment between that read and the
 * subscription; it kept every message of the process's life before (memory and a linear scan
 * per delivery that grew with uptime).
 */
export const LOG_TAIL_MS = 10_000;

export function subjectMatches(pattern: string, subject: string): boolean {
  if (pattern === subject) return true;
  return tokensMatch(pattern.split("."), subject.split("."));
}

function tokensMatch(p: readonly string[], s: readonly string[]): boolean {
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

const hasWildcard = (pattern: string) => pattern.split(".").some((t) => t === "*" || t === ">");

/**
 * Subscriptions by exact subject, plus the few with wildcards in a list. Every run waited on or
 * executed holds one or two exact subscriptions (live.runs.<id>, its .cancel): with one list,
 * each publish (several per run step) matched all of them, splitting both subjects each time —
 * at 1,000 concurrent runs ~1 MB of garbage and ~2 ms of CPU per publish, most of the embedded
 * server's heap growth. A lookup by subject costs the same whatever the number of runs.
 */
class SubscriptionTable {
  private exact = new Map<string, Sub[]>();
  private wildcard: Sub[] = [];
  private nextOrder = 0;

  add(pattern: string, handler: Handler, queue?: string): Sub {
    const sub: Sub = { pattern, handler, queue, order: this.nextOrder++ };
    if (hasWildcard(pattern)) {
      sub.tokens = pattern.split(".");
      this.wildcard.push(sub);
    } else {
      const list = this.exact.get(pattern);
      if (list) list.push(sub);
      else this.exact.set(pattern, [sub]);
    }
    return sub;
  }

  remove(sub: Sub) {
    if (sub.tokens) {
      this.wildcard = this.wildcard.filter((s) => s !== sub);
      return;
    }
    const list = this.exact.get(sub.pattern);
    if (!list) return;
    const rest = list.filter((s) => s !== sub);
    if (rest.length) this.exact.set(sub.pattern, rest);
    else this.exact.delete(sub.pattern);
  }

  /** The subscriptions matching `subject`, in subscription order (a new array: handlers may unsubscribe meanwhile). */
  matching(subject: string): Sub[] {
    const exact = this.exact.get(subject);
    if (this.wildcard.length === 0) return exact ? [...exact] : [];
    const tokens = subject.split(".");
    const wild = this.wildcard.filter((s) => tokensMatch(s.tokens!, tokens));
    if (!exact) return wild;
    if (wild.length === 0) return [...exact];
    return [...exact, ...wild].sort((a, b) => a.order - b.order);
  }

  clear() {
    this.exact.clear();
    this.wildcard = [];
  }
}

interface Pending { seq: number; subject: string; data: unknown; headers: Headers; at: number }
interface Redelivery { msg: Pending; availableAt: number }

class MemoryStream {
  seq = 0;
  /**
   * log: the messages from `head` on, in seq order without gaps (a message is dropped from the
   * front once every consumer was handed it and it is LOG_TAIL_MS old; a redelivery holds its
   * own reference); workqueue: messages not yet acked.
   */
  messages: Pending[] = [];
  head = 0;
  /** msgId → publish time, oldest first (insertion order): expired ones are dropped from the front. */
  seen = new Map<string, number>();
  consumers = new Map<string, MemoryConsumer>();
  constructor(readonly spec: DurableStreamSpec, private logTailMs: number) {}

  /** log: the first message after seq `after` (at its index: seqs are contiguous from `head`). */
  logAfter(after: number): Pending | undefined {
    if (this.head >= this.messages.length) return undefined;
    const first = this.messages[this.head].seq;
    return this.messages[this.head + Math.max(0, after + 1 - first)];
  }

  /** log: drops the front messages that every consumer was handed and that are older than the tail. */
  trimLog(now: number) {
    let passed = Infinity;
    for (const c of this.consumers.values()) passed = Math.min(passed, c.cursor);
    while (this.head < this.messages.length && this.messages[this.head].seq <= passed && now - this.messages[this.head].at > this.logTailMs) this.head++;
    // Compacted now and then, not at every drop (shifting an array is linear).
    if (this.head > 1024 && this.head * 2 > this.messages.length) {
      this.messages = this.messages.slice(this.head);
      this.head = 0;
    }
  }

  /** Forgets msgIds older than the dedupe window: the oldest come first, so this stops at the first one kept. */
  expireSeen(now: number) {
    for (const [id, at] of this.seen) {
      if (now - at <= DEDUPE_WINDOW_MS) return;
      this.seen.delete(id);
    }
  }
}

class MemoryConsumer {
  cursor = 0; // log streams: next seq to hand out
  inflight = new Map<number, { msg: Pending; deadline: number }>();
  redeliver: Redelivery[] = [];
  /** Deliveries per message, per consumer (a log stream's message is delivered to each). */
  deliveries = new Map<number, number>();
  handlers: ((job: Pending) => void)[] = [];
  constructor(readonly opts: ConsumeOptions) {}
}

export class MemoryBus implements Bus {
  readonly kind = "memory";
  private subs = new SubscriptionTable();
  private rr = new Map<string, number>();
  private streams = new Map<string, MemoryStream>();
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private closed = false;

  constructor(private namespace = "agentos", private opts: { logTailMs?: number } = {}) {}

  /** How many messages a stream holds (log: the kept tail; workqueue: not yet acked). */
  retainedMessages(stream: string): number {
    const s = this.stream(stream);
    return s.messages.length - s.head;
  }

  subject(relative: string) {
    return `${this.namespace}.${relative}`;
  }

  publish(subject: string, data: unknown, headers: Headers = {}) {
    const payload = structuredClone(data);
    const matching = this.subs.matching(subject);
    const groups = new Map<string, Sub[]>();
    for (const s of matching) {
      if (!s.queue) {
        this.deliver(s, { subject, data: payload, headers });
        continue;
      }
      const g = groups.get(s.queue) ?? [];
      g.push(s);
      groups.set(s.queue, g);
    }
    for (const [queue, members] of groups) {
      const n = (this.rr.get(queue) ?? 0) + 1;
      this.rr.set(queue, n);
      this.deliver(members[n % members.length], { subject, data: payload, headers });
    }
  }

  private deliver(sub: Sub, msg: BusMessage) {
    queueMicrotask(() => {
      try {
        const r = sub.handler(msg);
        if (r instanceof Promise) r.catch(() => {});
      } catch {
        /* a subscriber's failure is its own */
      }
    });
  }

  subscribe<T>(subject: string, handler: (msg: BusMessage<T>) => void | Promise<void>, opts: { queue?: string } = {}): Unsubscribe {
    const sub = this.subs.add(subject, handler as Handler, opts.queue);
    return () => this.subs.remove(sub);
  }

  async request<T>(subject: string, data: unknown, opts: { timeoutMs?: number; headers?: Headers } = {}): Promise<T> {
    if (!this.subs.matching(subject).some((s) => s.queue?.startsWith("reply:"))) throw new NoRespondersError(subject);
    const inbox = `_INBOX.${crypto.randomUUID()}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        unsub();
        reject(new BusTimeoutError(subject));
      }, opts.timeoutMs ?? 10_000);
      const unsub = this.subscribe<T>(inbox, (msg) => {
        clearTimeout(timer);
        unsub();
        resolve(msg.data);
      });
      this.publish(subject, data, { ...(opts.headers ?? {}), "reply-to": inbox });
    });
  }

  reply<T, R>(subject: string, handler: (msg: BusMessage<T>) => Promise<R>, opts: { queue: string }): Unsubscribe {
    return this.subscribe<T>(subject, async (msg) => {
      const replyTo = msg.headers["reply-to"];
      const result = await handler(msg);
      if (replyTo) this.publish(replyTo, result);
    }, { queue: `reply:${opts.queue}` });
  }

  async ensureStream(spec: DurableStreamSpec) {
    if (!this.streams.has(spec.name)) this.streams.set(spec.name, new MemoryStream(spec, this.opts.logTailMs ?? LOG_TAIL_MS));
  }

  private stream(name: string): MemoryStream {
    const s = this.streams.get(name);
    if (!s) throw new Error(`stream ${name} does not exist: call ensureStream first`);
    return s;
  }

  async publishDurable(stream: string, subject: string, data: unknown, opts: { msgId: string; headers?: Headers }) {
    const s = this.stream(stream);
    const now = Date.now();
    s.expireSeen(now);
    if (s.seen.has(opts.msgId)) return;
    s.seen.set(opts.msgId, now);
    const msg: Pending = { seq: ++s.seq, subject, data: structuredClone(data), headers: opts.headers ?? {}, at: now };
    if (s.spec.kind === "log") s.trimLog(now);
    s.messages.push(msg);
    for (const c of s.consumers.values()) this.pump(s, c);
  }

  async consume<T>(stream: string, handler: (job: DurableJob<T>) => Promise<JobOutcome>, opts: ConsumeOptions): Promise<Unsubscribe> {
    const s = this.stream(stream);
    let c = s.consumers.get(opts.durable);
    if (!c) {
      c = new MemoryConsumer(opts);
      s.consumers.set(opts.durable, c);
    }
    const consumer = c;
    let active = 0;
    let stopped = false;
    const run = (msg: Pending) => {
      active++;
      const entry = { msg, deadline: Date.now() + opts.ackWaitMs };
      consumer.inflight.set(msg.seq, entry);
      const deliveryCount = (consumer.deliveries.get(msg.seq) ?? 0) + 1;
      consumer.deliveries.set(msg.seq, deliveryCount);
      const job: DurableJob<T> = {
        subject: msg.subject, data: structuredClone(msg.data) as T, headers: msg.headers, deliveryCount,
        working: () => { entry.deadline = Date.now() + opts.ackWaitMs; },
      };
      handler(job)
        .catch((): JobOutcome => ({ nak: 1000 }))
        .then((outcome) => {
          active--;
          if (!consumer.inflight.has(msg.seq)) return; // timed out and redelivered meanwhile
          consumer.inflight.delete(msg.seq);
          this.settle(s, consumer, msg, stopped ? { nak: 0 } : outcome);
        });
    };
    const take = (msg: Pending) => {
      if (stopped || active >= opts.concurrency) return false;
      run(msg);
      return true;
    };
    consumer.handlers.push(take as any);
    const timer = setInterval(() => this.expire(s, consumer), Math.min(1000, opts.ackWaitMs));
    this.timers.add(timer as any);
    this.pump(s, consumer);
    return () => {
      stopped = true;
      clearInterval(timer);
      consumer.handlers = consumer.handlers.filter((h) => h !== (take as any));
    };
  }

  private settle(s: MemoryStream, c: MemoryConsumer, msg: Pending, outcome: JobOutcome) {
    if (outcome === "ack" || outcome === "term" || (c.deliveries.get(msg.seq) ?? 0) >= c.opts.maxDeliver) {
      if (outcome !== "ack") this.publish(this.subject(`dlq.${s.spec.name}`), { subject: msg.subject, data: msg.data });
      c.deliveries.delete(msg.seq);
      if (s.spec.kind === "workqueue") s.messages = s.messages.filter((m) => m !== msg);
    } else {
      c.redeliver.push({ msg, availableAt: Date.now() + outcome.nak });
      const t = setTimeout(() => { this.timers.delete(t); this.pump(s, c); }, outcome.nak + 1);
      this.timers.add(t);
    }
    this.pump(s, c);
  }

  private expire(s: MemoryStream, c: MemoryConsumer) {
    const now = Date.now();
    for (const [seq, entry] of c.inflight) {
      if (entry.deadline < now) {
        c.inflight.delete(seq);
        c.redeliver.push({ msg: entry.msg, availableAt: 0 });
      }
    }
    this.pump(s, c);
  }

  /** Hands available messages to idle handlers of consumer `c`. */
  private pump(s: MemoryStream, c: MemoryConsumer) {
    if (this.closed || c.handlers.length === 0) return;
    const now = Date.now();
    const next = (): Pending | undefined => {
      const i = c.redeliver.findIndex((r) => r.availableAt <= now);
      if (i >= 0) return c.redeliver.splice(i, 1)[0].msg;
      if (s.spec.kind === "log") {
        const m = s.logAfter(c.cursor);
        if (m) c.cursor = m.seq;
        return m;
      }
      // Work queue: a message belongs to one consumer at a time.
      const m = s.messages.find((m) => m.seq > c.cursor && !c.inflight.has(m.seq));
      if (m) c.cursor = m.seq;
      return m;
    };
    for (;;) {
      const handler = c.handlers.find(() => true);
      if (!handler) return;
      const msg = next();
      if (!msg) return;
      let taken = false;
      for (const h of c.handlers) if ((taken = (h as any)(msg))) break;
      if (!taken) {
        // All busy: put it back for the next pump.
        c.redeliver.unshift({ msg, availableAt: 0 });
        return;
      }
    }
  }

  problem() {
    return this.closed ? "bus closed" : null;
  }

  async close() {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t as any);
    this.subs.clear();
  }
}
