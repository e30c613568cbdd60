/** Route models of the notify role: webhooks, their deliveries, the inbox. */
import { t } from "elysia";
import { EVENT_TYPE_PATTERNS } from "../../platform/event-types";
import { Page, Timestamp, Enum } from "../../platform/http/models";

const EventType = Enum(EVENT_TYPE_PATTERNS as [string, ...string[]], {
  description: "An event type (run.completed), a family (run.*) or * for every event",
});

export const CreateWebhookBody = t.Object({
  url: t.String({ minLength: 8, maxLength: 2048, pattern: "^[Hh][Tt][Tt][Pp][Ss]?://", description: "http(s) URL that receives POSTed events" }),
  event_types: t.Optional(t.Array(EventType, { maxItems: 50, description: "Only these event types; empty or absent = every event", default: [] })),
  description: t.Optional(t.String({ maxLength: 500 })),
});
export type CreateWebhookInput = typeof CreateWebhookBody.static;

export const Webhook = t.Object({
  id: t.String(),
  url: t.String(),
  event_types: t.Array(t.String()),
  description: t.Nullable(t.String()),
  active: t.Boolean(),
  created_at: Timestamp,
});
export const CreatedWebhook = t.Composite([
  Webhook,
  t.Object({ secret: t.String({ description: "Signing secret (HMAC-SHA256). Shown once: store it now." }) }),
]);
export type WebhookOut = typeof Webhook.static;
export type CreatedWebhookOut = typeof CreatedWebhook.static;
export const WebhookPage = Page(Webhook);

export const DeliveryAttempt = t.Object({
  at: Timestamp,
  status_code: t.Nullable(t.Integer()),
  latency_ms: t.Integer(),
  error: t.Nullable(t.String()),
});
export const Delivery = t.Object({
  id: t.String(),
  webhook_id: t.String(),
  event_id: t.String(),
  event_type: t.String(),
  status: Enum(["pending", "succeeded", "failed"]),
  attempts: t.Integer(),
  attempt_log: t.Array(DeliveryAttempt),
  next_attempt_at: t.Nullable(Timestamp),
  delivered_at: t.Nullable(Timestamp),
  created_at: Timestamp,
});
export type DeliveryOut = typeof Delivery.static;
export const DeliveryPage = Page(Delivery);

export const NotificationQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20 })),
  after: t.Optional(t.String({ maxLength: 64, description: "Cursor: the `next_cursor` of the previous page" })),
  order: t.Optional(Enum(["asc", "desc"], { default: "desc", description: "Within unread and read entries, by creation time (newest first by default)" })),
  unread_only: t.Optional(t.Boolean({ default: false })),
});
export type NotificationQueryInput = typeof NotificationQuery.static;

export const Notification = t.Object({
  id: t.String(),
  type: t.String({ description: "run.completed | run.failed | billing.quota_warning | billing.quota_exceeded" }),
  title: t.String(),
  body: t.String(),
  data: t.Record(t.String(), t.Any()),
  read: t.Boolean(),
  read_at: t.Nullable(Timestamp),
  created_at: Timestamp,
});
export type NotificationOut = typeof Notification.static;
export const NotificationPage = Page(Notification);
