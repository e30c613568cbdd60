import type { NotifyService } from "./service";

/**
 * The notify role's RPC surface: what gateways and other roles may call through
 * `p.clients.notify`. Over the bus nothing else is served (src/platform/rpc.ts).
 */
export const NOTIFY_RPC = [
  "createWebhook", "listWebhooks", "deleteWebhook", "listDeliveries", "listNotifications", "markRead",
] as const satisfies readonly (keyof NotifyService)[];
export type NotifyClient = Pick<NotifyService, (typeof NOTIFY_RPC)[number]>;
