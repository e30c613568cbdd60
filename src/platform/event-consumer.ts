/**
 * A durable consumer of domain events (the EVENTS stream the outbox relay fills): billing's
 * usage ledger and notify's intake. Handlers are idempotent by event id, so the consumer may
 * replay: on the in-process bus it first takes in the recent window again (that stream did
 * not survive a restart). A malformed message is dropped; during a database outage the
 * message is held (not counted as a failed delivery); any other failure is retried with a
 * capped exponential backoff.
 */
import type { Bus, JobOutcome, Unsubscribe } from "./bus";
import type { Db } from "./db";
import type { Logger } from "./logging";
import { holdThroughDatabaseOutage } from "./outage";
import { EMBEDDED_REPLAY_WINDOW_MS, EVENTS_STREAM, relayedSince, type DomainEvent } from "./outbox";
import { NO_TRACING, type Tracing } from "./tracing";
import { inBackground } from "./db/yielding";

export interface DomainEventConsumer {
  /** The durable consumer's name: one per consuming role, shared by its replicas. */
  durable: string;
  /** The event types the embedded replay takes in (null: every type). */
  replayTypes: readonly string[] | null;
  handle: (event: DomainEvent) => Promise<unknown>;
  /** Logged (with the event id and the error) before a failed event is retried. */
  retryWarning: string;
  /** With tracing on, each consumed event is a consumer span of its event's trace. */
  spanName?: (event: DomainEvent) => string;
}

/** Redelivery delay after the n-th failed delivery: 1 s, 2 s, 4 s … capped at 30 s. */
export const nakBackoffMs = (deliveryCount: number) => Math.min(30_000, 500 * 2 ** Math.min(deliveryCount, 6));

export async function consumeDomainEvents(
  deps: { bus: Bus; db: Db; log: Logger; database: { whenAvailable(): Promise<void> }; tracing?: Tracing },
  consumer: DomainEventConsumer,
): Promise<Unsubscribe> {
  const { bus, log, database } = deps;
  const tracing = deps.tracing ?? NO_TRACING;
  await bus.ensureStream(EVENTS_STREAM);
  if (bus.kind === "memory") {
    for (const event of await relayedSince(deps.db, new Date(Date.now() - EMBEDDED_REPLAY_WINDOW_MS), consumer.replayTypes)) await consumer.handle(event);
  }
  return bus.consume<DomainEvent>(
    EVENTS_STREAM.name,
    async (job): Promise<JobOutcome> => {
      const event = job.data;
      if (!event || typeof event.id !== "string" || typeof event.org_id !== "string" || typeof event.type !== "string") return "term";
      try {
        if (tracing.enabled && consumer.spanName) {
          await inBackground(() => tracing.inSpan(consumer.spanName!(event), { parent: job.headers.traceparent ?? null, kind: "consumer", attributes: { "agentos.event_id": event.id } }, () => consumer.handle(event)));
        } else await inBackground(() => consumer.handle(event));
        return "ack";
      } catch (err) {
        if (await holdThroughDatabaseOutage(err, database, () => job.working())) return { nak: 0 };
        log.warn(consumer.retryWarning, { event_id: event.id, error: err });
        return { nak: nakBackoffMs(job.deliveryCount) };
      }
    },
    { durable: consumer.durable, filterSubject: "events.>", concurrency: 8, ackWaitMs: 30_000, maxDeliver: 20 },
  );
}
