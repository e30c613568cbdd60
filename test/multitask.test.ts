/**
 * Busy threads (multitask_strategy) on the compiled binary: the embedded default and split
 * roles on real PostgreSQL/NATS/Redis (two gateways, two agents processes, two workers).
 * Many concurrent creates on one thread: with reject exactly one wins; with mixed strategies
 * the executions of the thread's runs never overlap (each starts after the previous ended).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { describeReal } from "./support/backends";
import { apiOn, startEmbedded, startSplit, type Deployment } from "./support/deployment";
import { startFakeModel, type FakeModel } from "./support/fake-model";

type Api = Awaited<ReturnType<typeof apiOn>>;
const lastUser = (req: { body: any }) => [...req.body.messages].reverse().find((m: any) => m.role === "user")?.content ?? "";

function busyThreadSuite(name: string, start: (modelUrl: string) => Promise<Deployment>) {
  describe(name, () => {
    let fake: FakeModel;
    let dep: Deployment;
    let apis: Api[];
    let agentId: string;

    beforeAll(async () => {
      fake = await startFakeModel();
      // "slow …" inputs hold the model call (the run stays in_progress until cancelled).
      fake.setDefault((req) => (lastUser(req).startsWith("slow") ? { content: "never", delayMs: 60_000 } : { content: `answer to ${lastUser(req)}`, delayMs: 50 }));
      dep = await start(fake.url);
      const first = await apiOn(dep.gateways[0].child.url);
      apis = [first, ...(await Promise.all(dep.gateways.slice(1).map((g) => apiOn(g.child.url, first.token))))];
      agentId = (await first.agent()).id;
    }, 120_000);
    afterAll(async () => {
      await dep?.stop();
      fake?.stop();
    }, 30_000);

    const api = (i = 0) => apis[i % apis.length];
    const untilRequest = async (text: string) => {
      for (let i = 0; i < 400 && !fake.requests.some((r) => lastUser(r) === text); i++) await Bun.sleep(25);
    };

    test("reject (the default): of 20 concurrent creates on one thread exactly one is accepted, the others get 409 thread_busy", async () => {
      const thread = await api().thread();
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => api(i).call("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agentId, input: `slow ${i}` })));
      expect(replies.filter((r) => r.status === 201)).toHaveLength(1);
      const refused = replies.filter((r) => r.status !== 201);
      expect(refused.every((r) => r.status === 409 && r.body.error.code === "thread_busy")).toBe(true);
      const winner = replies.find((r) => r.status === 201)!.body;
      await api().ok("POST", `/v1/runs/${winner.id}/cancel`);
      expect((await api().wait(winner.id)).status).toBe("cancelled");
    }, 60_000);

    test("enqueue: the run waits as pending, then starts after the active one and sees its answer", async () => {
      const thread = await api().thread();
      const a = await api().run(thread.id, { agent_id: agentId, input: "first" });
      const b = await api(1).run(thread.id, { agent_id: agentId, input: "second", multitask_strategy: "enqueue" });
      expect(["pending", "queued"]).toContain(b.status);
      expect((await api().wait(a.id)).status).toBe("completed");
      expect((await api().wait(b.id)).status).toBe("completed");
      const seen = fake.requests.find((r) => lastUser(r) === "second")!.body.messages.map((m: any) => m.content);
      expect(seen).toContain("answer to first");
      const contents = (await api().messages(thread.id)).map((m: any) => m.content);
      expect(contents).toEqual(["first", "answer to first", "second", "answer to second"]);
    }, 60_000);

    test("interrupt: the active run is cancelled with its input kept, the new run completes", async () => {
      const thread = await api().thread();
      const a = await api().run(thread.id, { agent_id: agentId, input: "slow interrupted" });
      await untilRequest("slow interrupted");
      const b = await api(1).run(thread.id, { agent_id: agentId, input: "after interrupt", multitask_strategy: "interrupt" });
      expect((await api().wait(b.id)).status).toBe("completed");
      expect((await api().get(a.id)).status).toBe("cancelled");
      const contents = (await api().messages(thread.id)).map((m: any) => m.content);
      expect(contents).toEqual(["slow interrupted", "after interrupt", "answer to after interrupt"]);
    }, 60_000);

    test("rollback: the active run is cancelled and its messages leave the thread; the model never sees them", async () => {
      const thread = await api().thread();
      const a = await api().run(thread.id, { agent_id: agentId, input: "slow rolled back" });
      await untilRequest("slow rolled back");
      const b = await api(1).run(thread.id, { agent_id: agentId, input: "after rollback", multitask_strategy: "rollback" });
      expect((await api().wait(b.id)).status).toBe("completed");
      expect((await api().get(a.id)).status).toBe("cancelled");
      expect((await api().messages(thread.id)).map((m: any) => m.content)).toEqual(["after rollback", "answer to after rollback"]);
      const seen = fake.requests.find((r) => lastUser(r) === "after rollback")!.body.messages.map((m: any) => m.content);
      expect(seen).not.toContain("slow rolled back");
    }, 60_000);

    test("PostgreSQL itself refuses a second active run on a thread (partial unique index)", async () => {
      if (!dep.databaseUrl) return; // the embedded database has the same index; reached only through the API there
      const thread = await api().thread();
      const a = await api().run(thread.id, { agent_id: agentId, input: "slow index" });
      const sql = postgres(dep.databaseUrl, { max: 1, onnotice: () => {} });
      try {
        const err = await sql`insert into runs (id, org_id, thread_id, agent_id, model, status) select 'run_dup', org_id, thread_id, agent_id, model, 'queued' from runs where id = ${a.id}`.catch((e) => e);
        expect(`${err?.code} ${err?.constraint_name}`).toBe("23505 runs_thread_active_key");
      } finally {
        await sql.end();
      }
      await api().ok("POST", `/v1/runs/${a.id}/cancel`);
    }, 30_000);

    test("40 concurrent creates with mixed strategies on every gateway: the thread's runs never overlap and all end", async () => {
      const thread = await api().thread();
      const strategies = ["enqueue", "interrupt", "rollback", "enqueue", "reject"];
      const replies = await Promise.all(
        Array.from({ length: 40 }, (_, i) => api(i).call("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agentId, input: `storm ${i}`, multitask_strategy: strategies[i % strategies.length] })),
      );
      expect(replies.filter((r) => r.status >= 500)).toEqual([]);
      const accepted = replies.filter((r) => r.status === 201).map((r) => r.body.id as string);
      expect(accepted.length).toBeGreaterThan(1);
      for (const r of replies.filter((r) => r.status !== 201)) expect(r.body.error.code).toBe("thread_busy");
      const ended = await Promise.all(accepted.map(async (id) => {
        for (;;) {
          const run = await api().get(id);
          if (["completed", "cancelled", "failed", "expired"].includes(run.status)) return run;
          await Bun.sleep(100);
        }
      }));
      expect(ended.some((r) => r.status === "completed")).toBe(true);
      // Executions are disjoint: sorted by start, each starts after the previous one ended.
      const executed = ended.filter((r) => r.started_at).sort((x, y) => Date.parse(x.started_at) - Date.parse(y.started_at));
      for (let i = 1; i < executed.length; i++) expect(Date.parse(executed[i].started_at)).toBeGreaterThanOrEqual(Date.parse(executed[i - 1].completed_at));
    }, 120_000);
  });
}

busyThreadSuite("busy threads [embedded]", (modelUrl) => startEmbedded({ modelUrl }));
await describeReal("busy threads on split roles", () => {
  busyThreadSuite("busy threads [split roles]", (modelUrl) => startSplit({ modelUrl, layout: ["gateway", "gateway", "agents", "agents", "worker", "worker"] }));
});
