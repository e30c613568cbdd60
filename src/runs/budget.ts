/**
 * Budgets of runs and daily spend caps of API keys, enforced by reservations.
 *
 * Before a metered model call (model_call or summarize step) starts, `reserve` holds what it
 * may cost — the prompt's tokens plus the reply's maximum, priced with billing's model prices —
 * in the same transaction that opens the step: the run's own limits are checked against the sum
 * of its reservations, the key's cap with one conditional increment of its counter for the UTC
 * day (atomic across every run and worker using the key). After the call `settle` replaces the
 * hold by the real usage, in the transaction that closes the step.
 *
 * Exactly once under kill -9: a reservation is keyed by its step id, so the retry of an
 * interrupted step finds its hold instead of taking another; settling flips `reserved` →
 * `settled` once (a guarded update), so a replayed close changes nothing. Holds of calls that
 * never produced usage (failed, cancelled) are released when the run ends.
 *
 * Amounts are integers: micro-cents (1e-6 cent), since prices are cents per 1M tokens.
 */
import { and, eq, ne, sql } from "drizzle-orm";
import { apiKeyDailySpend, budgetReservations } from "../../schema";
import type { Tx } from "../platform/db";
import type { Budget } from "./model";
import type { RunRow } from "./types";

/** Cents per 1M tokens, which is also micro-cents per token. */
export interface TokenPrice {
  input: number;
  output: number;
}

/** What applies to one run: its own budget and the daily cap of the key it was created with. */
export interface BudgetLimits {
  run: Budget | null;
  apiKeyId: string | null;
  /** The key's daily cap in cents, or null (no cap: the key's counter is not kept). */
  keyDailyCapCents: number | null;
}

export class BudgetExceededError extends Error {
  override name = "BudgetExceededError";
  readonly code = "budget_exceeded";
}

export const MICRO = 1_000_000;
const utcDay = (at = new Date()) => at.toISOString().slice(0, 10);

export const isBudgeted = (l: BudgetLimits) => l.run !== null || (l.apiKeyId !== null && l.keyDailyCapCents !== null);

export function limitsOf(run: RunRow, keyDailyCapCents: number | null): BudgetLimits {
  return { run: run.budget ?? null, apiKeyId: run.apiKeyId ?? null, keyDailyCapCents: run.apiKeyId ? keyDailyCapCents : null };
}

export const costOf = (price: TokenPrice, promptTokens: number, completionTokens: number) =>
  Math.ceil(promptTokens * price.input + completionTokens * price.output);

/**
 * Holds `tokens` / `microCents` for the step, or throws BudgetExceededError (the caller's
 * transaction then rolls back, hold included). An existing hold of the step (a resumed call)
 * is kept as it is: it passed the checks when it was taken.
 */
export async function reserve(tx: Tx, run: RunRow, limits: BudgetLimits, stepId: string, hold: { tokens: number; microCents: number }) {
  const keyCapped = limits.apiKeyId !== null && limits.keyDailyCapCents !== null;
  const day = utcDay();
  const inserted = await tx
    .insert(budgetReservations)
    .values({ stepId, orgId: run.orgId, runId: run.id, apiKeyId: keyCapped ? limits.apiKeyId : null, day, tokens: hold.tokens, microCents: hold.microCents, status: "reserved" })
    .onConflictDoNothing()
    .returning({ stepId: budgetReservations.stepId });
  if (!inserted.length) return;
  if (limits.run) {
    const [used] = await tx
      .select({ tokens: sql<number>`coalesce(sum(${budgetReservations.tokens}), 0)`.mapWith(Number), microCents: sql<number>`coalesce(sum(${budgetReservations.microCents}), 0)`.mapWith(Number) })
      .from(budgetReservations)
      .where(and(eq(budgetReservations.runId, run.id), ne(budgetReservations.stepId, stepId)));
    const { max_tokens, max_cost_cents } = limits.run;
    if (max_tokens !== undefined && used.tokens + hold.tokens > max_tokens) {
      throw new BudgetExceededError(`The next model call may use ${hold.tokens} tokens; the run used ${used.tokens} of its max_tokens ${max_tokens}.`);
    }
    if (max_cost_cents !== undefined && used.microCents + hold.microCents > Math.floor(max_cost_cents * MICRO)) {
      throw new BudgetExceededError(`The next model call may cost ${cents(hold.microCents)} cents; the run spent ${cents(used.microCents)} of its max_cost_cents ${max_cost_cents}.`);
    }
  }
  if (keyCapped) {
    const capMicro = limits.keyDailyCapCents! * MICRO;
    await tx.insert(apiKeyDailySpend).values({ apiKeyId: limits.apiKeyId!, day, orgId: run.orgId, microCents: 0 }).onConflictDoNothing();
    const [charged] = await tx
      .update(apiKeyDailySpend)
      .set({ microCents: sql`${apiKeyDailySpend.microCents} + ${hold.microCents}` })
      .where(and(eq(apiKeyDailySpend.apiKeyId, limits.apiKeyId!), eq(apiKeyDailySpend.day, day), sql`${apiKeyDailySpend.microCents} + ${hold.microCents} <= ${capMicro}`))
      .returning({ microCents: apiKeyDailySpend.microCents });
    if (!charged) {
      throw new BudgetExceededError(`The next model call may cost ${cents(hold.microCents)} cents; API key ${limits.apiKeyId} would exceed its daily_spend_cap_cents ${limits.keyDailyCapCents} today (UTC).`);
    }
  }
}

/** Replaces the step's hold by what the call really used; a no-op when it was settled already (or never held). */
export async function settle(tx: Tx, stepId: string, used: { tokens: number; microCents: number }) {
  const [held] = await tx.select().from(budgetReservations).where(and(eq(budgetReservations.stepId, stepId), eq(budgetReservations.status, "reserved"))).for("update");
  if (!held) return;
  // Guarded: of two settles of one hold, only the first changes the counter.
  const flipped = await tx
    .update(budgetReservations)
    .set({ status: "settled", tokens: used.tokens, microCents: used.microCents, settledAt: new Date() })
    .where(and(eq(budgetReservations.stepId, stepId), eq(budgetReservations.status, "reserved")))
    .returning({ stepId: budgetReservations.stepId });
  if (flipped.length && held.apiKeyId && used.microCents !== held.microCents) {
    await tx
      .update(apiKeyDailySpend)
      .set({ microCents: sql`${apiKeyDailySpend.microCents} + ${used.microCents - held.microCents}` })
      .where(and(eq(apiKeyDailySpend.apiKeyId, held.apiKeyId), eq(apiKeyDailySpend.day, held.day)));
  }
}

/** Releases the holds of calls that ended without usage (a failed or cancelled call): the run is ending. */
export async function releaseHolds(tx: Tx, runId: string) {
  const open = await tx.select({ stepId: budgetReservations.stepId }).from(budgetReservations).where(and(eq(budgetReservations.runId, runId), eq(budgetReservations.status, "reserved")));
  for (const r of open) await settle(tx, r.stepId, { tokens: 0, microCents: 0 });
}

const cents = (micro: number) => Math.round((micro / MICRO) * 10_000) / 10_000;
