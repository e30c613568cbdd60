import type { BillingService } from "./service";
/** What other roles may call on the billing role (through `p.clients.billing`). */
export interface PlanLimits {
  plan: string;
  runs_per_month: number;
  tokens_per_month: number;
  requests_per_minute: number;
}

export interface BillingContract {
  /** Limits of the organization's plan; the gateway caches them for rate limiting. */
  getLimits(orgId: string): Promise<PlanLimits>;
  /** Throws AppError 402 `quota_exceeded` (details: limit, used, resets_at) if one more run would exceed the plan. */
  assertRunAllowed(orgId: string): Promise<void>;
}

/** Bus subject (relative) announcing a plan change `{org_id}`: every gateway drops its cached limits. */
export const PLAN_CHANGED = "cache.billing.plan_changed";

/**
 * The billing role's RPC surface: what gateways and other roles may call through
 * `p.clients.billing`. Over the bus nothing else is served (src/platform/rpc.ts).
 */
export const BILLING_RPC = [
  "getLimits", "assertRunAllowed", "modelCosts", "getPlan", "updatePlan", "usage", "invoices",
] as const satisfies readonly (keyof BillingService)[];
export type BillingClient = Pick<BillingService, (typeof BILLING_RPC)[number]>;
