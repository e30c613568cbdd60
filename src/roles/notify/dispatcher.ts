/**
 * Webhook delivery. Deliveries are rows (webhook_deliveries), so a restart resumes them. A
 * dispatcher claims due rows with FOR UPDATE SKIP LOCKED and leases them (next_attempt_at
 * pushed past the request timeout, attempts + 1) in one statement, POSTs OUTSIDE any
 * transaction, then records the attempt — fenced on the attempt number, so a dispatcher whose
 * lease ran out cannot overwrite the newer attempt. A crash mid-POST only means the lease
 * expires and the event is sent again (at least once; receivers dedupe by X-AgentOS-Event-Id).
 * Each POST goes through the SSRF guard (platform/net/outbound): internal addresses are
 * refused at every attempt (DNS may change), redirects are not followed (a 3xx is a failed
 * attempt), and the attempt log says only `target_refused` / `target_unreachable`.
 */
import { jitteredBackoffMs } from "../../platform/backoff";
import type { Config } from "../../platform/config";
import { NO_TRACING, type Tracing } from "../../platform/tracing";
import { and, eq, inArray, sql } from "drizzle-orm";
import { webhookDeliveries, webhooks } from "../../../schema";
import type { DeliveryAttempt } from "../../../schema/notify";
import type { Db } from "../../platform/db";
import { rowsOf } from "../../platform/db/rows";
import type { Logger } from "../../platform/logging";
import { OutboundError, outboundFetch, type OutboundPolicy } from "../../platform/net/outbound";
import { RetryPacer } from "../../platform/outage";
import { EVENT_ID_HEADER, SIGNATURE_HEADER, signPayload } from "./signature";

export interface DispatcherSettings {
  /** First retry delay; doubles per attempt (with jitter) up to `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Attempts before a delivery is marked `failed`. */
  maxAttempts: number;
  timeoutMs: number;
  /** How often to look for due deliveries (others' retries, expired leases). */
  pollMs: number;
  batch: number;
}

/** From the configuration (--webhook-* / AGENTOS_WEBHOOK_*; tests use a small retry base). */
export function dispatcherSettings(config: Pick<Config, "webhookRetryBaseMs" | "webhookRetryMaxMs" | "webhookMaxAttempts" | "webhookTimeoutMs" | "webhookPollMs">): DispatcherSettings {
  return {
    retryBaseMs: config.webhookRetryBaseMs,
    retryMaxMs: config.webhookRetryMaxMs,
    maxAttempts: config.webhookMaxAttempts,
    timeoutMs: config.webhookTimeoutMs,
    pollMs: config.webhookPollMs,
    batch: 20,
  };
}

/** The wait before a delivery's next attempt (`attempt` ≥ 1 failed so far), spread by jitter. */
export function backoffMs(settings: DispatcherSettings, attempt: number, random = Math.random()): number {
  return jitteredBackoffMs(settings.retryBaseMs, settings.retryMaxMs, attempt - 1, random);
}

interface Claimed {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  payload: unknown;
  attempts: number;
  traceparent: string | null;
}

export class WebhookDispatcher {
  private stopped = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private inflight = new Set<Promise<void>>();

  constructor(private db: Db, private settings: DispatcherSettings, private log: Logger, private outbound: OutboundPolicy, private tracing: Tracing = NO_TRACING) {}

  start() {
    this.loop = this.run();
  }

  /** New deliveries or a retry came due: look now instead of at the next poll. */
  poke() {
    this.wake?.();
  }

  async stop() {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.wake?.();
    await this.loop;
    await Promise.allSettled([...this.inflight]);
  }

  private async run() {
    const pacer = new RetryPacer("webhook dispatcher", this.log, this.settings.pollMs, Math.max(5_000, this.settings.pollMs));
    while (!this.stopped) {
      let claimed = 0;
      let delay = this.settings.pollMs;
      try {
        claimed = await this.dispatchOnce();
        pacer.succeeded();
      } catch (err) {
        delay = pacer.failed(err);
      }
      if (claimed > 0 && !this.stopped) continue;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        const t = setTimeout(resolve, delay);
        this.timers.add(t);
      });
      this.wake = null;
    }
  }

  /** Claims a batch of due deliveries and starts sending them; returns how many it claimed. */
  async dispatchOnce(): Promise<number> {
    const leaseMs = this.settings.timeoutMs + 30_000;
    const rows = rowsOf<Claimed>(
      await this.db.execute(sql`
        update webhook_deliveries set attempts = attempts + 1, updated_at = now(),
          next_attempt_at = now() + ${leaseMs}::int * interval '1 millisecond'
        where id in (
          select id from webhook_deliveries
          where status = 'pending' and next_attempt_at <= now()
          order by next_attempt_at limit ${this.settings.batch}
          for update skip locked)
        returning id, webhook_id, event_id, event_type, payload, attempts, traceparent`),
    );
    if (rows.length === 0) return 0;
    const hooks = await this.db
      .select({ id: webhooks.id, url: webhooks.url, secret: webhooks.secret })
      .from(webhooks)
      .where(inArray(webhooks.id, [...new Set(rows.map((r) => r.webhook_id))]));
    const byId = new Map(hooks.map((h) => [h.id, h]));
    for (const row of rows) {
      const hook = byId.get(row.webhook_id);
      if (!hook) continue; // deleted meanwhile: its deliveries went with it
      const p = this.deliver(row, hook).catch((err) => this.log.error("webhook delivery failed unexpectedly", { delivery_id: row.id, error: err }));
      this.inflight.add(p);
      void p.finally(() => this.inflight.delete(p));
    }
    return rows.length;
  }

  private async deliver(row: Claimed, hook: { url: string; secret: string }) {
    const payload = typeof row.payload === "string" ? JSON.parse(row.payload) : row.payload;
    const body = JSON.stringify(payload);
    const started = performance.now();
    const attempt: DeliveryAttempt = { at: new Date().toISOString(), status_code: null, latency_ms: 0, error: null };
    const span = this.tracing.enabled && row.traceparent
      ? this.tracing.start(`webhook deliver ${row.event_type}`, { parent: row.traceparent, kind: "client", attributes: { "agentos.delivery_id": row.id, "agentos.event_id": row.event_id, "agentos.attempt": row.attempts } })
      : undefined;
    try {
      const { response: res } = await outboundFetch(
        hook.url,
        {
          method: "POST",
          body,
          signal: AbortSignal.timeout(this.settings.timeoutMs),
          headers: {
            "content-type": "application/json",
            "user-agent": "AgentOS-Webhooks/1",
            [SIGNATURE_HEADER]: signPayload(hook.secret, body),
            [EVENT_ID_HEADER]: row.event_id,
            "x-agentos-event-type": row.event_type,
            "x-agentos-delivery-id": row.id,
            // The receiver may continue the trace (W3C trace context).
            ...(span?.traceparent ?? row.traceparent ? { traceparent: (span?.traceparent ?? row.traceparent)! } : {}),
          },
        },
        this.outbound,
      );
      attempt.status_code = res.status;
      await res.body?.cancel().catch(() => {});
      if (res.status < 200 || res.status >= 300) attempt.error = `receiver answered ${res.status}`;
    } catch (err) {
      const e = err as Error;
      if (e.name === "TimeoutError") attempt.error = `no answer within ${this.settings.timeoutMs} ms`;
      else if (err instanceof OutboundError) attempt.error = `${err.code}: ${err.message}`;
      else attempt.error = "target_unreachable: the connection failed or closed before a reply.";
      if (!(err instanceof OutboundError && err.code === "target_refused")) this.log.debug("webhook attempt failed", { delivery_id: row.id, error: err instanceof OutboundError ? err.detail : err });
    }
    attempt.latency_ms = Math.round(performance.now() - started);
    if (span) {
      span.set({ "http.response.status_code": attempt.status_code ?? 0 });
      if (attempt.error) span.fail(new Error(attempt.error));
      span.end();
    }
    await this.record(row, attempt);
  }

  private async record(row: Claimed, attempt: DeliveryAttempt) {
    const succeeded = attempt.error === null;
    const exhausted = !succeeded && row.attempts >= this.settings.maxAttempts;
    const retryIn = succeeded || exhausted ? 0 : backoffMs(this.settings, row.attempts);
    const now = new Date();
    await this.db
      .update(webhookDeliveries)
      .set({
        status: succeeded ? "succeeded" : exhausted ? "failed" : "pending",
        attemptLog: sql`${webhookDeliveries.attemptLog} || ${JSON.stringify([attempt])}::jsonb`,
        // Database time, like the claim query's, so app and database clocks never disagree.
        nextAttemptAt: succeeded || exhausted ? null : sql`now() + ${retryIn}::int * interval '1 millisecond'`,
        deliveredAt: succeeded ? sql`now()` : null,
        updatedAt: now,
      })
      // Fencing: only the holder of this attempt's lease records it.
      .where(and(eq(webhookDeliveries.id, row.id), eq(webhookDeliveries.attempts, row.attempts), eq(webhookDeliveries.status, "pending")));
    if (retryIn > 0 && !this.stopped) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.poke();
      }, retryIn + 5);
      this.timers.add(t);
    }
  }
}
