/**
 * Model providers per organization (bring your own key): any OpenAI-compatible server, named;
 * an agent's `model: "<provider>/<model>"` is sent to it as `<model>`. A model without a known
 * provider prefix goes to the deployment's MODEL_BASE_URL (the default provider), so names
 * that contain a slash (`meta-llama/Llama-3-8b`) keep working there.
 *
 * The API key is sealed with the deployment's secret key (AES-256-GCM) before it is stored,
 * never returned, never logged; only the worker gets it back (resolveModel, over sealed RPC
 * when split). The base URL is a tenant-chosen outbound target: an IP literal in a blocked
 * range is refused at registration, and every call goes through the SSRF guard.
 */
import { and, eq, isNotNull } from "drizzle-orm";
import { modelProviders } from "../../../schema";
import { isUniqueViolation, type Db } from "../../platform/db";
import { pageQuery, toPage, type PageOf, type PageRequest } from "../../platform/db/pagination";
import { AppError, badRequest, conflict, forbidden, notFound, unprocessable } from "../../platform/errors";
import { isId, newId } from "../../platform/ids";
import { sha256Hex } from "../../platform/hash";
import { withIdempotency, type IdempotencyScope, type IdempotentResult } from "../../platform/idempotency";
import type { Logger } from "../../platform/logging";
import { literalTargetProblem, type OutboundPolicy } from "../../platform/net/outbound";
import type { Principal } from "../../platform/principal";
import type { SecretBox } from "../../platform/secrets";
import { splitModel } from "./contract";
import type { CreateProviderInput, ProviderOut } from "./model";

type ProviderRow = typeof modelProviders.$inferSelect;

/** Where a run's model calls go: a tenant provider (its URL, key, the model name it expects), or the default. */
export interface ModelRoute {
  /** Null: the deployment's default provider (MODEL_BASE_URL) with the model as given. */
  provider: { id: string; name: string; base_url: string; api_key: string | null; updated_at: string } | null;
  /** The model name sent to the server. */
  model: string;
}

const providerOut = (r: ProviderRow): ProviderOut => ({
  id: r.id,
  name: r.name,
  base_url: r.baseUrl,
  has_api_key: r.apiKeySealed !== null,
  models: r.models ?? null,
  created_at: r.createdAt.toISOString(),
  updated_at: r.updatedAt.toISOString(),
});

export class ProvidersService {
  constructor(
    private db: Db,
    private secrets: SecretBox,
    private outbound: OutboundPolicy,
    /** --idempotency-stale (see withIdempotency). */
    private idempotencyStaleMs: number,
  ) {}

  async createProvider(principal: Principal, input: CreateProviderInput, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<ProviderOut>> {
    if (principal.role !== "owner") throw forbidden("Only an owner of the organization can add model providers.");
    // The key is never stored with the idempotency record: only its hash takes part in the request's fingerprint.
    const fingerprint = { ...input, api_key: input.api_key ? sha256Hex(input.api_key) : undefined };
    return withIdempotency(this.db, { orgId: principal.orgId, scope: idempotency, body: fingerprint, staleClaimMs: this.idempotencyStaleMs }, async () => {
      const url = parseBaseUrl(input.base_url, this.outbound);
      const sealed = input.api_key ? this.secrets.encrypt(input.api_key) : null;
      try {
        const [row] = await this.db
          .insert(modelProviders)
          .values({ id: newId("prv"), orgId: principal.orgId, name: input.name, baseUrl: url, apiKeySealed: sealed, models: input.models ?? null })
          .returning();
        return { status: 201, body: providerOut(row) };
      } catch (err) {
        if (isUniqueViolation(err)) throw conflict("duplicate_provider", `The organization already has a model provider named '${input.name}'.`);
        throw err;
      }
    });
  }

  async listProviders(principal: Principal, page: PageRequest): Promise<PageOf<ProviderOut>> {
    const q = pageQuery(modelProviders.id, page, eq(modelProviders.orgId, principal.orgId));
    const rows = await this.db.select().from(modelProviders).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q.pageSize, providerOut);
  }

  async deleteProvider(principal: Principal, id: string): Promise<{ id: string; object: "provider"; deleted: true }> {
    if (principal.role !== "owner") throw forbidden("Only an owner of the organization can delete model providers.");
    if (!isId("prv", id)) throw notFound("provider", id);
    const gone = await this.db.delete(modelProviders).where(and(eq(modelProviders.orgId, principal.orgId), eq(modelProviders.id, id))).returning({ id: modelProviders.id });
    if (!gone.length) throw notFound("provider", id);
    return { id, object: "provider", deleted: true };
  }

  /**
   * Where the organization's `model` is served (the worker, per run). A `<name>/<model>` whose
   * `<name>` is a provider of the organization goes there; anything else to the default provider.
   */
  async resolveModel(orgId: string, model: string): Promise<ModelRoute> {
    const row = await this.providerFor(orgId, model);
    if (!row) return { provider: null, model };
    return {
      provider: { id: row.id, name: row.name, base_url: row.baseUrl, api_key: row.apiKeySealed ? this.openKey(row) : null, updated_at: row.updatedAt.toISOString() },
      model: splitModel(model)![1],
    };
  }

  /** For agent create/update: 422 when the model names a provider's model that it does not list. */
  async assertModelServed(orgId: string, model: string): Promise<void> {
    const row = await this.providerFor(orgId, model);
    const bare = splitModel(model)?.[1];
    if (row?.models && bare && !row.models.includes(bare)) {
      throw unprocessable("model_not_served", `The provider '${row.name}' does not list the model '${bare}' (it serves: ${row.models.join(", ")}).`);
    }
  }

  /**
   * After a rotation (new AGENTOS_SECRET_KEY, the old one in AGENTOS_SECRET_KEY_PREVIOUS): keys
   * sealed with a previous key are sealed again with the current one (at the agents role's
   * start), so the old key can be dropped after one restart. Keys no configured key opens are
   * left alone (and logged by id). Several processes doing it at once write equivalent seals.
   */
  async resealStaleKeys(log: Logger): Promise<number> {
    if (!this.secrets.configured) return 0;
    const rows = await this.db.select({ id: modelProviders.id, sealed: modelProviders.apiKeySealed }).from(modelProviders).where(isNotNull(modelProviders.apiKeySealed));
    let resealed = 0;
    for (const row of rows) {
      if (!this.secrets.isStale(row.sealed!)) continue;
      let plain: string;
      try {
        plain = this.secrets.decrypt(row.sealed!);
      } catch {
        log.warn("a model provider's API key cannot be decrypted with the configured secret keys", { provider_id: row.id });
        continue;
      }
      await this.db.update(modelProviders).set({ apiKeySealed: this.secrets.encrypt(plain) }).where(and(eq(modelProviders.id, row.id), eq(modelProviders.apiKeySealed, row.sealed!)));
      resealed++;
    }
    if (resealed) log.info("re-sealed model provider API keys with the current secret key", { count: resealed });
    return resealed;
  }

  private openKey(row: ProviderRow): string {
    try {
      return this.secrets.decrypt(row.apiKeySealed!);
    } catch {
      throw new AppError(500, "provider_key_unreadable", `The API key of the model provider '${row.name}' cannot be decrypted with this deployment's secret keys (AGENTOS_SECRET_KEY changed without the former key in AGENTOS_SECRET_KEY_PREVIOUS?).`);
    }
  }

  private async providerFor(orgId: string, model: string): Promise<ProviderRow | undefined> {
    const parts = splitModel(model);
    if (!parts) return undefined;
    const [row] = await this.db.select().from(modelProviders).where(and(eq(modelProviders.orgId, orgId), eq(modelProviders.name, parts[0])));
    return row;
  }
}

/** An http(s) URL without credentials whose literal address is allowed; trailing slashes dropped. */
function parseBaseUrl(value: string, outbound: OutboundPolicy): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw badRequest("invalid_base_url", "base_url must be an absolute http(s) URL.");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw badRequest("invalid_base_url", "base_url must be an http or https URL.");
  if (url.username || url.password) throw badRequest("invalid_base_url", "base_url must not carry credentials; give the key as api_key.");
  const refused = literalTargetProblem(url, outbound);
  if (refused) throw badRequest("target_refused", `base_url is refused: ${refused}`);
  return url.toString().replace(/\/+$/, "");
}
