/**
 * The auth role's service: accounts, sessions (access JWT + rotating refresh tokens), API
 * keys and organization members. Free of HTTP: every method takes and returns JSON, so it is
 * called directly in-process or over NATS request/reply.
 */
import { withIdempotency, type IdempotencyScope, type IdempotentResult } from "../../platform/idempotency";
import { and, asc, eq, isNull, sql } from "drizzle-orm";
import { apiKeys, memberships, organizations, refreshTokens, users } from "../../../schema";
import { isUniqueViolation, type Db } from "../../platform/db";
import { pageQuery, toPage, iso, type PageOf, type PageRequest } from "../../platform/db/pagination";
import { AppError, conflict, forbidden, notFound, unauthorized } from "../../platform/errors";
import { API_KEY_PREFIX, type MemberRole, type Principal } from "../../platform/principal";
import { isId, newId } from "../../platform/ids";
import { randomSecret, sha256Hex } from "../../platform/hash";
import type { Jwt } from "../../platform/jwt";
import type { ApiKeyOut, CreateApiKeyInput, CreatedApiKeyOut, LoginInput, MeOut, MemberOut, SessionOut, SignupInput, UpdateApiKeyInput } from "./model";

type UserRow = typeof users.$inferSelect;
type OrgRow = typeof organizations.$inferSelect;

const ARGON2 = { algorithm: "argon2id", memoryCost: 19456, timeCost: 2 } as const; // OWASP's minimum

const userOut = (u: UserRow) => ({ id: u.id, email: u.email, name: u.name, created_at: u.createdAt.toISOString() });
const orgOut = (o: OrgRow) => ({ id: o.id, name: o.name, plan: o.plan, created_at: o.createdAt.toISOString() });
const apiKeyOut = (k: typeof apiKeys.$inferSelect): ApiKeyOut => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  created_at: k.createdAt.toISOString(),
  last_used_at: iso(k.lastUsedAt),
  expires_at: iso(k.expiresAt),
  daily_spend_cap_cents: k.dailySpendCapCents ?? null,
});

export class AuthService {
  /** A real hash to verify against when the email is unknown, so timing does not reveal accounts. */
  private dummyHash = Bun.password.hash("not-a-real-password", ARGON2);

  constructor(
    private db: Db,
    private jwt: Jwt,
    private refreshTtlSeconds: number,
    /** Announces a deleted key: gateways drop cached keys and close its WebSockets. */
    private onApiKeyDeleted: (keyId: string) => void,
    /** --idempotency-stale (see withIdempotency). */
    private idempotencyStaleMs: number,
  ) {}

  async signup(input: SignupInput): Promise<SessionOut> {
    const passwordHash = await Bun.password.hash(input.password, ARGON2);
    const userId = newId("usr");
    const orgId = newId("org");
    const label = input.name ?? input.email.split("@")[0];
    try {
      const { user, org } = await this.db.transaction(async (tx) => {
        const [user] = await tx.insert(users).values({ id: userId, email: input.email, name: input.name ?? null, passwordHash }).returning();
        const [org] = await tx.insert(organizations).values({ id: orgId, name: `${label}'s organization` }).returning();
        await tx.insert(memberships).values({ orgId, userId, role: "owner" });
        return { user, org };
      });
      return { user: userOut(user), organization: orgOut(org), ...(await this.issueSession(user.id, org.id, "owner")) };
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict("email_taken", "An account with this email already exists; log in instead.");
      throw err;
    }
  }

  async login(input: LoginInput): Promise<SessionOut> {
    const [user] = await this.db.select().from(users).where(eq(sql`lower(${users.email})`, input.email.toLowerCase())).limit(1);
    const ok = await Bun.password.verify(input.password, user?.passwordHash ?? (await this.dummyHash));
    if (!user || !ok) throw new AppError(401, "invalid_credentials", "The email or password is wrong.");
    const membership = await this.membershipOf(user.id, input.organization_id);
    if (!membership) throw new AppError(403, "no_organization", "This account is not a member of that organization.");
    const [org] = await this.db.select().from(organizations).where(eq(organizations.id, membership.orgId));
    return { user: userOut(user), organization: orgOut(org), ...(await this.issueSession(user.id, org.id, membership.role as MemberRole)) };
  }

  private async membershipOf(userId: string, orgId?: string) {
    const where = orgId ? and(eq(memberships.userId, userId), eq(memberships.orgId, orgId)) : eq(memberships.userId, userId);
    const [m] = await this.db.select().from(memberships).where(where).orderBy(asc(memberships.createdAt)).limit(1);
    return m;
  }

  private async issueSession(userId: string, orgId: string, role: MemberRole, familyId = newId("rtk")) {
    const refresh = `rt_${randomSecret()}`;
    await this.db.insert(refreshTokens).values({
      id: newId("rtk"),
      familyId,
      userId,
      orgId,
      tokenHash: sha256Hex(refresh),
      expiresAt: new Date(Date.now() + this.refreshTtlSeconds * 1000),
    });
    const access = await this.jwt.sign({ sub: userId, org: orgId, role });
    return { access_token: access.token, refresh_token: refresh, token_type: "Bearer" as const, expires_in: access.expiresIn };
  }

  /**
   * Rotation with reuse detection: a refresh token is spent by its first use; presenting a
   * spent token again means it leaked, so its whole family (every session descended from the
   * same login) is revoked.
   */
  async refresh(input: { refresh_token: string }): Promise<SessionOut> {
    const hash = sha256Hex(input.refresh_token);
    type Outcome = { error: "invalid" | "revoked" | "reused" | "expired" } | { row: typeof refreshTokens.$inferSelect; error?: undefined };
    const outcome: Outcome = await this.db.transaction(async (tx): Promise<Outcome> => {
      const [row] = await tx.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, hash)).for("update");
      if (!row) return { error: "invalid" as const };
      if (row.revokedAt) return { error: "revoked" as const };
      if (row.spentAt) {
        await tx.update(refreshTokens).set({ revokedAt: new Date() }).where(and(eq(refreshTokens.familyId, row.familyId), isNull(refreshTokens.revokedAt)));
        return { error: "reused" as const };
      }
      if (row.expiresAt.getTime() <= Date.now()) return { error: "expired" as const };
      await tx.update(refreshTokens).set({ spentAt: new Date() }).where(eq(refreshTokens.id, row.id));
      return { row };
    });
    if (outcome.error) {
      const messages = {
        invalid: ["invalid_refresh_token", "The refresh token is not valid; log in again."],
        revoked: ["refresh_token_revoked", "This session was revoked; log in again."],
        reused: ["refresh_token_reused", "This refresh token was already used, so the session was revoked for safety; log in again."],
        expired: ["refresh_token_expired", "The refresh token has expired; log in again."],
      } as const;
      const [code, message] = messages[outcome.error];
      throw new AppError(401, code, message);
    }
    const { row } = outcome as { row: typeof refreshTokens.$inferSelect };
    const membership = await this.membershipOf(row.userId, row.orgId);
    if (!membership) throw new AppError(401, "refresh_token_revoked", "You are no longer a member of this organization.");
    const [user] = await this.db.select().from(users).where(eq(users.id, row.userId));
    const [org] = await this.db.select().from(organizations).where(eq(organizations.id, row.orgId));
    return { user: userOut(user), organization: orgOut(org), ...(await this.issueSession(row.userId, row.orgId, membership.role as MemberRole, row.familyId)) };
  }

  async logout(principal: Principal, input: { refresh_token?: string }): Promise<{ revoked: number }> {
    const now = new Date();
    let where = and(eq(refreshTokens.userId, principal.userId), eq(refreshTokens.orgId, principal.orgId), isNull(refreshTokens.revokedAt));
    if (input.refresh_token) {
      const [row] = await this.db.select().from(refreshTokens).where(and(eq(refreshTokens.tokenHash, sha256Hex(input.refresh_token)), eq(refreshTokens.userId, principal.userId)));
      if (!row) return { revoked: 0 };
      where = and(where, eq(refreshTokens.familyId, row.familyId));
    }
    const revoked = await this.db.update(refreshTokens).set({ revokedAt: now }).where(where).returning({ id: refreshTokens.id });
    return { revoked: revoked.length };
  }

  async me(principal: Principal): Promise<MeOut> {
    const [user] = await this.db.select().from(users).where(eq(users.id, principal.userId));
    const [org] = await this.db.select().from(organizations).where(eq(organizations.id, principal.orgId));
    if (!user || !org) throw unauthorized("The account or organization no longer exists.");
    return { user: userOut(user), organization: orgOut(org), role: principal.role, auth: principal.via };
  }

  async createApiKey(principal: Principal, input: CreateApiKeyInput, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<CreatedApiKeyOut>> {
    return withIdempotency(this.db, { orgId: principal.orgId, scope: idempotency, body: input, staleClaimMs: this.idempotencyStaleMs }, async () => ({
      status: 201,
      body: await this.issueApiKey(principal, input),
    }));
  }

  private async issueApiKey(principal: Principal, input: CreateApiKeyInput): Promise<CreatedApiKeyOut> {
    const key = `${API_KEY_PREFIX}${randomSecret()}`;
    const [row] = await this.db
      .insert(apiKeys)
      .values({
        id: newId("key"),
        orgId: principal.orgId,
        userId: principal.userId,
        name: input.name,
        prefix: key.slice(0, API_KEY_PREFIX.length + 6),
        keyHash: sha256Hex(key),
        expiresAt: input.expires_in_days ? new Date(Date.now() + input.expires_in_days * 86_400_000) : null,
        dailySpendCapCents: input.daily_spend_cap_cents ?? null,
      })
      .returning();
    return { ...apiKeyOut(row), key };
  }

  async listApiKeys(principal: Principal, page: PageRequest): Promise<PageOf<ApiKeyOut>> {
    const q = pageQuery(apiKeys.id, page, eq(apiKeys.orgId, principal.orgId));
    const rows = await this.db.select().from(apiKeys).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q, apiKeyOut);
  }

  /** Owners may change any key of the organization; members only their own (as for deletes). */
  async updateApiKey(principal: Principal, id: string, input: UpdateApiKeyInput): Promise<ApiKeyOut> {
    const set: Partial<typeof apiKeys.$inferInsert> = {};
    if (input.name !== undefined) set.name = input.name;
    if (input.daily_spend_cap_cents !== undefined) set.dailySpendCapCents = input.daily_spend_cap_cents;
    const updated = await this.db.update(apiKeys).set(set).where(this.mayChangeKey(principal, id)).returning();
    if (!updated.length) await this.refuseKeyChange(principal, id, "change");
    return apiKeyOut(updated[0]);
  }

  /** The daily spend cap (cents) of one of the organization's keys, or null: read by workers for runs created with the key. */
  async apiKeySpendCap(orgId: string, keyId: string): Promise<number | null> {
    const [row] = await this.db.select({ cap: apiKeys.dailySpendCapCents }).from(apiKeys).where(and(eq(apiKeys.id, keyId), eq(apiKeys.orgId, orgId)));
    return row?.cap ?? null;
  }

  private mayChangeKey(principal: Principal, id: string) {
    if (!isId("key", id)) throw notFound("API key", id);
    const inOrg = and(eq(apiKeys.id, id), eq(apiKeys.orgId, principal.orgId));
    return principal.role === "owner" ? inOrg : and(inOrg, eq(apiKeys.userId, principal.userId));
  }

  /** Nothing matched mayChangeKey: 403 when the key exists in the organization, else 404. */
  private async refuseKeyChange(principal: Principal, id: string, verb: string): Promise<never> {
    const [exists] = await this.db.select({ id: apiKeys.id }).from(apiKeys).where(and(eq(apiKeys.id, id), eq(apiKeys.orgId, principal.orgId)));
    if (exists) throw forbidden(`Only an owner of the organization can ${verb} another member's API key.`);
    throw notFound("API key", id);
  }

  /** Owners may delete any key of the organization; members only their own. */
  async deleteApiKey(principal: Principal, id: string): Promise<{ id: string; deleted: true }> {
    const deleted = await this.db.delete(apiKeys).where(this.mayChangeKey(principal, id)).returning({ id: apiKeys.id });
    if (!deleted.length) await this.refuseKeyChange(principal, id, "delete");
    this.onApiKeyDeleted(id);
    return { id, deleted: true };
  }

  /**
   * The principal an API key stands for, or null; called by gateways on a cache miss with the
   * key's SHA-256 (the raw key never leaves the gateway that received it).
   */
  async resolveApiKey(keyHash: string): Promise<Principal | null> {
    const [row] = await this.db
      .select({ key: apiKeys, role: memberships.role })
      .from(apiKeys)
      .innerJoin(memberships, and(eq(memberships.orgId, apiKeys.orgId), eq(memberships.userId, apiKeys.userId)))
      .where(eq(apiKeys.keyHash, keyHash));
    if (!row) return null;
    if (row.key.expiresAt && row.key.expiresAt.getTime() <= Date.now()) return null;
    await this.db.update(apiKeys).set({ lastUsedAt: new Date() }).where(eq(apiKeys.id, row.key.id));
    return {
      userId: row.key.userId,
      orgId: row.key.orgId,
      role: row.role as MemberRole,
      via: "api_key",
      keyId: row.key.id,
      ...(row.key.expiresAt ? { expiresAt: Math.floor(row.key.expiresAt.getTime() / 1000) } : {}),
    };
  }

  async listMembers(principal: Principal, page: PageRequest): Promise<PageOf<MemberOut>> {
    const q = pageQuery(users.id, page, eq(memberships.orgId, principal.orgId));
    const rows = await this.db
      .select({ id: users.id, email: users.email, name: users.name, role: memberships.role, createdAt: memberships.createdAt })
      .from(memberships)
      .innerJoin(users, eq(users.id, memberships.userId))
      .where(q.where)
      .orderBy(q.orderBy)
      .limit(q.limit);
    return toPage(rows, q, (r) => ({ user_id: r.id, email: r.email, name: r.name, role: r.role, created_at: r.createdAt.toISOString() }));
  }

  async addMember(principal: Principal, input: { email: string; role?: MemberRole }, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<MemberOut>> {
    return withIdempotency(this.db, { orgId: principal.orgId, scope: idempotency, body: input, staleClaimMs: this.idempotencyStaleMs }, async () => ({
      status: 201,
      body: await this.insertMember(principal, input),
    }));
  }

  private async insertMember(principal: Principal, input: { email: string; role?: MemberRole }): Promise<MemberOut> {
    if (principal.role !== "owner") throw forbidden("Only an owner of the organization can add members.");
    const [user] = await this.db.select().from(users).where(eq(sql`lower(${users.email})`, input.email.toLowerCase()));
    if (!user) throw notFound("user with that email");
    const role = input.role ?? "member";
    try {
      const [m] = await this.db.insert(memberships).values({ orgId: principal.orgId, userId: user.id, role }).returning();
      return { user_id: user.id, email: user.email, name: user.name, role, created_at: m.createdAt.toISOString() };
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict("already_member", "That user is already a member of this organization.");
      throw err;
    }
  }
}
