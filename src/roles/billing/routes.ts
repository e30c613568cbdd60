/** The billing controller: /v1/billing/plan, /v1/billing/usage, /v1/billing/invoices. */
import { Elysia } from "elysia";
import type { AuthGuard } from "../../platform/http/auth-guard";
import { errors } from "../../platform/http/models";
import type { AppPlatform } from "../clients";
import { InvoicePage, InvoiceQuery, Plan, UpdatePlanBody, Usage, UsageQuery } from "./model";

export function billingController(p: AppPlatform, guard: AuthGuard) {
  const tags = ["billing"];
  return new Elysia()
    .use(guard.plugin)
    .get("/billing/plan", ({ principal }) => p.clients.billing.getPlan(principal), {
      auth: true,
      response: { 200: Plan, ...errors(401, 429) },
      detail: { tags, summary: "The organization's plan, its limits and this month's usage" },
    })
    .put("/billing/plan", ({ principal, body }) => p.clients.billing.updatePlan(principal, body), {
      auth: true,
      body: UpdatePlanBody,
      response: { 200: Plan, ...errors(400, 401, 403, 429) },
      detail: { tags, summary: "Change the plan (owners only)" },
    })
    .get("/billing/usage", ({ principal, query }) => p.clients.billing.usage(principal, query), {
      auth: true,
      query: UsageQuery,
      response: { 200: Usage, ...errors(400, 401, 429) },
      detail: { tags, summary: "Usage from the ledger, grouped by day, model or agent" },
    })
    .get("/billing/invoices", ({ principal, query }) => p.clients.billing.invoices(principal, query), {
      auth: true,
      query: InvoiceQuery,
      response: { 200: InvoicePage, ...errors(400, 401, 429) },
      detail: { tags, summary: "Monthly statements: line items per model, totals in integer cents" },
    });
}
