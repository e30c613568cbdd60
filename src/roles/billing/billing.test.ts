/**
 * Billing end to end: the usage ledger (exactly once per event), quotas (402, alerts once),
 * plans (owner-only changes), usage queries, invoices in integer cents, and the gateway's
 * per-organization rate limit — on the embedded default and on real PostgreSQL/Redis/NATS,
 * where the limit is shown to hold across two gateway processes sharing Redis.
 */
import { waitFor } from "../../../test/support/wait";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, eq } from "drizzle-orm";
import { outboxEvents, usageRecords } from "../../../schema";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, uniqueName } from "../../../test/support/backends";
import { startTestProcess, type TestProcess, type TestUser } from "../../../test/support/harness";
import { openDatabase } from "../../platform/db";
import { AppError } from "../../platform/errors";
import { newId } from "../../platform/ids";
import { silentLogger } from "../../platform/logging";
import { EVENTS_STREAM, emitEvent, type DomainEvent } from "../../platform/outbox";
import { UsageLedger, usageOf } from "./ledger";
import { costMicroCents, DEFAULT_PRICES, loadBillingSettings, toCents } from "./plans";

const settings = loadBillingSettings({});

function domainEvent(orgId: string, type: string, payload: Record<string, unknown>, at = new Date()): DomainEvent {
  return { id: newId("evt"), org_id: orgId, type, created_at: at.toISOString(), payload };
}

const modelCall = (orgId: string, model: string, prompt: number, completion: number, at?: Date) =>
  domainEvent(orgId, "step.completed", { kind: "model_call", model, run_id: "run_x", agent_id: "agt_x", step_id: newId("stp"), usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } }, at);

/** Waits until the current rate-limit window has > 8 s left, so a test's burst stays in one window. */
async function awayFromWindowEdge() {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 8_000) await Bun.sleep(left + 100);
}

describe("usage extraction", () => {
  test("run.created counts a run; step.completed carries tokens; tool calls are keyed by step", () => {
    expect(usageOf(domainEvent("org_a", "run.created", { run_id: "run_1", agent_id: "agt_1", model: "m" }))).toMatchObject({ kind: "run", runId: "run_1", agentId: "agt_1" });
    const e = modelCall("org_a", "gpt-4o", 10, 5);
    expect(usageOf(e)).toMatchObject({ kind: "model_call", model: "gpt-4o", promptTokens: 10, completionTokens: 5, totalTokens: 15, key: `model_call:${e.payload.step_id}` });
    const viaStep = usageOf(domainEvent("org_a", "step.completed", { kind: "tool_call", step_id: "stp_1" }));
    const viaTool = usageOf(domainEvent("org_a", "tool_call.completed", { step_id: "stp_1", name: "x" }));
    expect(viaStep?.key).toBe("tool_call:stp_1");
    expect(viaTool?.key).toBe("tool_call:stp_1");
    expect(usageOf(domainEvent("org_a", "agent.created", {}))).toBeNull();
  });

  test("money is integer: tokens × cents-per-million micro-cents, rounded half up once", () => {
    const price = DEFAULT_PRICES["gpt-4o-mini"];
    expect(costMicroCents(price, 1_000_000, 1_000_000)).toBe(75_000_000);
    expect(toCents(75_000_000)).toBe(75);
    expect(toCents(499_999)).toBe(0);
    expect(toCents(500_000)).toBe(1);
  });

  test("plan overrides come from the environment and bad ones stop the process with one line", () => {
    expect(loadBillingSettings({ planLimitsJson: '{"free":{"requests_per_minute":5}}' }).plans.free).toEqual({ runs_per_month: 100, tokens_per_month: 1_000_000, requests_per_minute: 5 });
    expect(() => loadBillingSettings({ planLimitsJson: '{"gold":{}}' })).toThrow("unknown plan 'gold'");
    expect(() => loadBillingSettings({ modelPricesJson: '{"m":{"input_cents_per_million":1.5}}' })).toThrow("AGENTOS_MODEL_PRICES.m");
  });
});

function billingSuite(start: () => Promise<TestProcess>) {
  let t: TestProcess;
  let ledger: UsageLedger;
  beforeAll(async () => {
    t = await start();
    ledger = new UsageLedger(t.process.platform.db, settings, silentLogger);
  });
  afterAll(() => t?.stop());

  const db = () => t.process.platform.db;
  const usageRows = async (orgId: string) => db().select().from(usageRecords).where(eq(usageRecords.orgId, orgId));
  const outboxOf = async (orgId: string, type: string) => db().select().from(outboxEvents).where(and(eq(outboxEvents.orgId, orgId), eq(outboxEvents.type, type)));

  test("usage is recorded exactly once when the same event is delivered twice", async () => {
    const u = await t.signup();
    const bus = t.process.platform.bus;
    // Through the real path: outbox → EVENTS stream → billing's durable consumer.
    const eventId = await emitEvent(db(), { orgId: u.orgId, type: "step.completed", payload: { kind: "model_call", model: "gpt-4o", run_id: "run_1", agent_id: "agt_1", usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 } } });
    const first = await waitFor("the ledger row", async () => (await usageRows(u.orgId)).find((r) => r.eventId === eventId));
    // The same event again, under another broker msgId so the broker cannot dedupe it: only the ledger's unique index can.
    const event: DomainEvent = { id: eventId, org_id: u.orgId, type: "step.completed", created_at: new Date().toISOString(), payload: { kind: "model_call", model: "gpt-4o", run_id: "run_1", agent_id: "agt_1", usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 } } };
    await bus.publishDurable(EVENTS_STREAM.name, bus.subject("events.step.completed"), event, { msgId: `${eventId}-again` });
    const marker = await emitEvent(db(), { orgId: u.orgId, type: "run.created", payload: { run_id: "run_1", agent_id: "agt_1" } });
    await waitFor("the later event", async () => (await usageRows(u.orgId)).find((r) => r.eventId === marker));
    // And concurrently, straight into the ledger.
    const results = await Promise.all([ledger.record(event), ledger.record(event), ledger.record(event)]);
    expect(results.filter(Boolean).length).toBe(0);
    const rows = (await usageRows(u.orgId)).filter((r) => r.eventId === eventId);
    expect(rows.length).toBe(1);
    expect(rows[0]).toMatchObject({ id: first.id, kind: "model_call", model: "gpt-4o", promptTokens: 100, completionTokens: 20, totalTokens: 120 });
    const usage = await t.request("GET", "/v1/billing/usage?group_by=model", { token: u.token });
    expect(usage.status).toBe(200);
    expect(usage.body.totals).toMatchObject({ runs: 1, model_calls: 1, total_tokens: 120 });
  });

  test("a fresh event is recorded once even when recorded concurrently", async () => {
    const u = await t.signup();
    const e = modelCall(u.orgId, "gpt-4o", 1, 1);
    const results = await Promise.all([ledger.record(e), ledger.record(e), ledger.record(e)]);
    expect(results.filter(Boolean).length).toBe(1);
    expect((await usageRows(u.orgId)).length).toBe(1);
  });

  test("a run past the quota gets 402 quota_exceeded with the limit and the reset time; alerts fire once at 80 % and 100 %", async () => {
    const u = await t.signup();
    const agent = await t.request("POST", "/v1/agents", { token: u.token, body: { name: "quota", model: "gpt-4o-mini" } });
    expect(agent.status).toBe(201);
    const thread = await t.request("POST", "/v1/threads", { token: u.token, body: {} });
    expect(thread.status).toBe(201);
    for (let i = 0; i < 99; i++) await ledger.record(domainEvent(u.orgId, "run.created", { run_id: `run_${i}` }));
    await t.process.platform.clients.billing.assertRunAllowed(u.orgId); // the 100th is still allowed
    expect((await outboxOf(u.orgId, "billing.quota_warning")).length).toBe(1);
    expect((await outboxOf(u.orgId, "billing.quota_exceeded")).length).toBe(0);
    await ledger.record(domainEvent(u.orgId, "run.created", { run_id: "run_100" }));
    await ledger.record(domainEvent(u.orgId, "run.created", { run_id: "run_101" }));
    const exceeded = await outboxOf(u.orgId, "billing.quota_exceeded");
    expect(exceeded.length).toBe(1);
    expect(exceeded[0].payload).toMatchObject({ metric: "runs", threshold: 100, limit: 100, used: 100, plan: "free" });
    expect((await outboxOf(u.orgId, "billing.quota_warning")).length).toBe(1);

    const refused = await t.request("POST", `/v1/threads/${thread.body.id}/runs`, { token: u.token, body: { agent_id: agent.body.id } });
    expect(refused.status).toBe(402);
    expect(refused.body.error.code).toBe("quota_exceeded");
    const nextMonth = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 1)).toISOString();
    expect(refused.body.error.details).toMatchObject({ metric: "runs", limit: 100, used: 101, resets_at: nextMonth });
    const direct = await t.process.platform.clients.billing.assertRunAllowed(u.orgId).catch((e) => e);
    expect(direct).toBeInstanceOf(AppError);
    expect(direct).toMatchObject({ status: 402, code: "quota_exceeded" });

    // The inbox (notify role) gets the alerts once they are relayed.
    const inbox = await waitFor("quota notifications", async () => {
      const r = await t.request("GET", "/v1/notifications", { token: u.token });
      return r.body.data?.length === 2 ? r.body : null;
    });
    expect(inbox.data.map((n: { type: string }) => n.type).sort()).toEqual(["billing.quota_exceeded", "billing.quota_warning"]);

    // An upgrade lifts the quota at once.
    expect((await t.request("PUT", "/v1/billing/plan", { token: u.token, body: { plan: "pro" } })).status).toBe(200);
    const allowed = await t.request("POST", `/v1/threads/${thread.body.id}/runs`, { token: u.token, body: { agent_id: agent.body.id } });
    expect(allowed.status).toBe(201);
  });

  test("a token quota exceeded refuses runs too", async () => {
    const u = await t.signup();
    await ledger.record(modelCall(u.orgId, "gpt-4o", 600_000, 400_000));
    const err = await t.process.platform.clients.billing.assertRunAllowed(u.orgId).catch((e) => e);
    expect(err).toMatchObject({ status: 402, code: "quota_exceeded", details: { metric: "tokens", limit: 1_000_000, used: 1_000_000 } });
  });

  test("GET /v1/billing/plan shows limits and usage; PUT is for owners only", async () => {
    const owner = await t.signup();
    const plan = await t.request("GET", "/v1/billing/plan", { token: owner.token });
    expect(plan.status).toBe(200);
    expect(plan.body).toMatchObject({ plan: "free", limits: { runs_per_month: 100, requests_per_minute: 60 }, usage: { runs: 0, tokens: 0 } });
    expect(plan.headers.get("x-ratelimit-limit")).toBe("60");

    const member = await t.signup();
    expect((await t.request("POST", "/v1/organization/members", { token: owner.token, body: { email: member.email, role: "member" } })).status).toBe(201);
    const login = await t.request("POST", "/v1/auth/login", { body: { email: member.email, password: member.password, organization_id: owner.orgId } });
    expect(login.status).toBe(200);
    const denied = await t.request("PUT", "/v1/billing/plan", { token: login.body.access_token, body: { plan: "enterprise" } });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe("forbidden");
    expect((await t.request("PUT", "/v1/billing/plan", { token: owner.token, body: { plan: "gold" } })).status).toBe(400);

    const upgraded = await t.request("PUT", "/v1/billing/plan", { token: owner.token, body: { plan: "business" } });
    expect(upgraded.status).toBe(200);
    expect(upgraded.body).toMatchObject({ plan: "business", limits: { requests_per_minute: 3000 } });
    // The gateway drops its cached limits on the plan-change announcement.
    await waitFor("the new rate limit", async () => (await t.request("GET", "/v1/billing/plan", { token: owner.token })).headers.get("x-ratelimit-limit") === "3000");
  });

  test("usage groups by day, model and agent; bad ranges are 400", async () => {
    const u = await t.signup();
    const day1 = new Date(Date.UTC(2025, 0, 10, 12));
    const day2 = new Date(Date.UTC(2025, 0, 11, 9));
    await ledger.record(modelCall(u.orgId, "gpt-4o", 10, 5, day1));
    await ledger.record({ ...modelCall(u.orgId, "gpt-4o-mini", 20, 10, day2), payload: { kind: "model_call", model: "gpt-4o-mini", agent_id: "agt_2", usage: { prompt_tokens: 20, completion_tokens: 10 } } });
    await ledger.record(domainEvent(u.orgId, "run.created", { run_id: "run_1", agent_id: "agt_x" }, day1));
    const q = (s: string) => t.request("GET", `/v1/billing/usage?from=2025-01-01&to=2025-02-01&${s}`, { token: u.token });
    const byDay = await q("group_by=day");
    expect(byDay.status).toBe(200);
    // Cost at the default prices: gpt-4o 250/1,000 and gpt-4o-mini 15/60 cents per 1M tokens.
    const gpt4o = (10 * 250 + 5 * 1_000) / 1e6;
    const mini = (20 * 15 + 10 * 60) / 1e6;
    expect(byDay.body.data).toEqual([
      { key: "2025-01-10", runs: 1, model_calls: 1, tool_calls: 0, prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, cost_cents: expect.closeTo(gpt4o, 9) },
      { key: "2025-01-11", runs: 0, model_calls: 1, tool_calls: 0, prompt_tokens: 20, completion_tokens: 10, total_tokens: 30, cost_cents: expect.closeTo(mini, 9) },
    ]);
    expect(byDay.body.totals).toMatchObject({ runs: 1, model_calls: 2, total_tokens: 45, cost_cents: expect.closeTo(gpt4o + mini, 9) });
    const byModel = await q("group_by=model");
    expect(byModel.body.data.filter((r: { key: string | null }) => r.key).map((r: { key: string }) => r.key)).toEqual(["gpt-4o", "gpt-4o-mini"]);
    const byAgent = await q("group_by=agent");
    expect(byAgent.body.data.map((r: { key: string; total_tokens: number }) => [r.key, r.total_tokens])).toEqual([["agt_2", 30], ["agt_x", 15]]);
    expect(byAgent.body.data.map((r: { cost_cents: number }) => r.cost_cents)).toEqual([expect.closeTo(mini, 9), expect.closeTo(gpt4o, 9)]);
    expect((await t.request("GET", "/v1/billing/usage?from=yesterday", { token: u.token })).status).toBe(400);
    expect((await t.request("GET", "/v1/billing/usage?from=2025-02-01&to=2025-01-01", { token: u.token })).status).toBe(400);
    expect((await t.request("GET", "/v1/billing/usage?group_by=week", { token: u.token })).status).toBe(400);
    // Another organization sees none of it.
    const other = await t.signup();
    expect((await t.request("GET", "/v1/billing/usage?from=2025-01-01&to=2025-02-01", { token: other.token })).body.totals.total_tokens).toBe(0);
  });

  test("invoices: one statement per month, line items per model, totals in integer cents, paginated", async () => {
    const u = await t.signup();
    const jan = new Date(Date.UTC(2025, 0, 15));
    await ledger.record(modelCall(u.orgId, "gpt-4o-mini", 1_000_000, 1_000_000, jan)); // 15 + 60 = 75 ¢
    await ledger.record(modelCall(u.orgId, "gpt-4o", 1_000, 500, jan)); // 0.25 + 0.5 = 0.75 ¢ → 1 ¢
    await ledger.record(modelCall(u.orgId, "some-local-model", 2_000_000, 0, jan)); // default 100 ¢/M → 200 ¢
    await ledger.record(domainEvent(u.orgId, "tool_call.completed", { step_id: "stp_a", run_id: "run_1" }, jan));
    await ledger.record(modelCall(u.orgId, "gpt-4o", 4_000_000, 0, new Date(Date.UTC(2025, 2, 3)))); // 1000 ¢
    const page1 = await t.request("GET", "/v1/billing/invoices?limit=1", { token: u.token });
    expect(page1.status).toBe(200);
    expect(page1.body.has_more).toBe(true);
    const [january] = page1.body.data;
    expect(january).toMatchObject({ id: "inv_2025-01", period: "2025-01", status: "closed", currency: "usd", total_cents: 276, subtotal_cents: 276 });
    expect(january.line_items.map((l: { model: string | null; amount_cents: number }) => [l.model, l.amount_cents])).toEqual([
      ["gpt-4o", 1], ["gpt-4o-mini", 75], ["some-local-model", 200], [null, 0],
    ]);
    expect(january.line_items[3]).toMatchObject({ calls: 1, description: "Tool calls (included)" });
    const page2 = await t.request("GET", `/v1/billing/invoices?limit=5&after=${page1.body.next_cursor}`, { token: u.token });
    expect(page2.body.data[0]).toMatchObject({ period: "2025-03", total_cents: 1000 });
    expect(page2.body.data.at(-1).status).toBe("open"); // the running month
    const desc = await t.request("GET", "/v1/billing/invoices?order=desc", { token: u.token });
    expect(desc.body.data[0].status).toBe("open");
    expect((await t.request("GET", "/v1/billing/invoices?after=2025-13", { token: u.token })).status).toBe(400);
  });

  test("every authenticated response carries X-RateLimit-*; past the plan's limit: 429 with Retry-After", async () => {
    const u = await t.signup();
    await awayFromWindowEdge();
    let last: Awaited<ReturnType<TestProcess["request"]>> | undefined;
    for (let i = 0; i < 60; i++) {
      last = await t.request("GET", i % 2 ? "/v1/billing/plan" : `/v1/webhooks/whk_${"0".repeat(26)}/deliveries`, { token: u.token });
      expect(last.status).toBe(i % 2 ? 200 : 404);
      expect(last.headers.get("x-ratelimit-limit")).toBe("60");
      expect(last.headers.get("x-ratelimit-remaining")).toBe(String(59 - i));
    }
    expect(Number(last!.headers.get("x-ratelimit-reset"))).toBeGreaterThan(Date.now() / 1000);
    const limited = await t.request("GET", "/v1/billing/plan", { token: u.token });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe("rate_limited");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get("x-ratelimit-remaining")).toBe("0");
    // Another organization has its own budget.
    const other = await t.signup();
    expect((await t.request("GET", "/v1/billing/plan", { token: other.token })).status).toBe(200);
  }, 30_000);
}

describe("billing on the embedded default", () => {
  billingSuite(() => startTestProcess());

  test("events relayed just before a crash are still metered and notified after the restart (in-process stream replay)", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "agentos-replay-"));
    const namespace = uniqueName("t");
    let t: TestProcess | undefined;
    try {
      t = await startTestProcess({ dataDir, namespace, keep: true });
      const u = await t.signup();
      await t.stop();
      // As if the relay had published these and the process died before the consumers ran.
      const database = await openDatabase({ dataDir, log: silentLogger });
      const runEvent = newId("evt");
      await database.db.insert(outboxEvents).values([
        { id: runEvent, orgId: u.orgId, type: "run.created", payload: { run_id: "run_z" }, publishedAt: new Date() },
        { id: newId("evt"), orgId: u.orgId, type: "run.completed", payload: { run_id: "run_z" }, publishedAt: new Date() },
      ]);
      await database.close();
      t = await startTestProcess({ dataDir, namespace, keep: true });
      const rows = await t.process.platform.db.select().from(usageRecords).where(eq(usageRecords.orgId, u.orgId));
      expect(rows.map((r) => [r.eventId, r.kind])).toEqual([[runEvent, "run"]]);
      const inbox = await waitFor("the inbox entry", async () => {
        const r = await t!.request("GET", "/v1/notifications", { token: u.token });
        return r.body.data?.length ? r.body.data : null;
      });
      expect(inbox.map((n: { type: string }) => n.type)).toEqual(["run.completed"]);
    } finally {
      await t?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
await describeReal("billing", () => billingSuite(() => startTestProcess({ real: true })));

await describeReal("rate limit across two gateway processes sharing Redis", () => {
  let full: TestProcess;
  let edge: TestProcess;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  const namespace = uniqueName("t");
  beforeAll(async () => {
    database = await createTestDatabase();
    full = await startTestProcess({ real: true, databaseUrl: database.url, namespace, keep: true });
    // A second, gateway-only process: auth and billing answer it over NATS; the counter is in Redis.
    edge = await startTestProcess({ real: true, databaseUrl: database.url, namespace, keep: true, config: { roles: ["gateway"] } });
  });
  afterAll(async () => {
    await edge?.stop();
    await full?.stop();
    await database?.drop();
    await dropNatsNamespace(namespace).catch(() => {});
    await dropRedisNamespace(namespace).catch(() => {});
  });

  test("60 requests split over both gateways use up the free plan's minute; the 61st gets 429 on either", async () => {
    const u: TestUser = await full.signup();
    await awayFromWindowEdge();
    for (let i = 0; i < 60; i++) {
      const gw = i % 2 ? edge : full;
      const r = await gw.request("GET", "/v1/billing/plan", { token: u.token });
      expect(r.status).toBe(200);
      expect(r.headers.get("x-ratelimit-remaining")).toBe(String(59 - i));
    }
    for (const gw of [full, edge]) {
      const r = await gw.request("GET", "/v1/auth/me", { token: u.token });
      expect(r.status).toBe(429);
      expect(r.headers.get("retry-after")).toBeTruthy();
      expect(r.headers.get("x-ratelimit-limit")).toBe("60");
    }
  }, 30_000);
});
