/**
 * Shared memory blocks on the compiled binary (embedded default and real PostgreSQL + NATS):
 * one block attached to several agents; a change (API or an agent's memory tool) is in every
 * attached agent's next prompt — asserted on what the fake model receives.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { apiClient } from "./support/api";
import { describeReal } from "./support/backends";
import { startBinary, unlimitedUser, type Deployment } from "./support/binary-deployment";
import { startFakeModel, type FakeModel } from "./support/fake-model";

function sharedBlocksSuite(name: string, real: boolean) {
  describe(name, () => {
    let fake: FakeModel;
    let deployment: Deployment;
    let user: Awaited<ReturnType<typeof unlimitedUser>>;

    beforeAll(async () => {
      fake = await startFakeModel();
      deployment = await startBinary(real, [`--model-base-url=${fake.url}`, "--embedding-model=none"]);
      user = await unlimitedUser(apiClient(deployment.child.url));
    }, 120_000);
    afterAll(async () => {
      await deployment?.stop();
      fake?.stop();
    }, 60_000);

    /** Runs the agent once; the system prompt the fake model received for its (last) model call. */
    async function promptOf(agentId: string): Promise<string> {
      const before = fake.requests.length;
      const thread = await user.ok("POST", "/v1/threads", {});
      const run = await user.ok("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agentId, input: "hello" });
      const done = await user.ok("GET", `/v1/runs/${run.id}/wait?timeout_s=30`);
      expect(done.status).toBe("completed");
      return fake.requests.slice(before).at(-1)!.body.messages[0].content as string;
    }

    test("one block, two agents: attached, listed, changed once, seen in both next prompts; detach and label delete", async () => {
      const block = await user.ok("POST", "/v1/blocks", { label: "team", value: "Release freeze until Friday.", limit: 200, description: "team-wide facts" });
      expect(block.id).toMatch(/^blk_/);
      expect(block).toMatchObject({ label: "team", value: "Release freeze until Friday.", limit: 200, description: "team-wide facts", agent_ids: [] });
      const a = await user.ok("POST", "/v1/agents", { name: "a", model: "fake-model", instructions: "Agent A." });
      const b = await user.ok("POST", "/v1/agents", { name: "b", model: "fake-model", instructions: "Agent B.", memory_blocks: [{ label: "persona", value: "I am B." }] });
      expect(await user.ok("POST", `/v1/agents/${a.id}/blocks/${block.id}`)).toMatchObject({ id: block.id, label: "team", shared: true, agent_id: a.id });
      await user.ok("POST", `/v1/agents/${b.id}/blocks/${block.id}`);
      expect((await user.ok("POST", `/v1/agents/${b.id}/blocks/${block.id}`)).id).toBe(block.id); // idempotent
      expect((await user.ok("GET", `/v1/blocks/${block.id}`)).agent_ids).toEqual([a.id, b.id]);
      const listed = await user.ok("GET", `/v1/agents/${b.id}/memory/blocks`);
      // Listed by id (creation): the shared block was created before B.
      expect(listed.data.map((x: any) => [x.label, x.shared])).toEqual([["team", true], ["persona", false]]);
      expect((await user.ok("GET", "/v1/blocks?label=team")).data.map((x: any) => x.id)).toEqual([block.id]);

      expect(await promptOf(a.id)).toContain("Release freeze until Friday.");
      const changed = await user.ok("PATCH", `/v1/blocks/${block.id}`, { value: "Release freeze lifted; ship on Monday." });
      expect(changed.value).toBe("Release freeze lifted; ship on Monday.");
      for (const agent of [a, b]) {
        const prompt = await promptOf(agent.id);
        expect(prompt).toContain("Release freeze lifted; ship on Monday.");
        expect(prompt).not.toContain("until Friday");
      }

      // The label is unique per agent: a second block labelled "persona" cannot be attached to B.
      const clash = await user.ok("POST", "/v1/blocks", { label: "persona", value: "other" });
      const refused = await user.call("POST", `/v1/agents/${b.id}/blocks/${clash.id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe("duplicate_memory_block");
      expect((await user.call("PATCH", `/v1/blocks/${block.id}`, { value: "x".repeat(201) })).status).toBe(422);
      expect((await user.call("PATCH", `/v1/blocks/${block.id}`, { label: "persona" })).status).toBe(409);

      // DELETE a label from an agent: the shared block is detached from B only; B's own block is deleted.
      expect(await user.ok("DELETE", `/v1/agents/${b.id}/memory/blocks/team`)).toEqual({ agent_id: b.id, label: "team", deleted: true });
      expect(await promptOf(b.id)).not.toContain("ship on Monday");
      expect(await promptOf(a.id)).toContain("ship on Monday");
      await user.ok("DELETE", `/v1/agents/${b.id}/memory/blocks/persona`);
      expect((await user.ok("GET", `/v1/agents/${b.id}/memory/blocks`)).data).toEqual([]);
      expect((await user.call("DELETE", `/v1/agents/${b.id}/memory/blocks/persona`)).status).toBe(404);
      expect(await user.ok("DELETE", `/v1/agents/${a.id}/blocks/${block.id}`)).toMatchObject({ label: "team", deleted: true });
      expect((await user.ok("GET", `/v1/blocks/${block.id}`)).agent_ids).toEqual([]);
      expect(await user.ok("DELETE", `/v1/blocks/${block.id}`)).toEqual({ id: block.id, deleted: true });
      expect((await user.call("GET", `/v1/blocks/${block.id}`)).status).toBe(404);
    }, 120_000);

    test("an agent's memory tool edits the shared block: the other agent's next prompt shows the edit", async () => {
      const block = await user.ok("POST", "/v1/blocks", { label: "project", value: "Codename: Kite." });
      const writer = await user.ok("POST", "/v1/agents", { name: "writer", model: "fake-model", tools: ["core_memory_append"] });
      const reader = await user.ok("POST", "/v1/agents", { name: "reader", model: "fake-model" });
      for (const agent of [writer, reader]) await user.ok("POST", `/v1/agents/${agent.id}/blocks/${block.id}`);
      fake.script({ tool_calls: [{ name: "core_memory_append", arguments: { label: "project", content: "Launch: 1 March." } }] }, { content: "noted" });
      await promptOf(writer.id);
      expect((await user.ok("GET", `/v1/blocks/${block.id}`)).value).toBe("Codename: Kite.\nLaunch: 1 March.");
      expect(await promptOf(reader.id)).toContain("Codename: Kite.\nLaunch: 1 March.");
    }, 120_000);

    test("tenant scoping and bad input", async () => {
      const block = await user.ok("POST", "/v1/blocks", { label: "secret", value: "mine" });
      const other = await unlimitedUser(apiClient(deployment.child.url));
      expect((await other.call("GET", `/v1/blocks/${block.id}`)).status).toBe(404);
      expect((await other.call("PATCH", `/v1/blocks/${block.id}`, { value: "theirs" })).status).toBe(404);
      const theirAgent = await other.ok("POST", "/v1/agents", { name: "x", model: "fake-model" });
      expect((await other.call("POST", `/v1/agents/${theirAgent.id}/blocks/${block.id}`)).status).toBe(404);
      expect((await other.ok("GET", "/v1/blocks")).data).toEqual([]);
      expect((await user.call("POST", "/v1/blocks", { label: "has space", value: "" })).status).toBe(400);
      expect((await user.call("POST", "/v1/blocks", { label: "ok", value: "toolong", limit: 3 })).status).toBe(422);
      expect((await user.call("POST", "/v1/blocks", { label: "ok", value: "", colour: "red" })).status).toBe(400);
      expect((await user.call("GET", "/v1/blocks/nope")).status).toBe(404);
    }, 60_000);
  });
}

sharedBlocksSuite("shared memory blocks [compiled binary, embedded]", false);
await describeReal("shared memory blocks [compiled binary]", () => {
  sharedBlocksSuite("shared memory blocks [compiled binary, PostgreSQL + NATS]", true);
});
