/**
 * The notify role's service: webhooks (secret shown once), their delivery log, and the
 * in-app inbox. `intake` turns one domain event into webhook deliveries and an inbox entry;
 * both are keyed by the event id (unique indexes), so a redelivered event adds nothing.
 */
import { currentContext } from "../../platform/context";
import { and, asc, desc, eq, gt, isNotNull, isNull, lt, or, sql, type SQL } from "drizzle-orm";
import { notifications, webhookDeliveries, webhooks } from "../../../schema";
import type { Db } from "../../platform/db";
import { pageQuery, toPage, iso, type PageOf, type PageRequest } from "../../platform/db/pagination";
import { randomSecret } from "../../platform/hash";
import { badRequest, notFound, unprocessable } from "../../platform/errors";
import type { Principal } from "../../platform/principal";
import { withIdempotency, type IdempotencyScope, type IdempotentResult } from "../../platform/idempotency";
import { isId, newId } from "../../platform/ids";
import { literalTargetProblem, type OutboundPolicy } from "../../platform/net/outbound";
import type { DomainEvent } from "../../platform/outbox";
import { inboxEntryFor, webhookWants } from "./inbox";
import type { CreatedWebhookOut, CreateWebhookInput, DeliveryOut, NotificationOut, NotificationQueryInput, WebhookOut } from "./model";

type WebhookRow = typeof webhooks.$inferSelect;
type DeliveryRow = typeof webhookDeliveries.$inferSelect;
type NotificationRow = typeof notifications.$inferSelect;

const toWebhook = (w: WebhookRow): WebhookOut => ({
  id: w.id, url: w.url, event_types: w.eventTypes, description: w.description, active: w.active, created_at: w.createdAt.toISOString(),
});
const toDelivery = (d: DeliveryRow): DeliveryOut => ({
  id: d.id, webhook_id: d.webhookId, event_id: d.eventId, event_type: d.eventType, status: d.status as DeliveryOut["status"],
  attempts: d.attempts, attempt_log: d.attemptLog, next_attempt_at: iso(d.nextAttemptAt), delivered_at: iso(d.deliveredAt), created_at: d.createdAt.toISOString(),
});
const toNotification = (n: NotificationRow): NotificationOut => ({
  id: n.id, type: n.type, title: n.title, body: n.body, data: n.data as Record<string, unknown>, read: n.readAt !== null, read_at: iso(n.readAt), created_at: n.createdAt.toISOString(),
});

/**
 * The inbox entry of an event takes the event's (time-sortable) id body and time, so the
 * inbox is ordered by when things happened even though consumers take events concurrently.
 */
function notificationIdFor(event: DomainEvent): string {
  return isId("evt", event.id) ? `ntf_${event.id.slice(4)}` : newId("ntf");
}
function eventTime(event: DomainEvent): Date {
  const d = new Date(event.created_at);
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

function newSecret() {
  return `whsec_${randomSecret(32, "hex")}`;
}

export const MAX_WEBHOOKS_PER_ORG = 20;

export class NotifyService {
  constructor(private db: Db, private outbound: OutboundPolicy, private idempotencyStaleMs: number) {}

  async createWebhook(principal: Principal, input: CreateWebhookInput, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<CreatedWebhookOut>> {
    let url: URL;
    try {
      url = new URL(input.url);
    } catch {
      throw badRequest("invalid_url", "url is not a valid URL.", { field: "url" });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw badRequest("invalid_url", "url must be an http or https URL.", { field: "url" });
    const refused = literalTargetProblem(url, this.outbound);
    if (refused) throw badRequest("invalid_url", `url is refused: ${refused}`, { field: "url" });
    return withIdempotency(this.db, { orgId: principal.orgId, scope: idempotency, body: input, staleClaimMs: this.idempotencyStaleMs }, async () => {
      // Every event is delivered to every endpoint: a bounded fan-out keeps one organization
      // from turning each change into thousands of deliveries (Stripe allows 16 endpoints).
      const [{ count }] = await this.db.select({ count: sql<number>`count(*)::int` }).from(webhooks).where(eq(webhooks.orgId, principal.orgId));
      if (count >= MAX_WEBHOOKS_PER_ORG) {
        throw unprocessable("too_many_webhooks", `An organization can have at most ${MAX_WEBHOOKS_PER_ORG} webhooks; delete one first.`, { limit: MAX_WEBHOOKS_PER_ORG });
      }
      const secret = newSecret();
      const [row] = await this.db
        .insert(webhooks)
        .values({ id: newId("whk"), orgId: principal.orgId, url: url.toString(), secret, eventTypes: [...new Set(input.event_types ?? [])], description: input.description ?? null })
        .returning();
      return { status: 201, body: { ...toWebhook(row), secret } };
    });
  }

  async listWebhooks(principal: Principal, page: PageRequest): Promise<PageOf<WebhookOut>> {
    const q = pageQuery(webhooks.id, page, eq(webhooks.orgId, principal.orgId));
    const rows = await this.db.select().from(webhooks).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q, toWebhook);
  }

  private async ownWebhook(orgId: string, id: string): Promise<WebhookRow> {
    if (!isId("whk", id)) throw notFound("webhook", id);
    const [row] = await this.db.select().from(webhooks).where(and(eq(webhooks.id, id), eq(webhooks.orgId, orgId)));
    if (!row) throw notFound("webhook", id);
    return row;
  }

  async deleteWebhook(principal: Principal, id: string): Promise<{ id: string; deleted: true }> {
    await this.ownWebhook(principal.orgId, id);
    await this.db.delete(webhooks).where(and(eq(webhooks.id, id), eq(webhooks.orgId, principal.orgId)));
    return { id, deleted: true };
  }

  async listDeliveries(principal: Principal, webhookId: string, page: PageRequest): Promise<PageOf<DeliveryOut>> {
    await this.ownWebhook(principal.orgId, webhookId);
    const q = pageQuery(webhookDeliveries.id, page, and(eq(webhookDeliveries.webhookId, webhookId), eq(webhookDeliveries.orgId, principal.orgId)));
    const rows = await this.db.select().from(webhookDeliveries).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q, toDelivery);
  }

  /**
   * The inbox, unread entries first, each group by creation time. The cursor names the group
   * of the last entry seen (`u:` unread, `r:` read) and its id.
   */
  async listNotifications(principal: Principal, query: NotificationQueryInput): Promise<PageOf<NotificationOut>> {
    const limit = Math.min(Math.max(query.limit ?? 20, 1), 100);
    const order = query.order ?? "desc";
    const beyond = (id: string) => (order === "desc" ? lt(notifications.id, id) : gt(notifications.id, id));
    const conditions: (SQL | undefined)[] = [eq(notifications.orgId, principal.orgId)];
    if (query.unread_only) conditions.push(isNull(notifications.readAt));
    if (query.after) {
      const m = /^([ur]):(ntf_[0-9A-Z]{26})$/.exec(query.after);
      if (!m) throw badRequest("invalid_cursor", "after must be the next_cursor of a previous page.", { field: "after" });
      const [, group, id] = m;
      conditions.push(group === "u" ? or(and(isNull(notifications.readAt), beyond(id)), isNotNull(notifications.readAt)) : and(isNotNull(notifications.readAt), beyond(id)));
    }
    const rows = await this.db
      .select()
      .from(notifications)
      .where(and(...conditions))
      .orderBy(desc(isNull(notifications.readAt)), order === "desc" ? desc(notifications.id) : asc(notifications.id))
      .limit(limit + 1);
    const page = toPage(rows, limit, toNotification);
    if (page.has_more) {
      const last = rows[limit - 1];
      page.next_cursor = `${last.readAt === null ? "u" : "r"}:${last.id}`;
    }
    return page;
  }

  async markRead(principal: Principal, id: string): Promise<NotificationOut> {
    if (!isId("ntf", id)) throw notFound("notification", id);
    const [row] = await this.db
      .update(notifications)
      .set({ readAt: new Date() })
      .where(and(eq(notifications.id, id), eq(notifications.orgId, principal.orgId), isNull(notifications.readAt)))
      .returning();
    if (row) return toNotification(row);
    const [existing] = await this.db.select().from(notifications).where(and(eq(notifications.id, id), eq(notifications.orgId, principal.orgId)));
    if (!existing) throw notFound("notification", id);
    return toNotification(existing);
  }

}

type ActiveWebhook = Pick<WebhookRow, "id" | "eventTypes" | "createdAt">;

/** Consumer side (not part of the RPC surface): one event → deliveries for the matching webhooks + an inbox entry; idempotent by event id. */
export class EventIntake {
  /** The webhook read each organization has queued and not yet sent: intakes that arrive before it goes out share it. */
  private queuedReads = new Map<string, Promise<ActiveWebhook[]>>();

  constructor(private db: Db, private onDeliveriesQueued: () => void = () => {}) {}

  /**
   * The organization's active webhooks, read once for every intake of that organization that
   * arrives before the read is sent (the consumer hands events over several at a time, and the
   * read waits for the next turn of the event loop). Only a
   * read not yet sent is shared: it starts after each of its events was received, so it sees
   * every webhook registered before them, as a read of their own would.
   */
  private activeWebhooks(orgId: string): Promise<ActiveWebhook[]> {
    const queued = this.queuedReads.get(orgId);
    if (queued) return queued;
    // Sent at the next turn of the event loop: the intakes started in this one join it.
    const read = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.queuedReads.delete(orgId);
      return this.db.select({ id: webhooks.id, eventTypes: webhooks.eventTypes, createdAt: webhooks.createdAt }).from(webhooks).where(and(eq(webhooks.orgId, orgId), eq(webhooks.active, true)));
    });
    this.queuedReads.set(orgId, read);
    return read;
  }

  /**
   * No transaction: both inserts are idempotent by event id, so a redelivery after a failure
   * between them completes the other. Most events match no webhook and make no inbox entry:
   * one select (BEGIN, select, COMMIT before — three round trips per event).
   */
  async intake(event: DomainEvent): Promise<{ deliveries: number; notified: boolean }> {
    const entry = inboxEntryFor(event);
    const [hooks, notified] = await Promise.all([
      this.activeWebhooks(event.org_id),
      entry
        ? this.db
            .insert(notifications)
            .values({ id: notificationIdFor(event), orgId: event.org_id, eventId: event.id, type: event.type, createdAt: eventTime(event), ...entry })
            .onConflictDoNothing()
            .returning({ id: notifications.id })
            .then((inserted) => inserted.length > 0)
        : false,
    ]);
    // A webhook receives the events that happen after it is registered (also when events are replayed).
    const at = eventTime(event).getTime();
    const matching = hooks.filter((h) => h.createdAt.getTime() <= at && webhookWants(h.eventTypes, event.type));
    let deliveries = 0;
    if (matching.length > 0) {
      const inserted = await this.db
        .insert(webhookDeliveries)
        .values(matching.map((h) => ({
          id: newId("dlv"), orgId: event.org_id, webhookId: h.id, eventId: event.id, eventType: event.type, payload: event, status: "pending", nextAttemptAt: sql`now()`,
          traceparent: currentContext()?.traceparent ?? null,
        })))
        .onConflictDoNothing()
        .returning({ id: webhookDeliveries.id });
      deliveries = inserted.length;
    }
    if (deliveries > 0) this.onDeliveriesQueued();
    return { deliveries, notified };
  }
}
