/** The notify controller: /v1/webhooks, /v1/webhooks/:id/deliveries, /v1/notifications. (/v1/ws: see live.ts.) */
import { idempotencyKeys } from "../../platform/http/idempotency";
import { Elysia } from "elysia";
import type { AuthGuard } from "../../platform/http/auth-guard";
import { Deleted, errors, IdParam, PageQuery } from "../../platform/http/models";
import type { AppPlatform } from "../clients";
import { CreatedWebhook, CreateWebhookBody, DeliveryPage, Notification, NotificationPage, NotificationQuery, WebhookPage } from "./model";

const WebhookIdParam = IdParam("whk", "Webhook id (whk_…)");

export function notifyController(p: AppPlatform, guard: AuthGuard) {
  const tags = ["webhooks"];
  return new Elysia()
    .use(guard.plugin)
    .use(idempotencyKeys)
    .post(
      "/webhooks",
      async ({ principal, body, idempotency, set }) => {
        const result = await p.clients.notify.createWebhook(principal, body, idempotency);
        set.status = result.status;
        return result.body;
      },
      {
        auth: true,
        idempotent: true,
        body: CreateWebhookBody,
        response: { 201: CreatedWebhook, ...errors(400, 401, 409, 422, 429) },
        detail: { tags, summary: "Register a webhook (the signing secret is shown once)" },
      },
    )
    .get("/webhooks", ({ principal, query }) => p.clients.notify.listWebhooks(principal, query), {
      auth: true,
      query: PageQuery,
      response: { 200: WebhookPage, ...errors(400, 401, 429) },
      detail: { tags, summary: "List the organization's webhooks" },
    })
    .delete("/webhooks/:id", ({ principal, params }) => p.clients.notify.deleteWebhook(principal, params.id), {
      auth: true,
      params: WebhookIdParam,
      response: { 200: Deleted, ...errors(401, 404) },
      detail: { tags, summary: "Delete a webhook (pending deliveries are dropped)" },
    })
    .get("/webhooks/:id/deliveries", ({ principal, params, query }) => p.clients.notify.listDeliveries(principal, params.id, query), {
      auth: true,
      params: WebhookIdParam,
      query: PageQuery,
      response: { 200: DeliveryPage, ...errors(400, 401, 404, 429) },
      detail: { tags, summary: "Delivery log: attempts, status codes, latency" },
    })
    .get("/notifications", ({ principal, query }) => p.clients.notify.listNotifications(principal, query), {
      auth: true,
      query: NotificationQuery,
      response: { 200: NotificationPage, ...errors(400, 401, 429) },
      detail: { tags: ["notifications"], summary: "The inbox: unread first, then read" },
    })
    .post("/notifications/:id/read", ({ principal, params }) => p.clients.notify.markRead(principal, params.id), {
      auth: true,
      params: IdParam("ntf", "Inbox entry id (ntf_…)"),
      response: { 200: Notification, ...errors(401, 404, 429) },
      detail: { tags: ["notifications"], summary: "Mark an inbox entry read" },
    });
}
