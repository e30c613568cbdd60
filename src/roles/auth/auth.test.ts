/**
 * The auth role end to end over HTTP: the same suite on the embedded default (PGlite,
 * in-process cache and bus) and on the real PostgreSQL + Redis + NATS.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { describeReal } from "../../../test/support/backends";
import { startTestProcess, type TestProcess } from "../../../test/support/harness";

function jwtSecretOf(t: TestProcess) {
  return t.config.jwtSecret ?? readFileSync(join(t.config.dataDir, "jwt-secret"), "utf8").trim();
}

function authSuite(start: () => Promise<TestProcess>) {
  let t: TestProcess;
  beforeAll(async () => {
    t = await start();
  });
  afterAll(() => t?.stop());

  test("signup creates the user, an organization they own, and a session", async () => {
    const res = await t.request("POST", "/v1/auth/signup", { body: { email: "Ada@Example.com", password: "analytical-engine", name: "Ada" } });
    expect(res.status).toBe(201);
    expect(res.body.user).toMatchObject({ email: "Ada@Example.com", name: "Ada" });
    expect(res.body.user.id).toMatch(/^usr_[0-9A-Z]{26}$/);
    expect(res.body.organization.id).toMatch(/^org_/);
    expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: 900 });
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const me = await t.request("GET", "/v1/auth/me", { token: res.body.access_token });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ role: "owner", auth: "jwt", organization: { id: res.body.organization.id } });
  });

  test("an email is taken whatever its case", async () => {
    const res = await t.request("POST", "/v1/auth/signup", { body: { email: "ada@example.COM", password: "another-password" } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("email_taken");
  });

  test("login checks the password and does not reveal which part was wrong", async () => {
    const ok = await t.request("POST", "/v1/auth/login", { body: { email: "ada@example.com", password: "analytical-engine" } });
    expect(ok.status).toBe(200);
    expect(ok.body.access_token).toBeTruthy();
    const wrong = await t.request("POST", "/v1/auth/login", { body: { email: "ada@example.com", password: "difference-engine" } });
    const unknown = await t.request("POST", "/v1/auth/login", { body: { email: "nobody@example.com", password: "difference-engine" } });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body.error.code).toBe("invalid_credentials");
    expect(unknown.body.error.message).toBe(wrong.body.error.message);
  });

  test("forged, unsigned, expired and exp-less tokens are refused", async () => {
    const u = await t.signup();
    const secret = new TextEncoder().encode(jwtSecretOf(t));
    const claims = { org: u.orgId, role: "owner" };
    const now = Math.floor(Date.now() / 1000);
    const noExp = await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(u.userId).setIssuedAt().sign(secret);
    const expired = await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(u.userId).setIssuedAt(now - 100).setExpirationTime(now - 10).sign(secret);
    const otherKey = await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(u.userId).setIssuedAt().setExpirationTime("5m").sign(new TextEncoder().encode("x".repeat(40)));
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    const payload = Buffer.from(JSON.stringify({ ...claims, sub: u.userId, iat: now, exp: now + 300 })).toString("base64url");
    const unsigned = `${header}.${payload}.`;
    const hs512 = await new SignJWT(claims).setProtectedHeader({ alg: "HS512" }).setSubject(u.userId).setIssuedAt().setExpirationTime("5m").sign(secret);
    for (const token of [noExp, expired, otherKey, unsigned, hs512, "garbage", "a.b.c"]) {
      const res = await t.request("GET", "/v1/auth/me", { token });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBeString();
    }
    expect((await t.request("GET", "/v1/auth/me")).status).toBe(401);
    expect((await t.request("GET", "/v1/auth/me", { headers: { authorization: "Basic abc" } })).status).toBe(401);
  });

  test("an expired access token answers token_expired every time; a forged expired one is unauthorized", async () => {
    const u = await t.signup();
    const now = Math.floor(Date.now() / 1000);
    const sign = (secret: string) =>
      new SignJWT({ org: u.orgId, role: "owner" }).setProtectedHeader({ alg: "HS256" }).setSubject(u.userId).setIssuedAt(now - 100).setExpirationTime(now - 10).sign(new TextEncoder().encode(secret));
    const expired = await sign(jwtSecretOf(t));
    for (let i = 0; i < 3; i++) {
      const res = await t.request("GET", "/v1/auth/me", { token: expired });
      expect([res.status, res.body.error.code]).toEqual([401, "token_expired"]);
    }
    const forged = await t.request("GET", "/v1/auth/me", { token: await sign("y".repeat(40)) });
    expect([forged.status, forged.body.error.code]).toEqual([401, "unauthorized"]);
  });

  test("refresh rotates the token; reusing a spent one revokes the whole family", async () => {
    const u = await t.signup();
    const first = await t.request("POST", "/v1/auth/refresh", { body: { refresh_token: u.refresh } });
    expect(first.status).toBe(200);
    expect(first.body.refresh_token).not.toBe(u.refresh);
    const second = await t.request("POST", "/v1/auth/refresh", { body: { refresh_token: first.body.refresh_token } });
    expect(second.status).toBe(200);
    // The first token was spent: presenting it again means it leaked.
    const reuse = await t.request("POST", "/v1/auth/refresh", { body: { refresh_token: u.refresh } });
    expect(reuse.status).toBe(401);
    expect(reuse.body.error.code).toBe("refresh_token_reused");
    // The family is revoked: the newest token of the chain no longer works either.
    const after = await t.request("POST", "/v1/auth/refresh", { body: { refresh_token: second.body.refresh_token } });
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe("refresh_token_revoked");
    // Another login (another family) is unaffected.
    const login = await t.request("POST", "/v1/auth/login", { body: { email: u.email, password: u.password } });
    expect((await t.request("POST", "/v1/auth/refresh", { body: { refresh_token: login.body.refresh_token } })).status).toBe(200);
  });

  test("concurrent refreshes of one token: exactly one wins", async () => {
    const u = await t.signup();
    const results = await Promise.all([1, 2, 3, 4].map(() => t.request("POST", "/v1/auth/refresh", { body: { refresh_token: u.refresh } })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 401)).toHaveLength(3);
  });

  test("logout revokes the session's refresh token", async () => {
    const u = await t.signup();
    const out = await t.request("POST", "/v1/auth/logout", { token: u.token, body: { refresh_token: u.refresh } });
    expect(out.status).toBe(200);
    expect(out.body.revoked).toBe(1);
    const res = await t.request("POST", "/v1/auth/refresh", { body: { refresh_token: u.refresh } });
    expect(res.status).toBe(401);
  });

  test("API keys: shown once, stored hashed, usable as Bearer, dead once deleted", async () => {
    const u = await t.signup();
    const created = await t.request("POST", "/v1/api-keys", { token: u.token, body: { name: "ci" } });
    expect(created.status).toBe(201);
    expect(created.body.key).toStartWith("aos_");
    expect(created.body.id).toMatch(/^key_/);
    const list = await t.request("GET", "/v1/api-keys", { token: u.token });
    expect(list.body.data).toHaveLength(1);
    expect(list.body.data[0].key).toBeUndefined();
    expect(JSON.stringify(list.body)).not.toContain(created.body.key);
    const me = await t.request("GET", "/v1/auth/me", { token: created.body.key });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ auth: "api_key", user: { id: u.userId } });
    expect((await t.request("DELETE", `/v1/api-keys/${created.body.id}`, { token: u.token })).status).toBe(200);
    await Bun.sleep(50); // the invalidation is a bus message
    expect((await t.request("GET", "/v1/auth/me", { token: created.body.key })).status).toBe(401);
    expect((await t.request("GET", "/v1/auth/me", { token: "aos_not-a-real-key" })).status).toBe(401);
  });

  test("another organization's API key answers 404, and so does a malformed id", async () => {
    const a = await t.signup();
    const b = await t.signup();
    const key = await t.request("POST", "/v1/api-keys", { token: a.token, body: { name: "a" } });
    expect((await t.request("DELETE", `/v1/api-keys/${key.body.id}`, { token: b.token })).status).toBe(404);
    expect((await t.request("DELETE", "/v1/api-keys/key_nope", { token: b.token })).status).toBe(404);
    expect((await t.request("DELETE", "/v1/api-keys/agt_01M8A0BYFKBB51SH2R2XA45JY0", { token: a.token })).status).toBe(404);
    const listB = await t.request("GET", "/v1/api-keys", { token: b.token });
    expect(listB.body.data).toHaveLength(0);
  });

  test("Idempotency-Key: same body replays the first result, another body conflicts", async () => {
    const u = await t.signup();
    const headers = { "idempotency-key": "create-key-1" };
    const first = await t.request("POST", "/v1/api-keys", { token: u.token, body: { name: "one" }, headers });
    const again = await t.request("POST", "/v1/api-keys", { token: u.token, body: { name: "one" }, headers });
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    const other = await t.request("POST", "/v1/api-keys", { token: u.token, body: { name: "two" }, headers });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("idempotency_key_reused");
    expect((await t.request("GET", "/v1/api-keys", { token: u.token })).body.data).toHaveLength(1);
  });

  test("organization members: owners add existing users by email; members cannot", async () => {
    const owner = await t.signup();
    const member = await t.signup();
    const add = await t.request("POST", "/v1/organization/members", { token: owner.token, body: { email: member.email.toUpperCase() } });
    expect(add.status).toBe(201);
    expect(add.body).toMatchObject({ user_id: member.userId, role: "member" });
    expect((await t.request("POST", "/v1/organization/members", { token: owner.token, body: { email: member.email } })).status).toBe(409);
    expect((await t.request("POST", "/v1/organization/members", { token: owner.token, body: { email: "ghost@example.com" } })).status).toBe(404);
    const list = await t.request("GET", "/v1/organization/members", { token: owner.token });
    expect(list.body.data.map((m: any) => m.user_id).sort()).toEqual([owner.userId, member.userId].sort());
    // The member logs into the owner's organization and cannot add people.
    const login = await t.request("POST", "/v1/auth/login", { body: { email: member.email, password: member.password, organization_id: owner.orgId } });
    expect(login.status).toBe(200);
    const me = await t.request("GET", "/v1/auth/me", { token: login.body.access_token });
    expect(me.body).toMatchObject({ role: "member", organization: { id: owner.orgId } });
    const denied = await t.request("POST", "/v1/organization/members", { token: login.body.access_token, body: { email: owner.email } });
    expect(denied.status).toBe(403);
  });

  test("pagination of lists: limit, after, has_more, order", async () => {
    const u = await t.signup();
    for (let i = 0; i < 5; i++) await t.request("POST", "/v1/api-keys", { token: u.token, body: { name: `k${i}` } });
    const p1 = await t.request("GET", "/v1/api-keys?limit=2", { token: u.token });
    expect(p1.body.data.map((k: any) => k.name)).toEqual(["k0", "k1"]);
    expect(p1.body.has_more).toBe(true);
    const p2 = await t.request("GET", `/v1/api-keys?limit=2&after=${p1.body.next_cursor}`, { token: u.token });
    expect(p2.body.data.map((k: any) => k.name)).toEqual(["k2", "k3"]);
    const p3 = await t.request("GET", `/v1/api-keys?limit=2&after=${p2.body.next_cursor}`, { token: u.token });
    expect(p3.body).toMatchObject({ has_more: false, next_cursor: null });
    const desc = await t.request("GET", "/v1/api-keys?limit=1&order=desc", { token: u.token });
    expect(desc.body.data[0].name).toBe("k4");
    expect((await t.request("GET", "/v1/api-keys?limit=0", { token: u.token })).status).toBe(400);
    expect((await t.request("GET", "/v1/api-keys?limit=abc", { token: u.token })).status).toBe(400);
  });
}

describe("auth on the embedded default", () => authSuite(() => startTestProcess()));
await describeReal("auth", () => authSuite(() => startTestProcess({ real: true })));
