/**
 * Transactional outbox. `emitEvent(tx, …)` inserts a domain event in the SAME transaction as
 * the change that causes it; the relay then publishes unpublished rows to the durable EVENTS
 * stream (`<ns>.events.<type>`, Nats-Msg-Id = event id) and marks them published. Rows are
 * claimed with FOR UPDATE SKIP LOCKED, never by "id > last seen" (ids commit out of order),
 * so several relays can run and a crash between publish and mark only re-publishes — which
 * the broker's dedupe window and the consumers' event-id uniqueness absorb.
 */
import { NO_TRACING, type Tracing } from "./tracing";
import { inBackground } from "./db/yielding";
import { sql } from "drizzle-orm";
import { outboxEvents } from "../../schema";
import type { Bus } from "./bus";
import { currentContext } from "./context";
import type { DbOrTx, Db } from "./db";
import { rowsOf } from "./db/rows";
import { newId } from "./ids";
import type { Logger } from "./logging";
import type { EventType } from "./event-types";
import { backendUnavailable, RetryPacer } from "./outage";

export const EVENTS_STREAM = { name: "EVENTS", subjects: ["events.>"], kind: "log" as const };

export interface DomainEvent<P = Record<string, unknown>> {
  id: string;
  org_id: string;
  type: string;
  created_at: string;
  payload: P;
}

/** The relays of this process: told when an event is written, so they look again soon. */
const localRelays = new Set<() => void>();

export async function emitEvent(tx: DbOrTx, event: { orgId: string; type: EventType; payload: Record<string, unknown> }): Promise<string> {
  const id = newId("evt");
  await tx.insert(outboxEvents).values({ id, orgId: event.orgId, type: event.type, payload: event.payload, traceparent: currentContext()?.traceparent ?? null });
  for (const poke of localRelays) poke();
  return id;
}

interface OutboxRow {
  id: string;
  org_id: string;
  type: string;
  payload: Record<string, unknown>;
  traceparent: string | null;
  created_at: string | Date;
}

/**
 * Publishes one batch; returns how many rows it relayed. Most polls find nothing (another
 * process's relay took the rows, or none were written): they cost one read of the partial
 * index and no transaction. A batch is claimed and marked in one statement, inside the
 * transaction that publishes it: a failed publish rolls the mark back, so nothing is lost.
 */
export async function relayOnce(db: Db, bus: Bus, batch = 200, tracing: Tracing = NO_TRACING): Promise<number> {
  const [unpublished] = rowsOf<{ pending: boolean }>(await db.execute(sql`select exists(select 1 from outbox_events where published_at is null) as pending`));
  if (!unpublished?.pending) return 0;
  return db.transaction(async (tx) => {
    const rows = rowsOf<OutboxRow>(
      // RETURNING has no order: the claimed rows are published oldest first, as they were written.
      await tx.execute(sql`with claimed as (update outbox_events set published_at = now(), attempts = attempts + 1
          where id in (select id from outbox_events where published_at is null order by created_at limit ${batch} for update skip locked)
          returning id, org_id, type, payload, traceparent, created_at)
        select * from claimed order by created_at, id`),
    );
    // Published at once, in order on the one connection (the stream stores them as sent), the
    // acks awaited together: one round trip to the broker while the claim is held, not one per row.
    // A publish that fails (a broker timeout) rolls the claim back; rows behind it may be stored
    // already, so it lands after them at the next relay. No consumer depends on the order: the
    // ledger and the inbox are keyed by event, webhook deliveries retry one by one (a run's own
    // ordered events are its run_events, read by seq).
    await Promise.all(rows.map(async (row) => {
      const event: DomainEvent = {
        id: row.id,
        org_id: row.org_id,
        type: row.type,
        created_at: new Date(row.created_at).toISOString(),
        payload: typeof row.payload === "string" ? JSON.parse(row.payload) : row.payload,
      };
      // A producer span per traced event: consumers (ledger, webhooks) continue from it.
      const span = tracing.enabled && row.traceparent
        ? tracing.start(`outbox relay ${row.type}`, { parent: row.traceparent, kind: "producer", attributes: { "messaging.system": "nats", "messaging.destination.name": `events.${row.type}`, "agentos.event_id": row.id } })
        : undefined;
      const traceparent = span?.traceparent ?? row.traceparent;
      await bus.publishDurable(EVENTS_STREAM.name, bus.subject(`events.${row.type}`), event, {
        msgId: row.id,
        headers: traceparent ? { traceparent } : {},
      }).finally(() => span?.end());
      // Live fan-out to gateways (WebSocket clients of the organization), once the stream has it.
      bus.publish(bus.subject(`live.${row.org_id}`), event);
    }));
    return rows.length;
  });
}

/** Rows per relay transaction. */
const RELAY_BATCH = 200;
/** After an event is written in this process, the relay looks every this many ms… */
const POKED_INTERVAL_MS = 10;
/** …until it has relayed as many rows as events were written, for this long at most… */
const POKED_WINDOW_MS = 200;
/**
 * …or until a poll this long after the last event finds fewer rows than it waits for: those
 * events have most likely committed by then and another process's relay took them (each
 * relay claims every process's rows; a later commit is found by the interval). Without this,
 * a relay whose events another relay published polled empty every 10 ms for the whole
 * window: a dozen empty transactions per run in each process of a split deployment.
 */
const POKED_SETTLE_MS = 40;

/**
 * The relay loop: every `intervalMs` (events committed by other processes, and retries after
 * a bus outage), and every POKED_INTERVAL_MS for a moment after `emitEvent` ran in this
 * process — the event's transaction commits a few ms later (not visible before), so live
 * clients (WebSocket) and webhooks get it within ~10 ms instead of up to `intervalMs`.
 */
export function startOutboxRelay(db: Db, bus: Bus, log: Logger, intervalMs = 250, tracing: Tracing = NO_TRACING) {
  let stopped = false;
  let wake: (() => void) | null = null;
  let pokedAt = -Infinity;
  /** Events written in this process, and how many of them the relay has covered. */
  let pokes = 0;
  let covered = 0;
  let running: Promise<void> = Promise.resolve();
  const waitingForPoked = () => covered < pokes && performance.now() - pokedAt < POKED_WINDOW_MS;
  const poke = () => {
    const asleep = !waitingForPoked();
    pokes++;
    pokedAt = performance.now();
    // A relay asleep for the long interval starts the short one; otherwise it is on its way.
    if (asleep) setTimeout(() => wake?.(), POKED_INTERVAL_MS);
  };
  const pacer = new RetryPacer("outbox relay", log, intervalMs, 2_000);
  const loop = async () => {
    await bus.ensureStream(EVENTS_STREAM);
    while (!stopped) {
      let retryIn = 0;
      try {
        // Rows stay unpublished while NATS is down (no claim held open waiting for a publish ack).
        const busDown = bus.problem();
        if (busDown) throw backendUnavailable("bus", busDown);
        const written = pokes;
        const settled = performance.now() - pokedAt >= POKED_SETTLE_MS;
        const n = await inBackground(() => relayOnce(db, bus, RELAY_BATCH, tracing));
        pacer.succeeded();
        // Rows of other processes count too: an approximation that only shortens the fast polling.
        covered = settled && covered + n < written ? written : Math.min(written, covered + n);
        // A full batch may have left rows behind: look again at once. A partial one took every
        // row committed by then; later ones poke (or the interval finds them): no empty poll.
        if (n >= RELAY_BATCH) continue;
      } catch (err) {
        retryIn = pacer.failed(err);
      }
      const delay = retryIn || (waitingForPoked() ? POKED_INTERVAL_MS : intervalMs);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, delay);
      });
      wake = null;
    }
  };
  localRelays.add(poke);
  running = loop();
  return {
    poke,
    async stop() {
      stopped = true;
      localRelays.delete(poke);
      wake?.();
      await running.catch(() => {});
    },
  };
}

/**
 * Events already relayed since `since` (at most the newest `limit`), oldest first. The in-process bus of the embedded
 * default keeps its stream in memory, so a crash loses events published but not yet consumed;
 * consumers replay this recent window at start (they are idempotent by event id).
 */
export async function relayedSince(db: Db, since: Date, types: readonly string[] | null, limit = 2_000): Promise<DomainEvent[]> {
  if (types?.length === 0) return [];
  const typeFilter = types ? sql`and type in (${sql.join(types.map((t) => sql`${t}`), sql`, `)})` : sql``;
  const rows = rowsOf<OutboxRow>(
    await db.execute(sql`select id, org_id, type, payload, traceparent, created_at from outbox_events
      where published_at is not null and created_at >= ${since.toISOString()}::timestamptz
        ${typeFilter}
      order by created_at desc, id desc limit ${limit}`),
  );
  // The newest `limit` (most likely unconsumed), handed over oldest first.
  return rows.reverse().map((row) => ({
    id: row.id,
    org_id: row.org_id,
    type: row.type,
    created_at: new Date(row.created_at).toISOString(),
    payload: typeof row.payload === "string" ? JSON.parse(row.payload) : row.payload,
  }));
}

/** How far back consumers of the in-process bus replay at start (see relayedSince). */
export const EMBEDDED_REPLAY_WINDOW_MS = 5 * 60_000;
