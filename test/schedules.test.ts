/**
 * Schedules on the compiled binary. Embedded: the API's shapes and refusals, a one-shot
 * run_at, a cron fire, misfire policies, and kill -9 in the middle of a batch of fires (after
 * the restart every fire has exactly one run). Split roles on real PostgreSQL/NATS/Redis:
 * three agents replicas fire the same schedules, exactly one run per fire; crash windows
 * reproduced in the database (a claimed fire with an abandoned run claim; a created run whose
 * fire was never recorded) are completed after a restart without a second run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { closePglite, openPglite } from "../src/platform/db/pglite";
import { requestHashOf } from "../src/platform/idempotency";
import { describeReal } from "./support/backends";
import { apiOn, startEmbedded, startSplit, type Deployment } from "./support/deployment";
import { startFakeModel, type FakeModel } from "./support/fake-model";

type Api = Awaited<ReturnType<typeof apiOn>>;
// A short stale-claim takeover, yet longer than one fire takes on a loaded machine (or replicas keep taking each other's claims over).
const FAST = ["--schedule-interval=50", "--idempotency-stale=4000"];

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(everyMs);
  }
}

async function allPages(api: Api, path: string): Promise<any[]> {
  const out: any[] = [];
  let after = "";
  for (;;) {
    const page = await api.ok("GET", `${path}?limit=100${after ? `&after=${after}` : ""}`);
    out.push(...page.data);
    if (!page.has_more) return out;
    after = page.next_cursor;
  }
}

/** Runs per schedule, counted over every thread of the organization (threads of fires carry schedule_id). */
async function runsBySchedule(api: Api): Promise<Map<string, string[]>> {
  const threads = await allPages(api, "/v1/threads");
  const by = new Map<string, string[]>();
  for (const t of threads) {
    const sid = t.metadata?.schedule_id;
    if (!sid) continue;
    const runs = await allPages(api, `/v1/threads/${t.id}/runs`);
    by.set(sid, [...(by.get(sid) ?? []), ...runs.map((r) => r.id)]);
  }
  return by;
}

const soon = (ms: number) => new Date(Date.now() + ms).toISOString();
/** The schedule's newest fire once it has left "firing" (it is listed from the moment it is claimed), else undefined: keep polling. */
async function settledFire(api: Api, scheduleId: string) {
  const fire = (await api.ok("GET", `/v1/schedules/${scheduleId}/fires`)).data[0];
  return fire && fire.status !== "firing" ? fire : undefined;
}

describe("schedules [embedded]", () => {
  let fake: FakeModel;
  let dep: Deployment;
  let api: Api;
  let agentId: string;
  let dataDir: string;

  beforeAll(async () => {
    fake = await startFakeModel();
    fake.setDefault({ content: "scheduled answer", delayMs: 20 });
    dataDir = mkdtempSync(join(tmpdir(), "agentos-sched-"));
    dep = await startEmbedded({ modelUrl: fake.url, flags: FAST, dataDir });
    api = await apiOn(dep.gateways[0].child.url);
    agentId = (await api.agent()).id;
  }, 120_000);
  afterAll(async () => {
    await dep?.stop();
    fake?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 30_000);

  test("refusals name the field: bad cron, unknown time zone, neither/both of cron and run_at, unknown parameter, unknown agent", async () => {
    const create = (body: Record<string, unknown>) => api.call("POST", "/v1/schedules", { agent_id: agentId, input: "x", ...body });
    const bad = await create({ cron: "61 * * * *" });
    expect([bad.status, bad.body.error.code, bad.body.error.details.field]).toEqual([400, "invalid_cron", "cron"]);
    expect(bad.body.error.message).toContain("minute");
    const tz = await create({ cron: "0 9 * * *", timezone: "Mars/Olympus" });
    expect([tz.status, tz.body.error.code, tz.body.error.details.field]).toEqual([400, "invalid_timezone", "timezone"]);
    expect((await create({})).body.error.code).toBe("invalid_schedule");
    expect((await create({ cron: "0 9 * * *", run_at: soon(1000) })).body.error.code).toBe("invalid_schedule");
    expect((await create({ cron: "0 9 * * *", every: "day" })).status).toBe(400);
    expect((await create({ cron: "0 9 * * *", run: { stream: true } })).status).toBe(400);
    expect((await create({ cron: "0 9 * * *", run: { multitask_strategy: "sometimes" } })).status).toBe(400);
    expect((await create({ cron: "0 9 * * *", agent_id: "agt_00000000000000000000000000" })).status).toBe(404);
  });

  test("CRUD: a cron schedule in a time zone shows its next fire; PATCH recomputes it; disabled has none; DELETE removes it", async () => {
    const s = await api.ok("POST", "/v1/schedules", { agent_id: agentId, cron: "0 9 * * mon-fri", timezone: "Europe/Berlin", input: "daily report", run: { metadata: { kind: "report" }, multitask_strategy: "enqueue" } });
    expect(s).toMatchObject({ object: "schedule", cron: "0 9 * * mon-fri", timezone: "Europe/Berlin", enabled: true, misfire_policy: "run_once", run: { metadata: { kind: "report" }, multitask_strategy: "enqueue" }, last_run_id: null });
    const next = new Date(s.next_run_at);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(["07", "08"]).toContain(next.toISOString().slice(11, 13)); // 09:00 Berlin = 07:00 or 08:00 UTC
    expect((await api.ok("GET", `/v1/schedules/${s.id}`)).id).toBe(s.id);
    expect((await allPages(api, "/v1/schedules")).map((x) => x.id)).toContain(s.id);
    const patched = await api.ok("PATCH", `/v1/schedules/${s.id}`, { timezone: "UTC" });
    expect(patched.next_run_at.slice(11, 16)).toBe("09:00");
    expect((await api.ok("PATCH", `/v1/schedules/${s.id}`, { enabled: false })).next_run_at).toBeNull();
    expect((await api.ok("DELETE", `/v1/schedules/${s.id}`)).deleted).toBe(true);
    expect((await api.call("GET", `/v1/schedules/${s.id}`)).status).toBe(404);
  });

  test("one-shot run_at: fires once on a new thread with the schedule's run options; last_run_id, fires and next_run_at show it", async () => {
    const s = await api.ok("POST", "/v1/schedules", { agent_id: agentId, run_at: soon(800), input: "once", run: { metadata: { from: "schedule" } } });
    const fired = await until("the fire", async () => {
      const x = await api.ok("GET", `/v1/schedules/${s.id}`);
      return x.last_run_id && x;
    });
    expect(fired.next_run_at).toBeNull();
    const run = await api.wait(fired.last_run_id);
    expect(run).toMatchObject({ status: "completed", metadata: { from: "schedule" } });
    expect((await api.messages(run.thread_id)).map((m: any) => m.content)).toEqual(["once", "scheduled answer"]);
    const fires = (await api.ok("GET", `/v1/schedules/${s.id}/fires`)).data;
    expect(fires).toHaveLength(1);
    expect(fires[0]).toMatchObject({ status: "fired", run_id: run.id, thread_id: run.thread_id, fire_at: new Date(s.run_at).toISOString() });
    await Bun.sleep(500);
    expect((await runsBySchedule(api)).get(s.id)).toHaveLength(1);
  });

  test("cron on a fixed thread: every minute, each fire one run on that thread (waits for the next minute)", async () => {
    const thread = await api.thread();
    const s = await api.ok("POST", "/v1/schedules", { agent_id: agentId, thread_id: thread.id, cron: "* * * * *", input: "tick", run: { multitask_strategy: "enqueue" } });
    const fired = await until("a cron fire", async () => {
      const x = await api.ok("GET", `/v1/schedules/${s.id}`);
      return x.last_run_id && x;
    }, 75_000);
    expect(new Date(fired.last_fired_at).getUTCSeconds()).toBe(0);
    expect(Date.parse(fired.next_run_at) - Date.parse(fired.last_fired_at)).toBe(60_000);
    expect((await api.wait(fired.last_run_id)).thread_id).toBe(thread.id);
    await api.ok("PATCH", `/v1/schedules/${s.id}`, { enabled: false });
    const runs = await allPages(api, `/v1/threads/${thread.id}/runs`);
    const fires = (await api.ok("GET", `/v1/schedules/${s.id}/fires`)).data;
    expect(runs.map((r) => r.id).sort()).toEqual(fires.map((f: any) => f.run_id).sort());
  }, 90_000);

  test("a refused run (unknown thread after deletion) is recorded as a failed fire and the schedule moves on", async () => {
    const thread = await api.thread();
    const s = await api.ok("POST", "/v1/schedules", { agent_id: agentId, thread_id: thread.id, run_at: soon(600), input: "to nowhere" });
    await api.ok("DELETE", `/v1/threads/${thread.id}`);
    const fire = await until("the failed fire", () => settledFire(api, s.id));
    expect(fire).toMatchObject({ status: "failed", run_id: null, error: { code: "not_found" } });
    expect((await api.ok("GET", `/v1/schedules/${s.id}`)).next_run_at).toBeNull();
  });

  test("kill -9 in the middle of a batch of fires: after the restart every fire has exactly one run (not zero, not two)", async () => {
    // 40 one-shots spread over 1.6 s: the scheduler is busy firing when the process is killed 1.2 s in.
    const N = 40;
    const start = Date.now() + 3000;
    const created = await Promise.all(Array.from({ length: N }, (_, i) => api.ok("POST", "/v1/schedules", { agent_id: agentId, run_at: new Date(start + i * 40).toISOString(), input: `batch ${i}` })));
    const ids = new Set(created.map((s) => s.id));
    await Bun.sleep(start + 1200 - Date.now());
    dep.gateways[0].child.proc.kill("SIGKILL");
    await dep.gateways[0].child.proc.exited;
    // What the dead process left in its data dir: fires done, and fires claimed but not finished.
    const pg = await openPglite(dataDir);
    const left = (await pg.query<{ status: string; n: number }>("select status, count(*)::int as n from schedule_fires where schedule_id = any($1) group by status", [[...ids]])).rows;
    await closePglite(pg);
    const count = (status: string) => left.find((r) => r.status === status)?.n ?? 0;
    const restarted = await dep.restart(dep.gateways[0]);
    api = await apiOn(restarted.child.url, api.token);
    await until("every fire", async () => (await allPages(api, "/v1/schedules")).filter((s) => ids.has(s.id) && s.last_run_id).length === N, 240_000, 1000);
    const by = await runsBySchedule(api);
    for (const id of ids) expect({ id, runs: by.get(id)?.length }).toEqual({ id, runs: 1 });
    const before = count("fired");
    expect(before).toBeLessThan(N);
    console.log(`[schedules] kill -9 with ${before}/${N} fires done and ${count("firing")} claimed mid-fire; after restart ${N}/${N} fired, one run each`);
  }, 300_000);

  test("misfire policy: a fire missed while the process was down runs once (run_once) or is skipped (skip)", async () => {
    const at = soon(2500);
    const once = await api.ok("POST", "/v1/schedules", { agent_id: agentId, run_at: at, input: "catch up" });
    const skip = await api.ok("POST", "/v1/schedules", { agent_id: agentId, run_at: at, input: "skip me", misfire_policy: "skip" });
    await dep.gateways[0].child.stop("SIGKILL");
    await Bun.sleep(3500);
    // The restarted process sees both fires 1 s late: with a 500 ms grace they were missed.
    const restarted = await dep.restart(dep.gateways[0], ["--schedule-misfire-grace=500"]);
    api = await apiOn(restarted.child.url, api.token);
    const caught = await until("the catch-up", () => settledFire(api, once.id));
    const skipped = await until("the skip", () => settledFire(api, skip.id));
    expect(caught.status).toBe("fired");
    expect(skipped).toMatchObject({ status: "skipped", run_id: null });
    expect((await api.ok("GET", `/v1/schedules/${skip.id}`)).next_run_at).toBeNull();
  }, 90_000);
});

await describeReal("schedules on split roles", () => {
  describe("schedules [split roles]", () => {
    let fake: FakeModel;
    let dep: Deployment;
    let api: Api;
    let agentId: string;
    let sql: ReturnType<typeof postgres>;

    beforeAll(async () => {
      fake = await startFakeModel();
      fake.setDefault({ content: "scheduled answer", delayMs: 20 });
      dep = await startSplit({ modelUrl: fake.url, flags: FAST, layout: ["gateway", "agents", "agents", "agents", "worker"] });
      sql = postgres(dep.databaseUrl!, { max: 2, onnotice: () => {} });
      api = await apiOn(dep.gateways[0].child.url);
      agentId = (await api.agent()).id;
    }, 120_000);
    afterAll(async () => {
      await sql?.end();
      await dep?.stop();
      fake?.stop();
    }, 30_000);

    const runsOfFire = async (scheduleId: string) =>
      (await sql`select r.id from runs r join threads t on t.id = r.thread_id where t.metadata->>'schedule_id' = ${scheduleId}`).map((r) => String(r.id));

    test("three agents replicas fire the same schedules: exactly one run per fire (30 one-shots and a cron)", async () => {
      const at = soon(1500);
      const shots = await Promise.all(Array.from({ length: 30 }, (_, i) => api.ok("POST", "/v1/schedules", { agent_id: agentId, run_at: at, input: `shot ${i}` })));
      const cron = await api.ok("POST", "/v1/schedules", { agent_id: agentId, cron: "* * * * *", input: "tick" });
      await until("every one-shot", async () => Number((await sql`select count(*) from schedule_fires where status = 'fired' and schedule_id in ${sql(shots.map((s) => s.id))}`)[0].count) === 30, 180_000, 500);
      for (const s of shots) expect({ s: s.id, runs: (await runsOfFire(s.id)).length }).toEqual({ s: s.id, runs: 1 });
      await until("a cron fire", async () => (await api.ok("GET", `/v1/schedules/${cron.id}`)).last_run_id, 75_000);
      await api.ok("PATCH", `/v1/schedules/${cron.id}`, { enabled: false });
      const fires = await sql`select run_id from schedule_fires where schedule_id = ${cron.id} and status = 'fired'`;
      expect((await runsOfFire(cron.id)).sort()).toEqual(fires.map((f) => String(f.run_id)).sort());
    }, 300_000);

    test("crash windows reproduced in the database: a fire claimed by a process that died mid-create, and a run created but never recorded, each end with exactly one run", async () => {
      // Window 1: fire claimed, thread create claimed under its key, then the process died (nothing committed).
      const a = await api.ok("POST", "/v1/schedules", { agent_id: agentId, run_at: soon(3_600_000), input: "window 1", enabled: false });
      const fireA = new Date(Date.now() - 1000);
      const [{ org_id: org }] = await sql`select org_id from schedules where id = ${a.id}`;
      const threadKey = `schedule:${a.id}:${fireA.toISOString()}:thread`;
      await sql`insert into schedule_fires (schedule_id, fire_at, org_id, status) values (${a.id}, ${fireA}, ${org}, 'firing')`;
      await sql`insert into idempotency_keys (org_id, key, route, request_hash, expires_at)
        values (${org}, ${threadKey}, 'POST /v1/threads', ${requestHashOf("POST /v1/threads", undefined, { metadata: { schedule_id: a.id } })}, now() + interval '1 day')`;
      // Window 2: the run was created and stored under its key, then the process died before recording the fire.
      const b = await api.ok("POST", "/v1/schedules", { agent_id: agentId, run_at: soon(800), input: "window 2" });
      const firedB = await until("b's fire", async () => (await api.ok("GET", `/v1/schedules/${b.id}`)).last_run_id);
      await sql`update schedule_fires set status = 'firing', run_id = null where schedule_id = ${b.id}`;
      await sql`update schedules set next_run_at = run_at, last_run_id = null where id = ${b.id}`;
      const replayedB = await until("b recorded again", async () => (await api.ok("GET", `/v1/schedules/${b.id}`)).last_run_id);
      expect(replayedB).toBe(firedB);
      expect(await runsOfFire(b.id)).toEqual([firedB]);
      // Now let a fire: the abandoned claim is taken over once stale (--idempotency-stale).
      await sql`update schedules set enabled = true, run_at = ${fireA}, next_run_at = ${fireA} where id = ${a.id}`;
      const firedA = await until("a's fire", async () => (await api.ok("GET", `/v1/schedules/${a.id}`)).last_run_id);
      expect(await runsOfFire(a.id)).toEqual([firedA]);
      const fires = await sql`select status, run_id from schedule_fires where schedule_id = ${a.id}`;
      expect(fires.map((f) => [f.status, f.run_id])).toEqual([["fired", firedA]]);
    }, 120_000);

    test("kill -9 of two agents replicas mid-batch: after their restart every fire has exactly one run", async () => {
      const N = 40;
      const shots = await Promise.all(Array.from({ length: N }, (_, i) => api.ok("POST", "/v1/schedules", { agent_id: agentId, run_at: soon(1500), input: `crash ${i}` })));
      const ids = shots.map((s) => s.id);
      const firedCount = async () => Number((await sql`select count(*) from schedule_fires where status = 'fired' and schedule_id in ${sql(ids)}`)[0].count);
      const before = await until("the first fire", async () => (await firedCount()) > 0 && (await firedCount()));
      const victims = dep.members.filter((m) => m.role === "agents").slice(0, 2);
      for (const v of victims) v.child.proc.kill("SIGKILL");
      await Promise.all(victims.map((v) => v.child.proc.exited));
      const claimed = Number((await sql`select count(*) from schedule_fires where status = 'firing' and schedule_id in ${sql(ids)}`)[0].count);
      await Promise.all(victims.map((v) => dep.restart(v)));
      await until("every fire", async () => (await firedCount()) === N, 240_000, 500);
      for (const id of ids) expect({ id, runs: (await runsOfFire(id)).length }).toEqual({ id, runs: 1 });
      console.log(`[schedules split] killed 2 of 3 agents after ${before}/${N} fires (${claimed} claimed mid-fire); after restart ${N}/${N}, one run each`);
    }, 300_000);
  });
});
