/**
 * Plans and prices: the defaults live here in code; an operator overrides them with JSON
 * (--plan-limits / AGENTOS_PLAN_LIMITS, --model-prices / AGENTOS_MODEL_PRICES), merged over the defaults.
 * Money is integer: prices are cents per 1M tokens, so tokens × price is an exact number of
 * micro-cents, rounded to cents once per invoice line.
 */
import { FatalError } from "../../platform/errors";
import type { PlanLimits } from "./contract";

export const PLAN_NAMES = ["free", "pro", "business", "enterprise"] as const;
export type PlanName = (typeof PLAN_NAMES)[number];

export type Limits = Omit<PlanLimits, "plan">;

export const DEFAULT_PLANS: Record<PlanName, Limits> = {
  free: { runs_per_month: 100, tokens_per_month: 1_000_000, requests_per_minute: 60 },
  pro: { runs_per_month: 5_000, tokens_per_month: 50_000_000, requests_per_minute: 600 },
  business: { runs_per_month: 50_000, tokens_per_month: 500_000_000, requests_per_minute: 3_000 },
  enterprise: { runs_per_month: 1_000_000, tokens_per_month: 10_000_000_000, requests_per_minute: 20_000 },
};

/** Cents per 1M tokens, by model; `default` prices any model not listed. */
export interface ModelPrice {
  input_cents_per_million: number;
  output_cents_per_million: number;
}

export const DEFAULT_PRICES: Record<string, ModelPrice> = {
  default: { input_cents_per_million: 100, output_cents_per_million: 300 },
  "gpt-4o": { input_cents_per_million: 250, output_cents_per_million: 1_000 },
  "gpt-4o-mini": { input_cents_per_million: 15, output_cents_per_million: 60 },
  "gpt-4.1": { input_cents_per_million: 200, output_cents_per_million: 800 },
  "gpt-4.1-mini": { input_cents_per_million: 40, output_cents_per_million: 160 },
  "gpt-5": { input_cents_per_million: 125, output_cents_per_million: 1_000 },
  "gpt-5-mini": { input_cents_per_million: 25, output_cents_per_million: 200 },
};

export interface BillingSettings {
  plans: Record<PlanName, Limits>;
  prices: Record<string, ModelPrice>;
}

function parseJson(name: string, raw: string | undefined): Record<string, unknown> {
  if (!raw) return {};
  try {
    const v = JSON.parse(raw);
    if (v && typeof v === "object" && !Array.isArray(v)) return v;
  } catch {
    /* reported below */
  }
  throw new FatalError(`${name} must be a JSON object`);
}

/** The overrides as configured (src/platform/config.ts checked they are JSON objects). */
export interface BillingOverrides {
  planLimitsJson?: string;
  modelPricesJson?: string;
}

const isNonNegativeInt = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Defaults merged with the environment's overrides; a malformed override stops the process with one line. */
export function loadBillingSettings(overrides: BillingOverrides = {}): BillingSettings {
  const plans = structuredClone(DEFAULT_PLANS);
  for (const [name, override] of Object.entries(parseJson("AGENTOS_PLAN_LIMITS", overrides.planLimitsJson))) {
    if (!(PLAN_NAMES as readonly string[]).includes(name)) throw new FatalError(`AGENTOS_PLAN_LIMITS: unknown plan '${name}' (plans: ${PLAN_NAMES.join(", ")})`);
    for (const [key, value] of Object.entries(override as Record<string, unknown>)) {
      if (!(key in plans.free) || !isNonNegativeInt(value)) throw new FatalError(`AGENTOS_PLAN_LIMITS.${name}.${key} must be a known limit with a non-negative integer`);
      (plans[name as PlanName] as unknown as Record<string, number>)[key] = value as number;
    }
  }
  const prices = structuredClone(DEFAULT_PRICES);
  for (const [model, price] of Object.entries(parseJson("AGENTOS_MODEL_PRICES", overrides.modelPricesJson))) {
    const p = price as Record<string, unknown>;
    if (!isNonNegativeInt(p?.input_cents_per_million) || !isNonNegativeInt(p?.output_cents_per_million)) {
      throw new FatalError(`AGENTOS_MODEL_PRICES.${model} needs integer input_cents_per_million and output_cents_per_million`);
    }
    prices[model] = { input_cents_per_million: p.input_cents_per_million as number, output_cents_per_million: p.output_cents_per_million as number };
  }
  return { plans, prices };
}

/**
 * The price of a model's tokens. A model served by an organization's provider is recorded as
 * `<provider>/<model>`: priced by that exact key when the operator lists it (e.g.
 * `"acme/gpt-4o"` in AGENTOS_MODEL_PRICES), else by the bare `<model>`'s price, else `default`.
 */
export function priceOf(prices: Record<string, ModelPrice>, model: string | null): ModelPrice {
  if (!model) return prices.default;
  const bare = model.includes("/") ? model.slice(model.indexOf("/") + 1) : null;
  return prices[model] ?? (bare ? prices[bare] : undefined) ?? prices.default;
}

/** Exact cost in micro-cents (1e-6 cent): tokens × cents-per-million. */
export function costMicroCents(price: ModelPrice, promptTokens: number, completionTokens: number): number {
  return promptTokens * price.input_cents_per_million + completionTokens * price.output_cents_per_million;
}

/** Micro-cents → cents, half up. */
export const toCents = (microCents: number) => Math.floor((microCents + 500_000) / 1_000_000);

/** The UTC calendar month containing `at`: its `YYYY-MM`, start and end (= when quotas reset). */
export function monthOf(at: Date) {
  const start = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
  const end = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1));
  return { period: start.toISOString().slice(0, 7), start, end };
}

export function monthFromPeriod(period: string) {
  const [y, m] = period.split("-").map(Number);
  return monthOf(new Date(Date.UTC(y, m - 1, 1)));
}
