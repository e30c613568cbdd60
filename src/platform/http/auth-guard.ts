/**
 * The auth guard every /v1 controller uses: a named Elysia plugin whose `auth` macro
 * resolves `principal` (user, organization, role) from `Authorization: Bearer <JWT or API
 * key>`. Verified JWTs and API keys are cached in-process: the hot path of an authenticated
 * read is one HMAC check at most, usually a Map lookup.
 */
import { Elysia } from "elysia";
import { AppError, unauthorized } from "../errors";
import type { Jwt } from "../jwt";
import { API_KEY_PREFIX, type MemberRole, type Principal } from "../principal";


export interface AuthGuardDeps {
  jwt: Jwt;
  /** Looks an API key up by its hash (the auth role); null when unknown, expired or revoked. */
  resolveApiKey(key: string): Promise<Principal | null>;
  /** Runs after authentication (rate limits); returns headers for the response or throws. */
  afterAuth?(principal: Principal): Promise<Record<string, string> | undefined>;
  /** afterAuth when it can be decided from memory and allows the request; undefined otherwise. */
  afterAuthNow?(principal: Principal): Record<string, string> | undefined;
  /** Distinguishes the plugin instance of one platform from another's (tests run several). */
  seed: string;
}

const MAX_CACHED = 50_000;
const API_KEY_TTL_MS = 30_000;

export interface AuthGuard {
  plugin: ReturnType<typeof buildPlugin>;
  authenticate(header: string | null): Promise<Principal>;
  /**
   * The fast path's admission, from memory only: when the token is cached and valid, `answer`
   * gets the principal; if it can answer, afterAuth (the rate limit) is spent and its headers
   * returned with the answer. Undefined for anything else (unknown, expired or refused tokens,
   * no answer in memory, a rate-limit decision that needs the store): the ordinary path then
   * answers, and nothing was spent.
   */
  admitNow<T>(header: string | null, answer: (principal: Principal) => T | undefined): { value: T; headers: Record<string, string> } | undefined;
  /** Drops cached API keys (after a key is deleted anywhere). */
  forgetApiKeys(): void;
}

export function bearerToken(header: string | null): string | null {
  if (!header) return null;
  // The usual form first: "Bearer <token>", one space, no other whitespace (a plain scan).
  if (header.startsWith("Bearer ") && !/\s/.test(header.slice(7)) && header.length > 7) return header.slice(7);
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

/** The one answer to an expired access token, whether or not this gateway saw it before. */
const tokenExpired = () => new AppError(401, "token_expired", "The access token has expired; get a new one with POST /v1/auth/refresh.");

export function createAuthGuard(deps: AuthGuardDeps): AuthGuard {
  const jwtCache = new Map<string, { principal: Principal; exp: number }>();
  const keyCache = new Map<string, { principal: Principal | null; until: number }>();

  async function authenticateToken(token: string): Promise<Principal> {
    const now = Date.now();
    if (token.startsWith(API_KEY_PREFIX)) {
      const hit = keyCache.get(token);
      if (hit && hit.until > now) {
        if (!hit.principal) throw unauthorized("The API key is invalid or was deleted.");
        return hit.principal;
      }
      const principal = await deps.resolveApiKey(token);
      if (keyCache.size >= MAX_CACHED) keyCache.clear();
      keyCache.set(token, { principal, until: now + API_KEY_TTL_MS });
      if (!principal) throw unauthorized("The API key is invalid or was deleted.");
      return principal;
    }
    const hit = jwtCache.get(token);
    if (hit) {
      if (hit.exp * 1000 > now) return hit.principal;
      jwtCache.delete(token);
      throw tokenExpired();
    }
    const claims = await deps.jwt.verify(token);
    if (claims === "expired") throw tokenExpired();
    if (!claims) throw unauthorized("The access token is invalid; log in again or refresh it.");
    const principal: Principal = { userId: claims.sub, orgId: claims.org, role: claims.role as MemberRole, via: "jwt", expiresAt: claims.exp };
    if (jwtCache.size >= MAX_CACHED) jwtCache.clear();
    jwtCache.set(token, { principal, exp: claims.exp });
    return principal;
  }

  async function authenticate(header: string | null): Promise<Principal> {
    const token = bearerToken(header);
    if (!token) throw unauthorized();
    if (token.length > 4096) throw unauthorized("The bearer token is too long.");
    return authenticateToken(token);
  }

  function cachedPrincipal(header: string | null): Principal | undefined {
    const token = bearerToken(header);
    if (!token) return undefined;
    const now = Date.now();
    if (token.startsWith(API_KEY_PREFIX)) {
      const hit = keyCache.get(token);
      return hit && hit.until > now && hit.principal ? hit.principal : undefined;
    }
    const hit = jwtCache.get(token);
    return hit && hit.exp * 1000 > now ? hit.principal : undefined;
  }

  function admitNow<T>(header: string | null, answer: (principal: Principal) => T | undefined) {
    const principal = cachedPrincipal(header);
    if (!principal) return undefined;
    const value = answer(principal);
    if (value === undefined) return undefined;
    const headers = deps.afterAuthNow ? deps.afterAuthNow(principal) : deps.afterAuth ? undefined : {};
    return headers ? { value, headers } : undefined;
  }

  return {
    plugin: buildPlugin(deps, authenticate),
    authenticate,
    admitNow,
    forgetApiKeys: () => keyCache.clear(),
  };
}

function buildPlugin(deps: AuthGuardDeps, authenticate: (header: string | null) => Promise<Principal>) {
  return new Elysia({ name: "auth-guard", seed: deps.seed }).macro({
    auth: {
      async resolve({ request, set }) {
        const principal = await authenticate(request.headers.get("authorization"));
        const headers = await deps.afterAuth?.(principal);
        if (headers) Object.assign(set.headers, headers);
        return { principal };
      },
    },
  });
}
