/** The model providers controller: /v1/providers (bring your own OpenAI-compatible server and key). */
import { Elysia } from "elysia";
import type { AuthGuard } from "../../platform/http/auth-guard";
import { idempotencyKeys } from "../../platform/http/idempotency";
import { errors, IdParam, PageQuery } from "../../platform/http/models";
import type { AppPlatform } from "../clients";
import { CreateProviderBody, Provider, ProviderDeleted, ProviderPage } from "./model";

export function providersController(p: AppPlatform, guard: AuthGuard) {
  const tags = ["providers"];
  return new Elysia({ name: "providers-controller" })
    .use(guard.plugin)
    .use(idempotencyKeys)
    .post(
      "/providers",
      async ({ principal, body, idempotency, set }) => {
        const result = await p.clients.agents.createProvider(principal, body, idempotency);
        set.status = result.status;
        return result.body;
      },
      {
        auth: true,
        idempotent: true,
        body: CreateProviderBody,
        response: { 201: Provider, ...errors(400, 401, 403, 409, 503) },
        detail: { tags, summary: "Add an OpenAI-compatible model server; agents use it as model \"<name>/<model>\" (owners only; the key is stored encrypted, never returned)" },
      },
    )
    .get("/providers", ({ principal, query }) => p.clients.agents.listProviders(principal, query), {
      auth: true,
      query: PageQuery,
      response: { 200: ProviderPage, ...errors(400, 401) },
      detail: { tags, summary: "List the organization's model providers" },
    })
    .delete("/providers/:id", ({ principal, params }) => p.clients.agents.deleteProvider(principal, params.id), {
      auth: true,
      params: IdParam("prv", "Provider id (prv_…)"),
      response: { 200: ProviderDeleted, ...errors(401, 403, 404) },
      detail: { tags, summary: "Delete a model provider (agents naming it fall back to the default provider)" },
    });
}
