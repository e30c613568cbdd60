/**
 * The NATS bus: core NATS for live fan-out and request/reply (queue groups), JetStream for
 * durable streams (explicit ack, in-progress heartbeats, bounded redelivery, Nats-Msg-Id
 * dedupe). Payloads are JSON.
 */
import { readFileSync } from "node:fs";
import {
  connect, credsAuthenticator, headers as natsHeaders, nkeyAuthenticator,
  type ConnectionOptions, type MsgHdrs, type NatsConnection, type Subscription,
} from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { AppError, FatalError } from "../errors";
import { backendUnavailable } from "../outage";
import type { Logger } from "../logging";
import {
  type Bus, type BusMessage, type ConsumeOptions, type DurableJob, type DurableStreamSpec, type Headers, type JobOutcome,
  type Unsubscribe, BusTimeoutError, NoRespondersError,
} from "./types";

const enc = new TextEncoder();
const dec = new TextDecoder();
const nanos = (ms: number) => ms * 1_000_000;

function encode(data: unknown): Uint8Array {
  return enc.encode(JSON.stringify(data ?? null));
}
function decode<T>(bytes: Uint8Array): T {
  return (bytes.length ? JSON.parse(dec.decode(bytes)) : null) as T;
}
function toNatsHeaders(h?: Headers): MsgHdrs | undefined {
  if (!h || Object.keys(h).length === 0) return undefined;
  const out = natsHeaders();
  for (const [k, v] of Object.entries(h)) out.set(k, v);
  return out;
}
function fromNatsHeaders(h?: MsgHdrs): Headers {
  const out: Headers = {};
  if (!h) return out;
  for (const k of h.keys()) out[k] = h.get(k);
  return out;
}

/** Credentials and TLS for the NATS connection; each also settable in the URL where NATS allows it. */
export interface NatsAuth {
  user?: string;
  password?: string;
  token?: string;
  credsFile?: string;
  nkeyFile?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

function readSecretFile(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FatalError(`cannot read the NATS ${what} file ${path}: ${(err as Error).message}`);
  }
}

/**
 * Connection options from a NATS URL and flags. The client library ignores credentials in
 * the URL, so `nats://user:pass@host` and `nats://token@host` are taken apart here (a flag
 * wins); the server list handed over carries no secret. `tls://` or a CA file turn TLS on.
 */
export function natsConnectionOptions(url: string, auth: NatsAuth = {}): Pick<ConnectionOptions, "servers" | "user" | "pass" | "token" | "authenticator" | "tls"> {
  const parsed = new URL(url);
  const fromUrl = { user: decodeURIComponent(parsed.username), pass: decodeURIComponent(parsed.password) };
  parsed.username = "";
  parsed.password = "";
  const opts: ReturnType<typeof natsConnectionOptions> = { servers: parsed.toString().replace(/\/$/, "") };
  const user = auth.user ?? (fromUrl.pass ? fromUrl.user : undefined);
  const pass = auth.password ?? (fromUrl.pass || undefined);
  const token = auth.token ?? (!fromUrl.pass && fromUrl.user ? fromUrl.user : undefined);
  if (user !== undefined) {
    opts.user = user;
    opts.pass = pass;
  } else if (token !== undefined) opts.token = token;
  if (auth.credsFile) opts.authenticator = credsAuthenticator(readSecretFile(auth.credsFile, "creds"));
  else if (auth.nkeyFile) opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(new TextDecoder().decode(readSecretFile(auth.nkeyFile, "nkey seed")).trim()));
  if (parsed.protocol === "tls:" || auth.caFile || auth.certFile) {
    opts.tls = { ...(auth.caFile ? { caFile: auth.caFile } : {}), ...(auth.certFile ? { certFile: auth.certFile, keyFile: auth.keyFile } : {}) };
  }
  return opts;
}

export class NatsBus implements Bus {
  readonly kind = "nats";
  private js: JetStreamClient;
  private disconnectedSince: number | null = null;
  private subs = new Set<Subscription>();
  /** Requests awaiting a reply: failed at once when the connection drops (no wait for their timeout). */
  private pendingRequests = new Set<(err: Error) => void>();

  private constructor(private nc: NatsConnection, private jsm: JetStreamManager, private namespace: string, private log: Logger, private onMessage?: (dir: string) => void) {
    this.js = jetstream(nc);
    void this.watchStatus();
  }

  static async connect(url: string, opts: { namespace: string; log: Logger; name: string; auth?: NatsAuth; onMessage?: (dir: string) => void }): Promise<NatsBus> {
    const connection = natsConnectionOptions(url, opts.auth);
    let nc: NatsConnection;
    try {
      // noAsyncTraces: the client otherwise builds an Error (a stack trace) at every request and
      // subscription timer, in case it times out — ~1.3% of the worker's CPU; our RPC errors say what timed out.
      nc = await connect({ ...connection, name: opts.name, timeout: 5000, maxReconnectAttempts: -1, reconnectTimeWait: 500, waitOnFirstConnect: false, noAsyncTraces: true });
    } catch (err) {
      throw new FatalError(`cannot reach NATS at ${connection.servers}: ${(err as Error).message}`);
    }
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(nc, { timeout: 5000 });
    } catch (err) {
      await nc.close().catch(() => {});
      throw new FatalError(`NATS at ${connection.servers} has no JetStream (start nats-server with -js): ${(err as Error).message}`);
    }
    return new NatsBus(nc, jsm, opts.namespace, opts.log, opts.onMessage);
  }

  private async watchStatus() {
    for await (const s of this.nc.status()) {
      if (s.type === "disconnect" || s.type === "staleConnection") {
        this.disconnectedSince ??= Date.now();
        this.log.warn("nats disconnected", { event: s.type });
        for (const fail of this.pendingRequests) fail(backendUnavailable("bus", "nats disconnected"));
      } else if (s.type === "reconnect") {
        this.disconnectedSince = null;
        this.log.info("nats reconnected");
      }
    }
  }

  subject(relative: string) {
    return `${this.namespace}.${relative}`;
  }

  private streamName(name: string) {
    return `${this.namespace.toUpperCase().replace(/[^A-Z0-9_-]/g, "_")}_${name}`;
  }

  publish(subject: string, data: unknown, headers?: Headers) {
    this.onMessage?.("out");
    this.nc.publish(subject, encode(data), { headers: toNatsHeaders(headers) });
  }

  subscribe<T>(subject: string, handler: (msg: BusMessage<T>) => void | Promise<void>, opts: { queue?: string } = {}): Unsubscribe {
    const sub = this.nc.subscribe(subject, {
      queue: opts.queue,
      callback: (err, msg) => {
        if (err) return;
        this.onMessage?.("in");
        try {
          const r = handler({ subject: msg.subject, data: decode<T>(msg.data), headers: fromNatsHeaders(msg.headers) });
          if (r instanceof Promise) r.catch((e) => this.log.error("bus handler failed", { subject, error: e }));
        } catch (e) {
          this.log.error("bus handler failed", { subject, error: e });
        }
      },
    });
    this.subs.add(sub);
    return () => {
      this.subs.delete(sub);
      sub.unsubscribe();
    };
  }

  async request<T>(subject: string, data: unknown, opts: { timeoutMs?: number; headers?: Headers } = {}): Promise<T> {
    this.onMessage?.("out");
    let fail!: (err: Error) => void;
    const dropped = new Promise<never>((_, reject) => (fail = reject));
    this.pendingRequests.add(fail);
    try {
      const reply = await Promise.race([this.nc.request(subject, encode(data), { timeout: opts.timeoutMs ?? 10_000, headers: toNatsHeaders(opts.headers) }), dropped]);
      return decode<T>(reply.data);
    } catch (err) {
      if (err instanceof AppError) throw err;
      const e = err as Error & { code?: string };
      if (/no responders/i.test(e.message) || e.code === "503" || e.name === "NoRespondersError") throw new NoRespondersError(subject);
      if (/timeout/i.test(e.message) || e.name === "TimeoutError") throw new BusTimeoutError(subject);
      throw err;
    } finally {
      this.pendingRequests.delete(fail);
    }
  }

  reply<T, R>(subject: string, handler: (msg: BusMessage<T>) => Promise<R>, opts: { queue: string }): Unsubscribe {
    const sub = this.nc.subscribe(subject, {
      queue: opts.queue,
      callback: (err, msg) => {
        if (err) return;
        this.onMessage?.("in");
        handler({ subject: msg.subject, data: decode<T>(msg.data), headers: fromNatsHeaders(msg.headers) })
          .then((result) => msg.respond(encode(result)))
          .catch((e) => this.log.error("rpc handler failed", { subject, error: e }));
      },
    });
    this.subs.add(sub);
    return () => {
      this.subs.delete(sub);
      sub.unsubscribe();
    };
  }

  async ensureStream(spec: DurableStreamSpec) {
    const name = this.streamName(spec.name);
    const config = {
      name,
      subjects: spec.subjects.map((s) => this.subject(s)),
      retention: spec.kind === "workqueue" ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
      storage: StorageType.File,
      duplicate_window: nanos(2 * 60_000),
      max_age: spec.kind === "log" ? nanos(7 * 24 * 3600_000) : 0,
    };
    try {
      await this.jsm.streams.info(name);
      await this.jsm.streams.update(name, config);
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
      await this.jsm.streams.add(config);
    }
  }

  async publishDurable(stream: string, subject: string, data: unknown, opts: { msgId: string; headers?: Headers }) {
    this.onMessage?.("out");
    await this.js.publish(subject, encode(data), {
      msgID: opts.msgId,
      headers: toNatsHeaders(opts.headers),
      expect: { streamName: this.streamName(stream) },
    });
  }

  async consume<T>(stream: string, handler: (job: DurableJob<T>) => Promise<JobOutcome>, opts: ConsumeOptions): Promise<Unsubscribe> {
    const name = this.streamName(stream);
    const durable = `${opts.durable}`.replace(/[^A-Za-z0-9_-]/g, "_");
    const config = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(opts.ackWaitMs),
      max_deliver: opts.maxDeliver + 1,
      deliver_policy: DeliverPolicy.All,
      filter_subject: opts.filterSubject ? this.subject(opts.filterSubject) : undefined,
      max_ack_pending: 10_000,
    };
    try {
      await this.jsm.consumers.info(name, durable);
      await this.jsm.consumers.update(name, durable, { ack_wait: config.ack_wait, max_deliver: config.max_deliver, max_ack_pending: config.max_ack_pending });
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
      await this.jsm.consumers.add(name, config);
    }
    const consumer = await this.js.consumers.get(name, durable);
    const messages = await consumer.consume({ max_messages: opts.concurrency });
    let active = 0;
    const idle: (() => void)[] = [];
    const loop = (async () => {
      for await (const m of messages) {
        this.onMessage?.("in");
        while (active >= opts.concurrency) await new Promise<void>((r) => idle.push(r));
        active++;
        const job: DurableJob<T> = {
          subject: m.subject,
          data: decode<T>(m.data),
          headers: fromNatsHeaders(m.headers),
          deliveryCount: m.info.deliveryCount,
          working: () => m.working(),
        };
        handler(job)
          .catch((err): JobOutcome => {
            this.log.error("durable consumer failed", { stream, error: err });
            return { nak: 1000 };
          })
          .then((outcome) => {
            if (outcome === "ack") m.ack();
            else if (outcome === "term" || job.deliveryCount >= opts.maxDeliver) this.park(stream, m.subject, job.data, m);
            else m.nak(outcome.nak);
          })
          .finally(() => {
            active--;
            idle.shift()?.();
          });
      }
    })();
    return () => {
      void messages.close();
      void loop;
    };
  }

  /** Poison messages are parked on `<ns>.dlq.<stream>` for inspection and removed from the stream. */
  private park(stream: string, subject: string, data: unknown, m: { term(): void }) {
    this.publish(this.subject(`dlq.${stream}`), { subject, data });
    m.term();
  }

  problem() {
    if (this.nc.isClosed()) return "nats connection closed";
    if (this.disconnectedSince !== null) return `nats disconnected for ${Math.round((Date.now() - this.disconnectedSince) / 1000)}s`;
    return null;
  }

  async close() {
    for (const s of this.subs) s.unsubscribe();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
