/**
 * The bus: live publish/subscribe, request/reply between roles, and durable streams
 * (work queues and event logs). A message is a doorbell carrying ids, never the record:
 * PostgreSQL stays the source of truth and a reconciler re-rings lost doorbells.
 */
export type Headers = Record<string, string>;
export type Unsubscribe = () => void;

export interface BusMessage<T = unknown> {
  subject: string;
  data: T;
  headers: Headers;
}

export interface DurableJob<T = unknown> extends BusMessage<T> {
  /** 1 on first delivery. */
  deliveryCount: number;
  /** Tells the broker the job is still being worked on (extends the ack deadline). */
  working(): void;
}

/** What a consumer does with a job: done, retry later, or give up (park it). */
export type JobOutcome = "ack" | { nak: number } | "term";

export interface DurableStreamSpec {
  /** Stream name suffix, e.g. "RUNS"; the bus prefixes it with its namespace. */
  name: string;
  /** Subjects relative to the namespace, e.g. ["runs"] or ["events.>"]. */
  subjects: string[];
  /** workqueue: each message goes to one consumer then is removed; log: kept, every durable consumer sees it. */
  kind: "workqueue" | "log";
}

export interface ConsumeOptions {
  /** Durable consumer name: processes with the same name share the work. A workqueue stream
   *  admits ONE consumer (JetStream refuses a second unfiltered one): every worker uses the same name. */
  durable: string;
  filterSubject?: string;
  concurrency: number;
  ackWaitMs: number;
  /** Deliveries before the message is parked on `<ns>.dlq.<stream>`. */
  maxDeliver: number;
}

export interface Bus {
  readonly kind: "memory" | "nats";
  /** Subjects are written without the namespace: `rpc.auth.login` → `agentos.rpc.auth.login`. */
  subject(relative: string): string;
  publish(subject: string, data: unknown, headers?: Headers): void;
  subscribe<T>(subject: string, handler: (msg: BusMessage<T>) => void | Promise<void>, opts?: { queue?: string }): Unsubscribe;
  request<T>(subject: string, data: unknown, opts?: { timeoutMs?: number; headers?: Headers }): Promise<T>;
  /** Answers requests on `subject`; processes with the same `queue` share them. */
  reply<T, R>(subject: string, handler: (msg: BusMessage<T>) => Promise<R>, opts: { queue: string }): Unsubscribe;
  ensureStream(spec: DurableStreamSpec): Promise<void>;
  /** Durable publish; `msgId` deduplicates retries within the broker's window. */
  publishDurable(stream: string, subject: string, data: unknown, opts: { msgId: string; headers?: Headers }): Promise<void>;
  consume<T>(stream: string, handler: (job: DurableJob<T>) => Promise<JobOutcome>, opts: ConsumeOptions): Promise<Unsubscribe>;
  /** Null when healthy, otherwise why not (for /readyz). */
  problem(): string | null;
  close(): Promise<void>;
}

export class BusTimeoutError extends Error {
  constructor(subject: string) {
    super(`no reply on ${subject} in time`);
    this.name = "BusTimeoutError";
  }
}

export class NoRespondersError extends Error {
  constructor(subject: string) {
    super(`no process answers ${subject}`);
    this.name = "NoRespondersError";
  }
}
