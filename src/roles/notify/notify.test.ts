/**
 * Notifications end to end: signed webhooks retried with backoff until acknowledged (and
 * resumed after a restart), the delivery log, the inbox, and the live WebSocket — on the
 * embedded default and on real PostgreSQL + Redis + NATS (there with the WebSocket served by
 * a second, gateway-only process, so events cross the bus).
 */
import { parseConfig, type Config } from "../../platform/config";
import { waitFor } from "../../../test/support/wait";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryBus } from "../../platform/bus";
import { silentLogger } from "../../platform/logging";
import { Registry } from "../../platform/metrics";
import { emitEvent, type DomainEvent } from "../../platform/outbox";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, uniqueName } from "../../../test/support/backends";
import { startTestProcess, type StartOptions, type TestProcess, type TestUser } from "../../../test/support/harness";
import { backoffMs, dispatcherSettings } from "./dispatcher";
import { webhookWants } from "./inbox";
import { EventIntake } from "./service";
import { LiveHub, SLOW_CLIENT_CLOSE_CODE, type LiveSocket } from "./live";
import { signPayload, verifySignature } from "./signature";

/** Fast retries for the suite (the notify role reads them from its process's config). */
const FAST: Partial<Config> = { webhookRetryBaseMs: 100, webhookPollMs: 100, webhookMaxAttempts: 3 };
/** A first process whose retry is due only after it is gone. */
const SLOW_RETRY: Partial<Config> = { ...FAST, webhookRetryBaseMs: 2000 };

/** A webhook receiver on loopback: verifies every signature, answers from a script of statuses. */
function startReceiver(statuses: number[] = [200]) {
  const received: { body: string; event: DomainEvent; eventId: string | null; signature: string | null; status: number }[] = [];
  let secret = "";
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const body = await req.text();
      const status = statuses[Math.min(received.length, statuses.length - 1)];
      received.push({ body, event: JSON.parse(body), eventId: req.headers.get("x-agentos-event-id"), signature: req.headers.get("x-agentos-signature"), status });
      if (!verifySignature(req.headers.get("x-agentos-signature"), body, secret)) return new Response("bad signature", { status: 400 });
      return new Response(status === 200 ? "ok" : "try again", { status });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/hook`,
    received,
    setSecret: (s: string) => (secret = s),
    stop: () => server.stop(true),
  };
}

function wsUrl(t: TestProcess, query = "") {
  return `${t.url.replace("http", "ws")}/v1/ws${query}`;
}

/** Opens a WebSocket and collects its JSON frames. */
async function openSocket(url: string, headers?: Record<string, string>) {
  const frames: any[] = [];
  const ws = new WebSocket(url, headers ? ({ headers } as any) : undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
  ws.addEventListener("message", (e) => frames.push(JSON.parse(String(e.data))));
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error("websocket failed to open")));
  });
  return { ws, frames, closed };
}

describe("webhook signatures and helpers", () => {
  test("t=<unix>,v1=<hex hmac-sha256 of 't.body'>; tampering or age fails verification", () => {
    const now = Date.now();
    const t = Math.floor(now / 1000);
    const header = signPayload("whsec_x", '{"a":1}', t);
    expect(header).toBe(`t=${t},v1=${new Bun.CryptoHasher("sha256", "whsec_x").update(`${t}.{"a":1}`).digest("hex")}`);
    expect(verifySignature(header, '{"a":1}', "whsec_x", 300, now)).toBe(true);
    expect(verifySignature(header, '{"a":2}', "whsec_x", 300, now)).toBe(false);
    expect(verifySignature(header, '{"a":1}', "whsec_y", 300, now)).toBe(false);
    expect(verifySignature(header, '{"a":1}', "whsec_x", 300, now + 301_000)).toBe(false);
    expect(verifySignature("garbage", '{"a":1}', "whsec_x")).toBe(false);
  });

  test("backoff doubles per attempt with jitter, capped", () => {
    const s = { ...dispatcherSettings(parseConfig([], {})), retryBaseMs: 1000, retryMaxMs: 10_000 };
    expect(backoffMs(s, 1, 0)).toBe(500);
    expect(backoffMs(s, 1, 1)).toBe(1000);
    expect(backoffMs(s, 3, 1)).toBe(4000);
    expect(backoffMs(s, 10, 1)).toBe(10_000);
    expect(backoffMs(s, 10, 0)).toBe(5000);
  });

  test("event-type filters: exact, prefix.* and *", () => {
    expect(webhookWants([], "run.completed")).toBe(true);
    expect(webhookWants(["*"], "x.y")).toBe(true);
    expect(webhookWants(["run.*"], "run.failed")).toBe(true);
    expect(webhookWants(["run.*"], "runner.x")).toBe(false);
    expect(webhookWants(["run.completed"], "run.failed")).toBe(false);
  });
});

describe("live hub: a slow client is disconnected, not buffered without bound", () => {
  function fakeSocket(orgId: string, buffered = 0, sendResult = 10) {
    const sent: string[] = [];
    const socket = {
      data: { orgId, userId: "usr_x" },
      buffered,
      closedWith: null as null | number,
      send(frame: string) {
        sent.push(frame);
        return sendResult;
      },
      close(code: number) {
        socket.closedWith = code;
      },
      getBufferedAmount: () => socket.buffered,
    };
    return { socket, sent };
  }

  test("events reach the organization's sockets only; a socket over the buffer bound is closed and dropped", async () => {
    const bus = new MemoryBus("tns");
    const gauge = new Registry().gauge("g", "g");
    const hub = new LiveHub(bus, gauge, silentLogger, 1024);
    const fast = fakeSocket("org_a");
    const slow = fakeSocket("org_a");
    const other = fakeSocket("org_b");
    for (const s of [fast, slow, other]) hub.add(s.socket as unknown as LiveSocket);
    expect(hub.connections()).toBe(3);
    slow.socket.buffered = 2000; // the client stopped reading
    bus.publish("tns.live.org_a", { id: "evt_1", org_id: "org_a", type: "run.completed", created_at: "", payload: {} });
    await Bun.sleep(5);
    expect(fast.sent.map((f) => JSON.parse(f).type)).toEqual(["connected", "event"]);
    expect(other.sent.length).toBe(1); // only its "connected" frame
    expect(slow.socket.closedWith).toBe(SLOW_CLIENT_CLOSE_CODE);
    expect(hub.connections()).toBe(2);
    expect(gauge.render()).toEqual(["g 2"]);
  });

  test("a frame the server drops (send → 0) closes the socket too", () => {
    const hub = new LiveHub(new MemoryBus("tns"), new Registry().gauge("g", "g"), silentLogger);
    const s = fakeSocket("org_a", 0, 0);
    hub.add(s.socket as unknown as LiveSocket);
    expect(s.socket.closedWith).toBe(SLOW_CLIENT_CLOSE_CODE);
    expect(hub.connections()).toBe(0);
  });
});

function notifySuite(start: (opts?: StartOptions) => Promise<TestProcess>, opts: { wsGateway?: () => Promise<TestProcess> } = {}) {
  let t: TestProcess;
  let edge: TestProcess;
  beforeAll(async () => {
    t = await start();
    edge = opts.wsGateway ? await opts.wsGateway.call(null) : t;
  });
  afterAll(async () => {
    if (edge && edge !== t) await edge.stop();
    await t?.stop();
  });
  const db = () => t.process.platform.db;

  async function createHook(u: TestUser, url: string, event_types?: string[]) {
    const r = await t.request("POST", "/v1/webhooks", { token: u.token, body: { url, ...(event_types ? { event_types } : {}) } });
    expect(r.status).toBe(201);
    return r.body as { id: string; secret: string };
  }
  const deliveries = async (u: TestUser, hookId: string) => (await t.request("GET", `/v1/webhooks/${hookId}/deliveries`, { token: u.token })).body;

  test("webhooks: create (secret shown once, idempotent), list, validation, delete, tenant isolation", async () => {
    const u = await t.signup();
    const created = await t.request("POST", "/v1/webhooks", { token: u.token, body: { url: "https://example.com/hook", event_types: ["run.*"], description: "ops" }, headers: { "idempotency-key": "k1" } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ url: "https://example.com/hook", event_types: ["run.*"], description: "ops", active: true });
    expect(created.body.id).toMatch(/^whk_/);
    expect(created.body.secret).toMatch(/^whsec_[0-9a-f]{64}$/);
    const replay = await t.request("POST", "/v1/webhooks", { token: u.token, body: { url: "https://example.com/hook", event_types: ["run.*"], description: "ops" }, headers: { "idempotency-key": "k1" } });
    expect(replay.status).toBe(201);
    expect(replay.body.id).toBe(created.body.id);
    const list = await t.request("GET", "/v1/webhooks", { token: u.token });
    expect(list.body.data.length).toBe(1);
    expect(list.body.data[0].secret).toBeUndefined();
    for (const body of [{ url: "ftp://example.com" }, { url: "not a url" }, { url: "https://x.io", event_types: ["Run Completed"] }, {}]) {
      const bad = await t.request("POST", "/v1/webhooks", { token: u.token, body });
      expect(bad.status).toBe(400);
    }
    const other = await t.signup();
    expect((await t.request("GET", `/v1/webhooks/${created.body.id}/deliveries`, { token: other.token })).status).toBe(404);
    expect((await t.request("DELETE", `/v1/webhooks/${created.body.id}`, { token: other.token })).status).toBe(404);
    expect((await t.request("DELETE", "/v1/webhooks/whk_bad", { token: u.token })).status).toBe(404);
    expect((await t.request("DELETE", `/v1/webhooks/${created.body.id}`, { token: u.token })).status).toBe(200);
    expect((await t.request("GET", `/v1/webhooks/${created.body.id}/deliveries`, { token: u.token })).status).toBe(404);
  });

  test("intakes of one organization arriving together share one webhook read; a webhook gets only events after its creation", async () => {
    const u = await t.signup();
    const hook = await createHook(u, "https://example.com/intake", ["run.completed"]);
    const created = new Date((await t.request("GET", "/v1/webhooks", { token: u.token })).body.data[0].created_at).getTime();
    let reads = 0;
    const counted = new Proxy(db(), { get: (target, prop, receiver) => (prop === "select" && reads++, Reflect.get(target, prop, receiver)) });
    const intake = new EventIntake(counted);
    const event = (n: number, at: number): DomainEvent => ({ id: `evt_intake_${u.orgId}_${n}`, org_id: u.orgId, type: "run.completed", created_at: new Date(at).toISOString(), payload: { run_id: `run_${n}` } });
    // 20 at once, the first 5 of them from before the webhook existed.
    const results = await Promise.all(Array.from({ length: 20 }, (_, n) => intake.intake(event(n, n < 5 ? created - 60_000 : created + 1000 + n))));
    expect(results.map((r) => r.deliveries)).toEqual(Array.from({ length: 20 }, (_, n) => (n < 5 ? 0 : 1)));
    expect(reads).toBe(1);
    // The next turn reads again: a webhook registered meanwhile is seen.
    const second = await createHook(u, "https://example.com/intake-2", ["run.*"]);
    expect((await intake.intake(event(20, Date.now() + 1000))).deliveries).toBe(2);
    expect(reads).toBe(2);
    const page = (await deliveries(u, second.id)).data;
    expect(page.map((d: { event_id: string }) => d.event_id)).toEqual([`evt_intake_${u.orgId}_20`]);
    expect((await deliveries(u, hook.id)).data).toHaveLength(16);
  });

  test("a receiver on loopback verifies signatures, fails the first two attempts and gets the third", async () => {
    const receiver = startReceiver([500, 503, 200]);
    try {
      const u = await t.signup();
      const hook = await createHook(u, receiver.url, ["run.completed"]);
      receiver.setSecret(hook.secret);
      await emitEvent(db(), { orgId: u.orgId, type: "agent.created", payload: { agent_id: "agt_1" } }); // filtered out
      const eventId = await emitEvent(db(), { orgId: u.orgId, type: "run.completed", payload: { run_id: "run_1", agent_id: "agt_1" } });
      const page = await waitFor("the delivery to succeed", async () => {
        const d = await deliveries(u, hook.id);
        return d.data?.[0]?.status === "succeeded" ? d : null;
      });
      expect(page.data.length).toBe(1);
      const [delivery] = page.data;
      expect(delivery).toMatchObject({ event_id: eventId, event_type: "run.completed", attempts: 3, next_attempt_at: null });
      expect(delivery.delivered_at).toBeTruthy();
      expect(delivery.attempt_log.map((a: { status_code: number }) => a.status_code)).toEqual([500, 503, 200]);
      for (const a of delivery.attempt_log) expect(a.latency_ms).toBeGreaterThanOrEqual(0);
      expect(delivery.attempt_log[0].error).toBe("receiver answered 500");
      expect(receiver.received.length).toBe(3);
      for (const r of receiver.received) {
        expect(verifySignature(r.signature, r.body, hook.secret)).toBe(true);
        expect(r.eventId).toBe(eventId);
        expect(r.event).toMatchObject({ id: eventId, org_id: u.orgId, type: "run.completed", payload: { run_id: "run_1" } });
      }
    } finally {
      receiver.stop();
    }
  });

  test("retries are bounded: a receiver that never acknowledges ends as failed", async () => {
    const receiver = startReceiver([500]);
    try {
      const u = await t.signup();
      const hook = await createHook(u, receiver.url);
      receiver.setSecret(hook.secret);
      await emitEvent(db(), { orgId: u.orgId, type: "run.failed", payload: { run_id: "run_2" } });
      // Three attempts 100-400 ms apart; a loaded CI machine gets 30 s, and the state it saw if it never ends.
      let seen: unknown = null;
      const page = await waitFor("the delivery to fail", async () => {
        const d = await deliveries(u, hook.id);
        seen = d.data;
        return d.data?.[0]?.status === "failed" ? d : null;
      }, 30_000).catch((err) => {
        throw new Error(`${(err as Error).message}; deliveries: ${JSON.stringify(seen)}; receiver got ${receiver.received.length}`);
      });
      expect(page.data[0].attempts).toBe(3);
      await Bun.sleep(400);
      expect(receiver.received.length).toBe(3);
    } finally {
      receiver.stop();
    }
  });

  test("the inbox: entries for finished and failed runs and quota alerts, unread first, cursor-paginated, read once", async () => {
    const u = await t.signup();
    const ids: string[] = [];
    for (const [type, payload] of [
      ["run.completed", { run_id: "run_a" }],
      ["agent.created", { agent_id: "agt_a" }],
      ["run.failed", { run_id: "run_b", error: { code: "max_steps_exceeded", message: "The run hit max_steps." } }],
      ["billing.quota_warning", { metric: "runs", threshold: 80, limit: 100, used: 80, plan: "free" }],
    ] as const) ids.push(await emitEvent(db(), { orgId: u.orgId, type, payload }));
    const all = await waitFor("three inbox entries", async () => {
      const r = await t.request("GET", "/v1/notifications", { token: u.token });
      return r.body.data?.length === 3 ? r.body.data : null;
    });
    expect(all.map((n: { type: string }) => n.type)).toEqual(["billing.quota_warning", "run.failed", "run.completed"]);
    expect(all[1]).toMatchObject({ title: "Run failed", body: "Run run_b failed: The run hit max_steps.", read: false, read_at: null, data: { run_id: "run_b", event_id: ids[2] } });

    const read = await t.request("POST", `/v1/notifications/${all[0].id}/read`, { token: u.token });
    expect(read.status).toBe(200);
    expect(read.body.read).toBe(true);
    const again = await t.request("POST", `/v1/notifications/${all[0].id}/read`, { token: u.token });
    expect(again.body.read_at).toBe(read.body.read_at);
    const other = await t.signup();
    expect((await t.request("POST", `/v1/notifications/${all[1].id}/read`, { token: other.token })).status).toBe(404);
    expect((await t.request("POST", "/v1/notifications/nope/read", { token: u.token })).status).toBe(404);
    expect((await t.request("GET", "/v1/notifications", { token: other.token })).body.data).toEqual([]);

    // Unread first (newest first inside each group), one entry per page.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r = await t.request("GET", `/v1/notifications?limit=1${cursor ? `&after=${cursor}` : ""}`, { token: u.token });
      expect(r.status).toBe(200);
      seen.push(...r.body.data.map((n: { type: string; read: boolean }) => `${n.type}:${n.read}`));
      cursor = r.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(["run.failed:false", "run.completed:false", "billing.quota_warning:true"]);
    expect((await t.request("GET", "/v1/notifications?unread_only=true", { token: u.token })).body.data.length).toBe(2);
    expect((await t.request("GET", "/v1/notifications?after=bogus", { token: u.token })).status).toBe(400);
  });

  test("a WebSocket client receives its organization's events and nothing of another's", async () => {
    const a = await t.signup();
    const b = await t.signup();
    const key = await t.request("POST", "/v1/api-keys", { token: b.token, body: { name: "ws" } });
    expect(key.status).toBe(201);
    const clientA = await openSocket(wsUrl(edge, `?token=${a.token}`));
    const clientB = await openSocket(wsUrl(edge), { authorization: `Bearer ${key.body.key}` });
    try {
      await waitFor("connected frames", () => clientA.frames.length > 0 && clientB.frames.length > 0);
      expect(clientA.frames[0]).toEqual({ type: "connected", organization_id: a.orgId });
      expect(clientB.frames[0]).toEqual({ type: "connected", organization_id: b.orgId });
      const metrics = await (await fetch(`${edge.url}/metrics`)).text();
      expect(metrics).toContain("agentos_websocket_connections 2");

      const forA = await emitEvent(db(), { orgId: a.orgId, type: "run.completed", payload: { run_id: "run_a" } });
      const forB = await emitEvent(db(), { orgId: b.orgId, type: "run.completed", payload: { run_id: "run_b" } });
      const gotA = await waitFor("A's event", () => clientA.frames.find((f) => f.type === "event"));
      const gotB = await waitFor("B's event", () => clientB.frames.find((f) => f.type === "event"));
      expect(gotA.event).toMatchObject({ id: forA, org_id: a.orgId, type: "run.completed", payload: { run_id: "run_a" } });
      expect(gotB.event).toMatchObject({ id: forB, org_id: b.orgId });
      await Bun.sleep(300);
      expect(clientA.frames.filter((f) => f.type === "event").map((f) => f.event.id)).toEqual([forA]);
      expect(clientB.frames.filter((f) => f.type === "event").map((f) => f.event.id)).toEqual([forB]);

      clientA.ws.send("ping");
      await waitFor("pong", () => clientA.frames.some((f) => f.type === "pong"));
    } finally {
      clientA.ws.close();
      clientB.ws.close();
    }
    await Promise.all([clientA.closed, clientB.closed]);
    await waitFor("the gauge to drop", async () => (await (await fetch(`${edge.url}/metrics`)).text()).includes("agentos_websocket_connections 0"));
  });

  test("a WebSocket without valid credentials is refused with 401", async () => {
    for (const query of ["", "?token=nope"]) {
      const res = await fetch(`${edge.url}/v1/ws${query}`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    }
  });
}

describe("notify on the embedded default", () => {
  notifySuite(() => startTestProcess({ config: FAST }));

  test("a restart between attempts still delivers (deliveries are persisted)", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "agentos-restart-"));
    const namespace = uniqueName("t");
    const receiver = startReceiver([500, 200]);
    let first: TestProcess | undefined;
    let second: TestProcess | undefined;
    try {
      first = await startTestProcess({ dataDir, namespace, keep: true, config: SLOW_RETRY });
      const u = await first.signup();
      const hook = (await first.request("POST", "/v1/webhooks", { token: u.token, body: { url: receiver.url } })).body;
      receiver.setSecret(hook.secret);
      const eventId = await emitEvent(first.process.platform.db, { orgId: u.orgId, type: "run.completed", payload: { run_id: "run_r" } });
      await waitFor("the first (failed) attempt", () => receiver.received.length === 1);
      await first.stop();
      expect(receiver.received.length).toBe(1);

      second = await startTestProcess({ dataDir, namespace, keep: true, config: FAST });
      await waitFor("the retry after the restart", () => receiver.received.length === 2);
      const d = await waitFor("the delivery to succeed", async () => {
        const r = await second!.request("GET", `/v1/webhooks/${hook.id}/deliveries`, { token: u.token });
        return r.body.data?.[0]?.status === "succeeded" ? r.body.data[0] : null;
      });
      expect(d).toMatchObject({ event_id: eventId, attempts: 2 });
      expect(d.attempt_log.map((a: { status_code: number }) => a.status_code)).toEqual([500, 200]);
      expect(receiver.received.every((r) => r.eventId === eventId)).toBe(true);
    } finally {
      receiver.stop();
      await first?.stop();
      await second?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

await describeReal("notify", () => {
  const namespace = uniqueName("t");
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  notifySuite(
    async () => {
      database = await createTestDatabase();
      return startTestProcess({ real: true, databaseUrl: database.url, namespace, keep: true, config: FAST });
    },
    // The WebSocket is served by a second, gateway-only process: events reach it over NATS.
    { wsGateway: () => startTestProcess({ real: true, databaseUrl: database.url, namespace, keep: true, config: { ...FAST, roles: ["gateway"] } }) },
  );
  afterAll(async () => {
    await database?.drop();
    await dropNatsNamespace(namespace).catch(() => {});
    await dropRedisNamespace(namespace).catch(() => {});
  });

  test("a restart between attempts still delivers (another process resumes the pending delivery)", async () => {
    const db = await createTestDatabase();
    const ns = uniqueName("t");
    const receiver = startReceiver([500, 200]);
    let first: TestProcess | undefined;
    let second: TestProcess | undefined;
    try {
      first = await startTestProcess({ real: true, databaseUrl: db.url, namespace: ns, keep: true, config: SLOW_RETRY });
      const u = await first.signup();
      const hook = (await first.request("POST", "/v1/webhooks", { token: u.token, body: { url: receiver.url } })).body;
      receiver.setSecret(hook.secret);
      const eventId = await emitEvent(first.process.platform.db, { orgId: u.orgId, type: "run.completed", payload: { run_id: "run_r" } });
      await waitFor("the first (failed) attempt", () => receiver.received.length === 1);
      await first.stop();
      second = await startTestProcess({ real: true, databaseUrl: db.url, namespace: ns, keep: true, config: FAST });
      await waitFor("the retry after the restart", () => receiver.received.length === 2);
      const d = await waitFor("the delivery to succeed", async () => {
        const r = await second!.request("GET", `/v1/webhooks/${hook.id}/deliveries`, { token: u.token });
        return r.body.data?.[0]?.status === "succeeded" ? r.body.data[0] : null;
      });
      expect(d).toMatchObject({ event_id: eventId, attempts: 2 });
    } finally {
      receiver.stop();
      await first?.stop();
      await second?.stop();
      await db.drop();
      await dropNatsNamespace(ns).catch(() => {});
      await dropRedisNamespace(ns).catch(() => {});
    }
  }, 60_000);
});
