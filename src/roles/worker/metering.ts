/**
 * The run loop's side of budgets (src/runs/budget.ts): what applies to the run (its budget, the
 * daily cap of its API key, read from the auth role once per lease) and the prices of its
 * model (from the billing role, once per lease), turned into the reserve/settle writes that the
 * loop folds into the transactions opening and closing each metered step. A run with neither a
 * budget nor a capped key costs nothing here: no reads, no writes.
 */
import type { Tx } from "../../platform/db";
import type { ModelUsage } from "../../platform/model/types";
import { costOf, isBudgeted, limitsOf, reserve, settle, type BudgetLimits, type RunRow, type TokenPrice } from "../../runs";
import type { AuthClient } from "../auth/contract";
import type { BillingClient } from "../billing/contract";

export interface Hold {
  tokens: number;
  microCents: number;
}

type TxWork = (tx: Tx, run: RunRow) => Promise<void>;

export class Metering {
  private prices = new Map<string, TokenPrice>();

  private constructor(
    private billing: () => Pick<BillingClient, "modelCosts">,
    readonly limits: BudgetLimits,
  ) {}

  static async load(run: RunRow, deps: { auth: () => Pick<AuthClient, "apiKeySpendCap">; billing: () => Pick<BillingClient, "modelCosts"> }): Promise<Metering> {
    const cap = run.apiKeyId ? await deps.auth().apiKeySpendCap(run.orgId, run.apiKeyId) : null;
    return new Metering(deps.billing, limitsOf(run, cap));
  }

  get budgeted() {
    return isBudgeted(this.limits);
  }

  /** What a call may use at most: its prompt plus the reply's maximum. Null when nothing is budgeted. */
  async hold(model: string, promptTokens: number, maxOutputTokens: number): Promise<Hold | null> {
    if (!this.budgeted) return null;
    const price = await this.price(model);
    return { tokens: promptTokens + maxOutputTokens, microCents: costOf(price, promptTokens, maxOutputTokens) };
  }

  /** The write holding `hold` for the step (in the transaction that opens it). */
  reserveWork(stepId: string, hold: Hold | null): TxWork | undefined {
    return hold ? (tx, run) => reserve(tx, run, this.limits, stepId, hold) : undefined;
  }

  /** The write replacing the step's hold by its real usage (in the transaction that closes it). */
  settleWork(stepId: string, model: string, usage: ModelUsage): TxWork | undefined {
    const price = this.prices.get(model);
    if (!this.budgeted || !price) return undefined;
    const used = { tokens: usage.prompt_tokens + usage.completion_tokens, microCents: costOf(price, usage.prompt_tokens, usage.completion_tokens) };
    return (tx) => settle(tx, stepId, used);
  }

  /** Cents per 1M tokens of the model, asked from billing as the cost of 1M input and 1M output tokens. */
  private async price(model: string): Promise<TokenPrice> {
    let p = this.prices.get(model);
    if (!p) {
      const [input, output] = await this.billing().modelCosts([
        { model, prompt_tokens: 1_000_000, completion_tokens: 0 },
        { model, prompt_tokens: 0, completion_tokens: 1_000_000 },
      ]);
      p = { input: input!, output: output! };
      this.prices.set(model, p);
    }
    return p;
  }
}
