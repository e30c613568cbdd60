/**
 * Model providers per organization on the compiled binary (embedded default and real
 * PostgreSQL + NATS): `model: "<provider>/<model>"` goes to the organization's server with its
 * key; the key is encrypted at rest, never returned or logged; usage is recorded per provider;
 * the SSRF guard refuses internal addresses; rotating AGENTOS_SECRET_KEY keeps old keys readable
 * while the former key is in AGENTOS_SECRET_KEY_PREVIOUS.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { apiClient } from "./support/api";
import { describeReal } from "./support/backends";
import { startBinary, unlimitedUser, type Deployment } from "./support/binary-deployment";
import { startFakeModel, type FakeModel } from "./support/fake-model";
import { TEST_SECRET_KEY } from "./support/harness";
import { SecretBox } from "../src/platform/secrets";

const TENANT_KEY = "sk-tenant-secret-0123456789abcdef";
const ROTATED_KEY = "rotated-secret-key-that-is-long-enough-0123456789";

/** Every file under `dir` (the embedded database's files included) that contains `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...filesContaining(path, needle));
    else if (readFileSync(path).includes(needle)) out.push(path);
  }
  return out;
}

function providersSuite(name: string, real: boolean) {
  describe(name, () => {
    let platformModel: FakeModel;
    let tenantModel: FakeModel;
    let deployment: Deployment;
    let user: Awaited<ReturnType<typeof unlimitedUser>>;
    let logs = "";
    // big-model is priced; acme/big-model is not listed, so the bare model's price applies.
    const prices = JSON.stringify({ "big-model": { input_cents_per_million: 1000, output_cents_per_million: 2000 } });
    const args = () => [`--model-base-url=${platformModel.url}`, "--embedding-model=none", `--model-prices=${prices}`];

    beforeAll(async () => {
      platformModel = await startFakeModel();
      tenantModel = await startFakeModel();
      platformModel.setDefault({ content: "from the platform model" });
      tenantModel.setDefault({ content: "from the tenant model", usage: { prompt_tokens: 1000, completion_tokens: 1000, total_tokens: 2000 } });
      deployment = await startBinary(real, args());
      user = await unlimitedUser(() => apiClient(deployment.child.url));
    }, 120_000);
    afterAll(async () => {
      await deployment?.stop();
      platformModel?.stop();
      tenantModel?.stop();
    }, 60_000);

    async function runOnce(agentId: string) {
      const thread = await user.ok("POST", "/v1/threads", {});
      const run = await user.ok("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agentId, input: "hello" });
      return user.ok("GET", `/v1/runs/${run.id}/wait?timeout_s=30`);
    }
    const lastMessage = async (threadId: string) => (await user.ok("GET", `/v1/threads/${threadId}/messages?order=desc&limit=1`)).data[0];

    let agentId: string;

    test("register, list (never the key), route <provider>/<model> with its key, the default stays MODEL_BASE_URL, usage per provider", async () => {
      const created = await user.call("POST", "/v1/providers", { name: "acme", base_url: tenantModel.url + "/", api_key: TENANT_KEY, models: ["big-model"] });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ name: "acme", base_url: tenantModel.url, has_api_key: true, models: ["big-model"] });
      expect(created.body.id).toMatch(/^prv_/);
      const listed = await user.call("GET", "/v1/providers");
      expect(listed.body.data.map((p: any) => p.name)).toEqual(["acme"]);
      expect(JSON.stringify([created.body, listed.body])).not.toContain(TENANT_KEY);
      expect((await user.call("POST", "/v1/providers", { name: "acme", base_url: tenantModel.url })).status).toBe(409);

      const refused = await user.call("POST", "/v1/agents", { name: "x", model: "acme/other-model" });
      expect(refused.status).toBe(422);
      expect(refused.body.error.code).toBe("model_not_served");

      const byo = await user.ok("POST", "/v1/agents", { name: "byo", model: "acme/big-model" });
      agentId = byo.id;
      const platform = await user.ok("POST", "/v1/agents", { name: "platform", model: "fake-model" });
      const done = await runOnce(byo.id);
      expect(done.status).toBe("completed");
      expect((await lastMessage(done.thread_id)).content).toBe("from the tenant model");
      expect(tenantModel.requests).toHaveLength(1);
      expect(tenantModel.requests[0].body.model).toBe("big-model");
      expect(tenantModel.requests[0].headers.authorization).toBe(`Bearer ${TENANT_KEY}`);
      expect(platformModel.requests).toHaveLength(0);

      const other = await runOnce(platform.id);
      expect((await lastMessage(other.thread_id)).content).toBe("from the platform model");
      expect(platformModel.requests[0].body.model).toBe("fake-model");
      expect(tenantModel.requests).toHaveLength(1);

      // Usage is recorded under <provider>/<model> (priced by that key, else the bare model's price, else default).
      let usage: any;
      for (let i = 0; i < 100; i++) {
        usage = await user.ok("GET", "/v1/billing/usage?group_by=model");
        if (usage.data.some((r: any) => r.key === "acme/big-model")) break;
        await Bun.sleep(100);
      }
      const row = usage.data.find((r: any) => r.key === "acme/big-model");
      expect(row).toMatchObject({ model_calls: 1, prompt_tokens: 1000, completion_tokens: 1000 });
      expect(row.cost_cents).toBeCloseTo((1000 * 1000 + 1000 * 2000) / 1_000_000, 6); // big-model's price
    }, 120_000);

    test("bad input, tenant scoping, delete", async () => {
      expect((await user.call("POST", "/v1/providers", { name: "Bad Name", base_url: tenantModel.url })).status).toBe(400);
      expect((await user.call("POST", "/v1/providers", { name: "ftp", base_url: "ftp://example.com/v1" })).status).toBe(400);
      expect((await user.call("POST", "/v1/providers", { name: "cred", base_url: "https://u:p@example.com/v1" })).status).toBe(400);
      expect((await user.call("POST", "/v1/providers", { name: "extra", base_url: "https://example.com/v1", colour: 1 })).status).toBe(400);
      const temp = await user.ok("POST", "/v1/providers", { name: "temp", base_url: "https://models.example.com/v1" });
      expect(temp.has_api_key).toBe(false);
      const other = await unlimitedUser(apiClient(deployment.child.url));
      expect((await other.ok("GET", "/v1/providers")).data).toEqual([]);
      expect((await other.call("DELETE", `/v1/providers/${temp.id}`)).status).toBe(404);
      expect(await user.ok("DELETE", `/v1/providers/${temp.id}`)).toEqual({ id: temp.id, object: "provider", deleted: true });
      expect((await user.call("DELETE", `/v1/providers/${temp.id}`)).status).toBe(404);
    }, 60_000);

    test("the key is encrypted at rest and never logged", async () => {
      if (real) {
        const sql = postgres(deployment.databaseUrl!, { max: 1 });
        try {
          const [row] = await sql`select api_key_sealed from model_providers where name = 'acme'`;
          expect(row.api_key_sealed).toMatch(/^v1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/);
          expect(row.api_key_sealed).not.toContain(TENANT_KEY);
          const dump = await sql`select row_to_json(p)::text as j from model_providers p`;
          expect(dump.map((r) => r.j).join()).not.toContain(TENANT_KEY);
        } finally {
          await sql.end();
        }
      }
      await deployment.child.stop();
      const { stdout, stderr } = await deployment.child.output();
      logs += stdout + stderr;
      expect(logs).not.toContain(TENANT_KEY);
      // The embedded database's files on disk hold no copy of the key in clear.
      if (!real) expect(filesContaining(deployment.dataDir!, TENANT_KEY)).toEqual([]);
    }, 60_000);

    test("rotation: a new AGENTOS_SECRET_KEY with the former one in AGENTOS_SECRET_KEY_PREVIOUS opens the stored key and re-seals it; an unknown key fails the run clearly", async () => {
      const former = real ? TEST_SECRET_KEY : readFileSync(join(deployment.dataDir!, "secret-key"), "utf8").trim();
      await deployment.restart(args(), { AGENTOS_SECRET_KEY: ROTATED_KEY, AGENTOS_SECRET_KEY_PREVIOUS: former });
      const done = await runOnce(agentId);
      expect(done.status).toBe("completed");
      expect(tenantModel.requests.at(-1)!.headers.authorization).toBe(`Bearer ${TENANT_KEY}`);
      if (real) {
        const sql = postgres(deployment.databaseUrl!, { max: 1 });
        try {
          const [row] = await sql`select api_key_sealed from model_providers where name = 'acme'`;
          expect(row.api_key_sealed.split(":")[1]).toBe(new SecretBox(ROTATED_KEY).encrypt("x").split(":")[1]);
        } finally {
          await sql.end();
        }
      }

      // Re-sealed at start: the former key can go.
      await deployment.restart(args(), { AGENTOS_SECRET_KEY: ROTATED_KEY });
      expect((await runOnce(agentId)).status).toBe("completed");

      // A deployment with neither key cannot open it: the run fails with a clear code.
      await deployment.restart(args(), { AGENTOS_SECRET_KEY: "a-third-secret-key-that-is-long-enough-0123456789" });
      const failed = await runOnce(agentId);
      expect(failed.status).toBe("failed");
      expect(failed.last_error).toMatchObject({ code: "provider_key_unreadable" });
    }, 120_000);

    test("SSRF guard: with private targets refused, an internal base_url is refused at registration and at call time", async () => {
      await deployment.restart(args(), { AGENTOS_SECRET_KEY: ROTATED_KEY, AGENTOS_ALLOW_PRIVATE_TARGETS: "false" });
      const refused = await user.call("POST", "/v1/providers", { name: "internal", base_url: "http://169.254.169.254/v1" });
      expect(refused.status).toBe(400);
      expect(refused.body.error.code).toBe("target_refused");
      const before = tenantModel.requests.length;
      const failed = await runOnce(agentId); // acme points at 127.0.0.1 (registered while allowed)
      expect(failed.status).toBe("failed");
      expect(tenantModel.requests.length).toBe(before);
    }, 120_000);
  });
}

providersSuite("model providers per organization [compiled binary, embedded]", false);
await describeReal("model providers per organization [compiled binary]", () => {
  providersSuite("model providers per organization [compiled binary, PostgreSQL + NATS]", true);
});
