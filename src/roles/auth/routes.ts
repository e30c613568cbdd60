/** The auth controller: /v1/auth/*, /v1/api-keys, /v1/organization/members. */
import { Elysia } from "elysia";
import { currentContext } from "../../platform/context";
import { AppError } from "../../platform/errors";
import type { AuthGuard } from "../../platform/http/auth-guard";
import { idempotencyKeys } from "../../platform/http/idempotency";
import { Deleted, errors, IdParam, PageQuery } from "../../platform/http/models";
import { enforceRateLimit } from "../../platform/http/rate-limit";
import type { AppPlatform } from "../clients";
import {
  AddMemberBody, ApiKey, ApiKeyPage, CreateApiKeyBody, CreatedApiKey, LoginBody, LogoutBody, LogoutResult, Me, Member, MemberPage, RefreshBody, Session, SignupBody, UpdateApiKeyBody,
} from "./model";

/** Unauthenticated routes are limited per client IP. */
const IP_LIMIT = { limit: 60, windowMs: 60_000 };
/**
 * Password guessing: failed logins are counted per account AND client address; past the limit
 * that address is refused for that account for the window. Only failures count, and only
 * from the same address, so a stranger hammering an account cannot lock its owner out.
 */
export const LOGIN_FAILURE_LIMIT = { limit: 10, windowMs: 5 * 60_000 };

function loginFailureLocked(retryAfterMs: number): AppError {
  const retryAfter = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  return new AppError(429, "rate_limited", `Too many failed logins for this account from this address; retry after ${retryAfter} s.`, { limit: LOGIN_FAILURE_LIMIT.limit, window_seconds: LOGIN_FAILURE_LIMIT.windowMs / 1000 }, { "retry-after": retryAfter });
}

export function authController(p: AppPlatform, guard: AuthGuard) {
  const clientIp = () => currentContext()?.clientIp ?? "unknown";
  const limitIp = (route: string) => enforceRateLimit(p.cache, `ip:${route}:${clientIp()}`, IP_LIMIT.limit, IP_LIMIT.windowMs, "attempts from this address");

  /**
   * Login with the failure limit: refused while this account has had `limit` failures from this
   * address within the window; only a wrong password counts. Both are one sliding-window counter
   * in the shared cache (counted per process while Redis is down, like every rate limit).
   */
  async function loginCountingFailures(body: { email: string; password: string; organization_id?: string }) {
    const failures = `login-failures:${body.email.toLowerCase()}|${clientIp()}`;
    const locked = await p.cache.rateLimit(failures, LOGIN_FAILURE_LIMIT.limit, LOGIN_FAILURE_LIMIT.windowMs, 0);
    if (!locked.allowed) throw loginFailureLocked(locked.retryAfterMs);
    try {
      return await p.clients.auth.login(body);
    } catch (err) {
      if (err instanceof AppError && err.code === "invalid_credentials") await p.cache.rateLimit(failures, LOGIN_FAILURE_LIMIT.limit, LOGIN_FAILURE_LIMIT.windowMs);
      throw err;
    }
  }
  const tags = ["auth"];
  return new Elysia({ name: "auth-controller" })
    .use(guard.plugin)
    .use(idempotencyKeys)
    .post(
      "/auth/signup",
      async ({ body, set }) => {
        await limitIp("signup");
        set.status = 201;
        return p.clients.auth.signup(body);
      },
      { body: SignupBody, response: { 201: Session, ...errors(400, 409, 429) }, detail: { tags, summary: "Create an account and its organization", security: [] } },
    )
    .post(
      "/auth/login",
      async ({ body }) => {
        await limitIp("login");
        return loginCountingFailures(body);
      },
      { body: LoginBody, response: { 200: Session, ...errors(400, 401, 403, 429) }, detail: { tags, summary: "Log in: access and refresh tokens", security: [] } },
    )
    .post(
      "/auth/refresh",
      async ({ body }) => {
        await limitIp("refresh");
        return p.clients.auth.refresh(body);
      },
      { body: RefreshBody, response: { 200: Session, ...errors(400, 401, 429) }, detail: { tags, summary: "Rotate the refresh token: a new pair; the old token is spent", security: [] } },
    )
    .post("/auth/logout", ({ principal, body }) => p.clients.auth.logout(principal, body ?? {}), {
      auth: true,
      body: LogoutBody,
      response: { 200: LogoutResult, ...errors(401) },
      detail: { tags, summary: "Revoke the session (or every session of the user in this organization)" },
    })
    .get("/auth/me", ({ principal }) => p.clients.auth.me(principal), {
      auth: true,
      response: { 200: Me, ...errors(401) },
      detail: { tags, summary: "The caller: user, organization, role" },
    })
    .post(
      "/api-keys",
      async ({ principal, body, set, idempotency }) => {
        const result = await p.clients.auth.createApiKey(principal, body, idempotency);
        set.status = result.status;
        return result.body;
      },
      { auth: true, idempotent: true, body: CreateApiKeyBody, response: { 201: CreatedApiKey, ...errors(400, 401) }, detail: { tags: ["api-keys"], summary: "Create an API key (shown once)" } },
    )
    .get("/api-keys", ({ principal, query }) => p.clients.auth.listApiKeys(principal, query), {
      auth: true,
      query: PageQuery,
      response: { 200: ApiKeyPage, ...errors(400, 401) },
      detail: { tags: ["api-keys"], summary: "List the organization's API keys" },
    })
    .patch("/api-keys/:id", ({ principal, params, body }) => p.clients.auth.updateApiKey(principal, params.id, body), {
      auth: true,
      params: IdParam("key", "API key id (key_…)"),
      body: UpdateApiKeyBody,
      response: { 200: ApiKey, ...errors(400, 401, 403, 404) },
      detail: { tags: ["api-keys"], summary: "Rename an API key or change its daily spend cap" },
    })
    .delete("/api-keys/:id", ({ principal, params }) => p.clients.auth.deleteApiKey(principal, params.id), {
      auth: true,
      params: IdParam("key", "API key id (key_…)"),
      response: { 200: Deleted, ...errors(401, 404) },
      detail: { tags: ["api-keys"], summary: "Delete an API key" },
    })
    .get("/organization/members", ({ principal, query }) => p.clients.auth.listMembers(principal, query), {
      auth: true,
      query: PageQuery,
      response: { 200: MemberPage, ...errors(400, 401) },
      detail: { tags: ["organization"], summary: "List members" },
    })
    .post(
      "/organization/members",
      async ({ principal, body, idempotency, set }) => {
        const result = await p.clients.auth.addMember(principal, body, idempotency);
        set.status = result.status;
        return result.body;
      },
      { auth: true, idempotent: true, body: AddMemberBody, response: { 201: Member, ...errors(400, 401, 403, 404, 409) }, detail: { tags: ["organization"], summary: "Add an existing user by email (owners only)" } },
    );
}
