/**
 * The smaller holes of the trust boundary (issue 9, item 8), as an outside member and a
 * stranger would try them: a member cannot delete the owner's API key; a WebSocket opened
 * with an API key is closed when the key is deleted, and one opened with a JWT when the
 * token expires (close code 4001); a stranger hammering an account with wrong passwords from
 * one address locks only that address out, while the owner still logs in from another. On
 * the compiled binary, in-process on the embedded default, and on the real backends.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, uniqueName } from "./support/backends";
import { apiClient, type ApiClient } from "./support/api";
import { ensureBinary, startChild } from "./support/binary";
import { startTestProcess } from "./support/harness";
import { waitFor } from "./support/wait";

/** Access tokens of this suite live this long, so the expiry test need not wait 15 minutes. */
const TOKEN_TTL_SECONDS = 4;

interface Target {
  api: ApiClient;
  stop(): Promise<void>;
}

/** POST JSON from a chosen loopback source address (Linux routes all of 127/8 to lo). */
function postFrom(localAddress: string, url: string, body: unknown): Promise<{ status: number; body: any }> {
  const u = new URL(url);
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, path: u.pathname, method: "POST", localAddress, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function openSocket(url: string, headers?: Record<string, string>) {
  const frames: any[] = [];
  const ws = new WebSocket(url, headers ? ({ headers } as any) : undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
  ws.addEventListener("message", (e) => frames.push(JSON.parse(String(e.data))));
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error("websocket failed to open")));
  });
  await waitFor("the connected frame", () => frames.length > 0);
  return { ws, frames, closed };
}

const within = <T>(ms: number, what: string, p: Promise<T>) =>
  Promise.race([p, Bun.sleep(ms).then(() => Promise.reject(new Error(`${what}: not within ${ms} ms`)))]);

function holesSuite(start: () => Promise<Target>) {
  let t: Target;
  beforeAll(async () => {
    t = await start();
  }, 120_000);
  afterAll(() => t?.stop());

  const login = async (email: string, password: string, orgId?: string) => {
    const res = await t.api.call("POST", "/v1/auth/login", { body: { email, password, ...(orgId ? { organization_id: orgId } : {}) } });
    expect(res.status).toBe(200);
    return res.body.access_token as string;
  };

  /** An owner and a member of the owner's organization, each with a fresh token. */
  async function ownerAndMember() {
    const owner = await t.api.signup();
    const member = await t.api.signup();
    const added = await t.api.call("POST", "/v1/organization/members", { token: await login(owner.email, owner.password), body: { email: member.email } });
    expect(added.status).toBe(201);
    return {
      owner,
      member,
      ownerToken: () => login(owner.email, owner.password),
      memberToken: () => login(member.email, member.password, owner.orgId),
    };
  }

  test("a member deletes only their own API keys; an owner deletes any key of the organization", async () => {
    const { ownerToken, memberToken } = await ownerAndMember();
    const ownersKey = await t.api.call("POST", "/v1/api-keys", { token: await ownerToken(), body: { name: "owner's" } });
    const membersKey = await t.api.call("POST", "/v1/api-keys", { token: await memberToken(), body: { name: "member's" } });
    const membersOther = await t.api.call("POST", "/v1/api-keys", { token: await memberToken(), body: { name: "member's other" } });
    expect([ownersKey.status, membersKey.status, membersOther.status]).toEqual([201, 201, 201]);

    const refused = await t.api.call("DELETE", `/v1/api-keys/${ownersKey.body.id}`, { token: await memberToken() });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("forbidden");
    // ...and not with the member's API key either; the owner's key still works.
    expect((await t.api.call("DELETE", `/v1/api-keys/${ownersKey.body.id}`, { token: membersKey.body.key })).status).toBe(403);
    expect((await t.api.call("GET", "/v1/auth/me", { token: ownersKey.body.key })).status).toBe(200);

    expect((await t.api.call("DELETE", `/v1/api-keys/${membersKey.body.id}`, { token: await memberToken() })).status).toBe(200);
    expect((await t.api.call("DELETE", `/v1/api-keys/${membersOther.body.id}`, { token: await ownerToken() })).status).toBe(200);
    expect((await t.api.call("DELETE", `/v1/api-keys/${ownersKey.body.id}`, { token: await ownerToken() })).status).toBe(200);
    expect((await t.api.call("DELETE", `/v1/api-keys/${ownersKey.body.id}`, { token: await ownerToken() })).status).toBe(404);
  });

  test("a WebSocket opened with an API key is closed (4001) when the key is deleted, and gets no later events", async () => {
    const u = await t.api.signup();
    const key = await t.api.call("POST", "/v1/api-keys", { token: u.token, body: { name: "ws" } });
    const socket = await openSocket(`${t.api.url.replace("http", "ws")}/v1/ws`, { authorization: `Bearer ${key.body.key}` });
    const other = await openSocket(`${t.api.url.replace("http", "ws")}/v1/ws?token=${await login(u.email, u.password)}`);
    try {
      const del = await t.api.call("DELETE", `/v1/api-keys/${key.body.id}`, { token: await login(u.email, u.password) });
      expect(del.status).toBe(200);
      expect(await within(5000, "the key's socket to close", socket.closed)).toEqual({ code: 4001, reason: "API key deleted" });
      // The JWT socket of the same organization stays and still gets events.
      await t.api.call("POST", "/v1/agents", { token: await login(u.email, u.password), body: { name: "after", model: "m" } });
      await waitFor("the event on the JWT socket", () => other.frames.some((f) => f.type === "event"));
      expect(socket.frames.filter((f) => f.type === "event")).toEqual([]);
      // And the deleted key cannot open a new one.
      await expect(openSocket(`${t.api.url.replace("http", "ws")}/v1/ws?token=${key.body.key}`)).rejects.toThrow();
    } finally {
      socket.ws.close();
      other.ws.close();
    }
  });

  test("a WebSocket opened with a JWT is closed (4001) when the token expires", async () => {
    const u = await t.api.signup();
    const token = await login(u.email, u.password);
    const opened = Date.now();
    const socket = await openSocket(`${t.api.url.replace("http", "ws")}/v1/ws?token=${token}`);
    const closed = await within((TOKEN_TTL_SECONDS + 3) * 1000, "the expired socket to close", socket.closed);
    expect(closed).toEqual({ code: 4001, reason: "access token expired" });
    expect(Date.now() - opened).toBeGreaterThanOrEqual((TOKEN_TTL_SECONDS - 1) * 1000);
  }, 20_000);

  test("failed logins lock out only the address they come from; successes never count", async () => {
    const owner = await t.api.signup();
    const loginUrl = `${t.api.url}/v1/auth/login`;
    const statuses: number[] = [];
    for (let i = 0; i < 13; i++) statuses.push((await postFrom("127.0.0.2", loginUrl, { email: owner.email, password: `guess-${i}` })).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual([429, 429, 429]);
    const locked = await postFrom("127.0.0.2", loginUrl, { email: owner.email, password: owner.password });
    expect(locked.status).toBe(429);
    expect(locked.body.error.code).toBe("rate_limited");

    // The owner, from another address, is not locked out, and may log in again and again.
    for (let i = 0; i < 12; i++) expect((await postFrom("127.0.0.3", loginUrl, { email: owner.email, password: owner.password })).status).toBe(200);
    // Another account from the stranger's address is not affected either.
    const other = await t.api.signup();
    expect((await postFrom("127.0.0.2", loginUrl, { email: other.email, password: other.password })).status).toBe(200);
  }, 60_000);
}

beforeAll(() => {
  ensureBinary();
}, 180_000);

describe("account holes on the compiled binary", () =>
  holesSuite(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "agentos-holes-"));
    const child = await startChild(["serve", `--data-dir=${dataDir}`], { env: { ACCESS_TOKEN_TTL: String(TOKEN_TTL_SECONDS) } });
    return {
      api: apiClient(child.url),
      async stop() {
        await child.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }));

describe("account holes in-process, embedded default", () =>
  holesSuite(async () => {
    const p = await startTestProcess({ config: { accessTokenTtlSeconds: TOKEN_TTL_SECONDS } });
    return { api: apiClient(p.url), stop: () => p.stop() };
  }));

await describeReal("account holes in-process", () =>
  holesSuite(async () => {
    // The WebSocket is served by a gateway-only process: the key deletion reaches it over NATS.
    const database = await createTestDatabase();
    const shared = { real: true, databaseUrl: database.url, namespace: uniqueName("t"), keep: true };
    const p = await startTestProcess({ ...shared, config: { accessTokenTtlSeconds: TOKEN_TTL_SECONDS } });
    const edge = await startTestProcess({ ...shared, config: { roles: ["gateway"], accessTokenTtlSeconds: TOKEN_TTL_SECONDS } });
    return {
      api: apiClient(edge.url),
      async stop() {
        await edge.stop();
        await p.stop();
        await database.drop();
        await dropNatsNamespace(shared.namespace).catch(() => {});
        await dropRedisNamespace(shared.namespace).catch(() => {});
      },
    };
  }));
