/**
 * Every domain event type AgentOS emits through the outbox (and so to webhooks, the inbox and
 * WebSockets). `emitEvent` accepts only these, so a new event cannot be emitted without
 * being listed here, and webhook subscriptions are checked against this list.
 */
export const EVENT_TYPES = [
  "agent.created",
  "agent.updated",
  "agent.deleted",
  "run.created",
  "run.requires_action",
  "run.completed",
  "run.failed",
  "run.cancelled",
  "run.expired",
  "step.completed",
  "tool_call.completed",
  "billing.quota_warning",
  "billing.quota_exceeded",
  "memory.created",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What a webhook may subscribe to: an event type, a family (`run.*`) or everything (`*`). */
export const EVENT_TYPE_PATTERNS: readonly string[] = ["*", ...new Set(EVENT_TYPES.map((t) => `${t.split(".")[0]}.*`)), ...EVENT_TYPES];
