/**
 * The memory role end to end: core memory blocks and archival memory over HTTP and through
 * the builtin tools, on the embedded default (PGlite) and on real PostgreSQL + NATS — the
 * same full-text SQL on both. The agents role is replaced by a test double registered in
 * `p.local` (this file only): it answers getAgent for agents of the caller's organization.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { describeReal } from "../../../test/support/backends";
import { startTestProcess, type TestProcess, type TestUser } from "../../../test/support/harness";
import { notFound } from "../../platform/errors";
import { newId } from "../../platform/ids";

function agentsDouble() {
  const owners = new Map<string, string>();
  return {
    add(orgId: string) {
      const id = newId("agt");
      owners.set(id, orgId);
      return id;
    },
    async getAgent(orgId: string, id: string) {
      if (owners.get(id) !== orgId) throw notFound("agent", id);
      return { id };
    },
    async agentsUsingTool() {
      return [];
    },
    async detachTool() {
      return 0;
    },
  };
}

/** These suites send more than the free plan's 60 requests a minute. */
async function signupUnlimited(t: TestProcess): Promise<TestUser> {
  const u = await t.signup();
  const res = await t.request("PUT", "/v1/billing/plan", { token: u.token, body: { plan: "enterprise" } });
  if (res.status !== 200) console.warn(`could not raise the plan (${res.status}); requests may be rate limited`);
  return u;
}

function memorySuite(start: () => Promise<TestProcess>) {
  let t: TestProcess;
  let alice: TestUser;
  let bob: TestUser;
  let agents: ReturnType<typeof agentsDouble>;
  const memory = () => t.process.platform.clients.memory;
  const req = (u: TestUser, method: string, path: string, body?: unknown) => t.request(method, path, { token: u.token, body });

  beforeAll(async () => {
    t = await start();
    agents = agentsDouble();
    t.process.platform.local.set("agents", agents);
    alice = await signupUnlimited(t);
    bob = await signupUnlimited(t);
  }, 60_000);
  afterAll(() => t?.stop(), 30_000);

  describe("core memory blocks", () => {
    test("blocks created with the agent are listed, read and replaced by label", async () => {
      const agent = agents.add(alice.orgId);
      const created = await memory().createBlocks(alice.orgId, agent, [
        { label: "persona", value: "I am a helpful librarian.", limit: 200 },
        { label: "human", value: "", limit: 50 },
      ]);
      expect(created.map((b) => b.label)).toEqual(["persona", "human"]);
      expect(created[0].id).toMatch(/^blk_/);
      const list = await req(alice, "GET", `/v1/agents/${agent}/memory/blocks`);
      expect(list.status).toBe(200);
      expect(list.body).toMatchObject({ has_more: false, next_cursor: null });
      expect(list.body.data.map((b: any) => [b.label, b.value, b.limit])).toEqual([
        ["persona", "I am a helpful librarian.", 200],
        ["human", "", 50],
      ]);
      const put = await req(alice, "PUT", `/v1/agents/${agent}/memory/blocks/human`, { value: "Name: Alice. Likes jazz." });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({ label: "human", value: "Name: Alice. Likes jazz.", limit: 50, agent_id: agent });
      expect((await req(alice, "GET", `/v1/agents/${agent}/memory/blocks/human`)).body.value).toBe("Name: Alice. Likes jazz.");
      expect((await memory().listBlocks(alice.orgId, agent)).map((b) => b.value)).toEqual(["I am a helpful librarian.", "Name: Alice. Likes jazz."]);
      const page = await req(alice, "GET", `/v1/agents/${agent}/memory/blocks?limit=1`);
      expect(page.body).toMatchObject({ has_more: true, next_cursor: created[0].id });
    });

    test("a value over the block's limit → 422 memory_block_too_large; the limit can be raised", async () => {
      const agent = agents.add(alice.orgId);
      await memory().createBlocks(alice.orgId, agent, [{ label: "human", value: "short", limit: 10 }]);
      const tooLong = await req(alice, "PUT", `/v1/agents/${agent}/memory/blocks/human`, { value: "x".repeat(11) });
      expect(tooLong.status).toBe(422);
      expect(tooLong.body.error).toMatchObject({ code: "memory_block_too_large", details: { label: "human", length: 11, limit: 10 } });
      expect((await req(alice, "GET", `/v1/agents/${agent}/memory/blocks/human`)).body.value).toBe("short");
      const raised = await req(alice, "PUT", `/v1/agents/${agent}/memory/blocks/human`, { value: "x".repeat(11), limit: 20 });
      expect(raised.status).toBe(200);
      expect(raised.body.limit).toBe(20);
      const lowered = await req(alice, "PUT", `/v1/agents/${agent}/memory/blocks/human`, { value: "x".repeat(11), limit: 5 });
      expect(lowered.status).toBe(422);
      const fresh = await req(alice, "PUT", `/v1/agents/${agent}/memory/blocks/notes`, { value: "new block" });
      expect(fresh.status).toBe(200);
      expect(fresh.body).toMatchObject({ label: "notes", value: "new block", limit: 5000 });
      await expect(memory().createBlocks(alice.orgId, agents.add(alice.orgId), [{ label: "a", value: "toolong", limit: 3 }])).rejects.toMatchObject({ status: 422, code: "memory_block_too_large" });
      await expect(memory().createBlocks(alice.orgId, agent, [{ label: "human", value: "", limit: 3 }])).rejects.toMatchObject({ status: 409 });
    });

    test("bad labels and bodies are 400, unknown blocks 404", async () => {
      const agent = agents.add(alice.orgId);
      expect((await req(alice, "PUT", `/v1/agents/${agent}/memory/blocks/has%20space`, { value: "x" })).status).toBe(400);
      expect((await req(alice, "PUT", `/v1/agents/${agent}/memory/blocks/ok`, { value: 5 })).status).toBe(400);
      expect((await req(alice, "PUT", `/v1/agents/${agent}/memory/blocks/ok`, { value: "x", limit: 0 })).status).toBe(400);
      expect((await req(alice, "GET", `/v1/agents/${agent}/memory/blocks/missing`)).status).toBe(404);
    });

    test("builtin tools edit blocks; an edit over the limit is an error for the model, not a change", async () => {
      const agent = agents.add(alice.orgId);
      await memory().createBlocks(alice.orgId, agent, [{ label: "human", value: "Name: Bob", limit: 40 }]);
      const run = (name: string, args: Record<string, unknown>) => memory().runBuiltinTool(alice.orgId, agent, name, args);
      expect(await run("core_memory_append", { label: "human", content: "Likes chess" })).toMatchObject({ value: "Name: Bob\nLikes chess", length: 21, limit: 40 });
      expect(await run("core_memory_replace", { label: "human", old_content: "chess", new_content: "go" })).toMatchObject({ value: "Name: Bob\nLikes go" });
      await expect(run("core_memory_append", { label: "human", content: "y".repeat(30) })).rejects.toMatchObject({ status: 422, code: "memory_block_too_large" });
      await expect(run("core_memory_replace", { label: "human", old_content: "tennis", new_content: "x" })).rejects.toMatchObject({ status: 404 });
      await expect(run("core_memory_append", { label: "persona", content: "x" })).rejects.toThrow(/Existing labels: human/);
      await expect(run("nope", {})).rejects.toMatchObject({ status: 404 });
      expect((await memory().listBlocks(alice.orgId, agent))[0].value).toBe("Name: Bob\nLikes go");
    });

    test("concurrent appends are all kept (row lock)", async () => {
      const agent = agents.add(alice.orgId);
      await memory().createBlocks(alice.orgId, agent, [{ label: "log", value: "", limit: 1000 }]);
      await Promise.all(Array.from({ length: 8 }, (_, i) => memory().runBuiltinTool(alice.orgId, agent, "core_memory_append", { label: "log", content: `line ${i}` })));
      const value = (await memory().listBlocks(alice.orgId, agent))[0].value;
      expect(value.split("\n").sort()).toEqual(Array.from({ length: 8 }, (_, i) => `line ${i}`));
    });
  });

  describe("archival memory", () => {
    let agent: string;
    const passages = [
      "The user's cat is named Miso and loves tuna.",
      "Quarterly report: revenue grew in the Nordic region.",
      "The cat Miso was adopted in 2021; the cat sleeps on the keyboard and the cat purrs.",
      "Meeting notes: deploy the search service on Friday.",
    ];
    const ids: string[] = [];

    beforeAll(async () => {
      agent = agents.add(alice.orgId);
      for (const content of passages) {
        const res = await req(alice, "POST", `/v1/agents/${agent}/memories`, { content, metadata: { source: "test" } });
        expect(res.status).toBe(201);
        ids.push(res.body.id);
      }
    });

    test("insert returns the memory; listing without a query is cursor-paginated by creation", async () => {
      const first = await req(alice, "GET", `/v1/agents/${agent}/memories/${ids[0]}`);
      expect(first.body).toMatchObject({ id: ids[0], agent_id: agent, content: passages[0], metadata: { source: "test" } });
      expect(first.body.id).toMatch(/^mem_/);
      const p1 = await req(alice, "GET", `/v1/agents/${agent}/memories?limit=3`);
      expect(p1.body.data.map((m: any) => m.id)).toEqual(ids.slice(0, 3));
      expect(p1.body).toMatchObject({ has_more: true, next_cursor: ids[2] });
      expect(p1.body.data[0].score).toBeUndefined();
      const p2 = await req(alice, "GET", `/v1/agents/${agent}/memories?limit=3&after=${ids[2]}`);
      expect(p2.body).toMatchObject({ has_more: false, next_cursor: null });
      expect(p2.body.data.map((m: any) => m.id)).toEqual([ids[3]]);
      const desc = await req(alice, "GET", `/v1/agents/${agent}/memories?order=desc&limit=2`);
      expect(desc.body.data.map((m: any) => m.id)).toEqual([ids[3], ids[2]]);
    });

    test("search ranks the best match first (websearch syntax, stemming)", async () => {
      const res = await req(alice, "GET", `/v1/agents/${agent}/memories?query=${encodeURIComponent("cat Miso")}`);
      expect(res.status).toBe(200);
      expect(res.body.data.map((m: any) => m.id)).toEqual([ids[2], ids[0]]);
      expect(res.body.data[0].score).toBeGreaterThan(res.body.data[1].score);
      const stem = await req(alice, "GET", `/v1/agents/${agent}/memories?query=deploying`);
      expect(stem.body.data.map((m: any) => m.id)).toEqual([ids[3]]);
      const phrase = await req(alice, "GET", `/v1/agents/${agent}/memories?query=${encodeURIComponent('"revenue grew" or tuna')}`);
      expect(phrase.body.data.map((m: any) => m.id).sort()).toEqual([ids[0], ids[1]].sort());
      const exclude = await req(alice, "GET", `/v1/agents/${agent}/memories?query=${encodeURIComponent("cat -keyboard")}`);
      expect(exclude.body.data.map((m: any) => m.id)).toEqual([ids[0]]);
      const limited = await req(alice, "GET", `/v1/agents/${agent}/memories?query=cat&limit=1`);
      expect(limited.body).toMatchObject({ has_more: true, next_cursor: null });
      expect(limited.body.data[0].id).toBe(ids[2]);
      for (const q of ["the", "&|!(:*", "zebra"]) {
        const none = await req(alice, "GET", `/v1/agents/${agent}/memories?query=${encodeURIComponent(q)}`);
        expect(none.status).toBe(200);
        expect(none.body.data).toEqual([]);
      }
    });

    test("the builtin tools insert and search, and only see their own agent", async () => {
      const stored = (await memory().runBuiltinTool(alice.orgId, agent, "archival_memory_insert", { content: "Miso's vet is Dr. Okafor" })) as { id: string };
      expect(stored.id).toMatch(/^mem_/);
      const found = (await memory().runBuiltinTool(alice.orgId, agent, "archival_memory_search", { query: "vet", limit: 5 })) as { results: any[] };
      expect(found.results.map((r) => r.content)).toEqual(["Miso's vet is Dr. Okafor"]);
      const other = agents.add(alice.orgId);
      expect(((await memory().runBuiltinTool(alice.orgId, other, "archival_memory_search", { query: "vet" })) as { results: any[] }).results).toEqual([]);
      expect(((await memory().runBuiltinTool(bob.orgId, agent, "archival_memory_search", { query: "vet" })) as { results: any[] }).results).toEqual([]);
      await expect(memory().runBuiltinTool(alice.orgId, agent, "archival_memory_insert", {})).rejects.toMatchObject({ status: 400, code: "invalid_arguments" });
    });

    test("delete removes one memory; a second delete is 404", async () => {
      const res = await req(alice, "POST", `/v1/agents/${agent}/memories`, { content: "temporary" });
      const del = await req(alice, "DELETE", `/v1/agents/${agent}/memories/${res.body.id}`);
      expect(del.status).toBe(200);
      expect(del.body).toEqual({ id: res.body.id, deleted: true });
      expect((await req(alice, "DELETE", `/v1/agents/${agent}/memories/${res.body.id}`)).status).toBe(404);
      expect((await req(alice, "GET", `/v1/agents/${agent}/memories/${res.body.id}`)).status).toBe(404);
      expect((await req(alice, "DELETE", `/v1/agents/${agent}/memories/mem_bad`)).status).toBe(404);
    });

    test("bodies and queries are validated (400)", async () => {
      expect((await req(alice, "POST", `/v1/agents/${agent}/memories`, { content: "" })).status).toBe(400);
      expect((await req(alice, "POST", `/v1/agents/${agent}/memories`, { content: 5 })).status).toBe(400);
      expect((await req(alice, "POST", `/v1/agents/${agent}/memories`, { content: "x".repeat(100_001) })).status).toBe(400);
      expect((await req(alice, "GET", `/v1/agents/${agent}/memories?limit=0`)).status).toBe(400);
      expect((await req(alice, "GET", `/v1/agents/${agent}/memories?limit=abc`)).status).toBe(400);
    });

    test("another organization gets 404 on every memory route", async () => {
      const routes: [string, string, unknown?][] = [
        ["GET", `/v1/agents/${agent}/memory/blocks`],
        ["GET", `/v1/agents/${agent}/memory/blocks/human`],
        ["PUT", `/v1/agents/${agent}/memory/blocks/human`, { value: "pwned" }],
        ["POST", `/v1/agents/${agent}/memories`, { content: "pwned" }],
        ["GET", `/v1/agents/${agent}/memories`],
        ["GET", `/v1/agents/${agent}/memories?query=cat`],
        ["GET", `/v1/agents/${agent}/memories/${ids[0]}`],
        ["DELETE", `/v1/agents/${agent}/memories/${ids[0]}`],
      ];
      for (const [method, path, body] of routes) {
        const res = await req(bob, method, path, body);
        expect(res.status, `${method} ${path}`).toBe(404);
        expect(res.body.error.code).toBe("not_found");
      }
      for (const bad of ["agt_nope", "thr_01HZZZZZZZZZZZZZZZZZZZZZZZ"]) expect((await req(alice, "GET", `/v1/agents/${bad}/memories`)).status).toBe(404);
      expect((await req(alice, "GET", `/v1/agents/${agent}/memories/${ids[0]}`)).status).toBe(200);
      expect((await t.request("GET", `/v1/agents/${agent}/memories`)).status).toBe(401);
    });

    test("deleteAgentMemory removes every block and memory of the agent", async () => {
      const doomed = agents.add(alice.orgId);
      await memory().createBlocks(alice.orgId, doomed, [{ label: "human", value: "x", limit: 10 }]);
      await memory().runBuiltinTool(alice.orgId, doomed, "archival_memory_insert", { content: "doomed passage" });
      await memory().deleteAgentMemory(alice.orgId, doomed);
      expect(await memory().listBlocks(alice.orgId, doomed)).toEqual([]);
      expect((await req(alice, "GET", `/v1/agents/${doomed}/memories`)).body.data).toEqual([]);
      expect((await req(alice, "GET", `/v1/agents/${agent}/memories?limit=100`)).body.data.length).toBeGreaterThan(0);
    });
  });
}

describe("memory on the embedded default", () => memorySuite(() => startTestProcess()));
await describeReal("memory", () => memorySuite(() => startTestProcess({ real: true })));
