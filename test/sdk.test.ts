/**
 * The SDK seed (sdk/) and the console served from source, in-process on the embedded default:
 * - sdk/schema.d.ts is what scripts/generate-sdk.ts makes of the live OpenAPI document now
 *   (regenerate with `bun run scripts/generate-sdk.ts` when a route's schema changes);
 * - the console type-checks against it (so it sends only documented fields);
 * - the client refreshes an expired access token once, for concurrent callers too, and drops
 *   the session when the refresh token is no longer valid; it retries a short 429 once;
 * - the run event stream parses into events whose deltas make up the model's answer;
 * - GET /console (from source: bundled in memory) serves the page and its assets.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { schemaSource } from "../scripts/generate-sdk";
import { createAgentOS, unwrap, type RunEvent } from "../sdk/client";
import { REPO } from "./support/binary";
import { startFakeModel, type FakeModel } from "./support/fake-model";
import { startTestProcess, type TestProcess } from "./support/harness";

describe("sdk/ and the console from source (embedded)", () => {
  let t: TestProcess;
  let fake: FakeModel;

  beforeAll(async () => {
    fake = await startFakeModel();
    t = await startTestProcess({ config: { accessTokenTtlSeconds: 1, modelBaseUrl: fake.url } });
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    fake?.stop();
  });

  test("sdk/schema.d.ts is generated from the current OpenAPI document", async () => {
    const doc = (await (await fetch(`${t.url}/swagger/json`)).json()) as Record<string, unknown>;
    const committed = readFileSync(join(REPO, "sdk/schema.d.ts"), "utf8");
    const fresh = await schemaSource(doc);
    if (fresh !== committed) throw new Error("sdk/schema.d.ts is out of date with the API: run `bun run scripts/generate-sdk.ts` and commit it");
    expect(committed).toContain('"/v1/runs/{id}/trace"');
  }, 30_000);

  test("the console and the SDK type-check against the generated schema", () => {
    const tsc = Bun.spawnSync([process.execPath, join(REPO, "node_modules/typescript/bin/tsc"), "-p", join(REPO, "console/tsconfig.json")], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    expect(`${tsc.stdout}${tsc.stderr}`).toBe("");
    expect(tsc.exitCode).toBe(0);
  }, 60_000);

  test("refreshes an expired access token once, retries, and drops a dead session", async () => {
    let refreshes = 0;
    const sessions: (string | null)[] = [];
    const api = createAgentOS({
      baseUrl: t.url,
      fetch: ((input: Request) => {
        if (input.url.endsWith("/v1/auth/refresh")) refreshes++;
        return fetch(input);
      }) as typeof fetch,
      onSession: (s) => sessions.push(s?.accessToken ?? null),
    });
    await api.signup("sdk@example.com", "correct horse battery");
    const first = api.session()!;
    expect(unwrap(await api.GET("/v1/auth/me")).user.email).toBe("sdk@example.com");

    await Bun.sleep(2100); // the 1 s access token expires
    const bodies = await Promise.all([api.GET("/v1/agents"), api.GET("/v1/auth/me"), api.POST("/v1/threads", { body: {} })]);
    expect(bodies.map((b) => b.response.status)).toEqual([200, 200, 201]);
    expect(refreshes).toBe(1);
    expect(api.session()!.accessToken).not.toBe(first.accessToken);
    expect(api.session()!.refreshToken).not.toBe(first.refreshToken);

    // A refresh token that was rotated away no longer works: the 401 stands, the session is gone.
    api.setSession({ accessToken: "not-a-jwt", refreshToken: first.refreshToken });
    const denied = await api.GET("/v1/auth/me");
    expect(denied.response.status).toBe(401);
    expect(api.session()).toBeNull();
    expect(sessions.at(-1)).toBeNull();
  }, 30_000);

  test("a 429 with a short Retry-After is sent once more; a long one is returned as it is", async () => {
    const sent: string[] = [];
    const replies = [
      new Response('{"error":{"code":"rate_limited","message":"slow down"}}', { status: 429, headers: { "retry-after": "0" } }),
      Response.json({ data: [], has_more: false, next_cursor: null }),
      new Response('{"error":{"code":"rate_limited","message":"slow down"}}', { status: 429, headers: { "retry-after": "30" } }),
    ];
    const api = createAgentOS({
      baseUrl: "http://agentos.test",
      fetch: (async (input: Request) => {
        sent.push(`${input.method} ${new URL(input.url).pathname} ${await input.text()}`);
        return replies.shift()!;
      }) as typeof fetch,
    });
    expect((await api.POST("/v1/threads", { body: { metadata: { a: "1" } } })).response.status).toBe(200);
    expect(sent).toEqual(['POST /v1/threads {"metadata":{"a":"1"}}', 'POST /v1/threads {"metadata":{"a":"1"}}']);
    const limited = await api.GET("/v1/agents");
    expect([limited.response.status, (limited.error as any).error.code]).toEqual([429, "rate_limited"]);
    expect(sent).toHaveLength(3);
  });

  test("startRunStream + runEvents: the run's events in order, deltas making up the answer", async () => {
    const api = createAgentOS({ baseUrl: t.url });
    await api.signup("stream@example.com", "correct horse battery");
    const agent = unwrap(await api.POST("/v1/agents", { body: { name: "s", model: "fake-model" } }));
    const thread = unwrap(await api.POST("/v1/threads", { body: {} }));
    fake.script({ content: "streamed through the SDK", chunkSize: 4, chunkDelayMs: 20 });
    const events: RunEvent[] = [];
    for await (const e of api.runEvents(await api.startRunStream(thread.id, { agent_id: agent.id, input: "hi" }))) events.push(e);
    expect(events[0].type).toBe("run.created");
    expect(events.at(-1)!.type).toBe("run.completed");
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === "message.delta").map((e) => e.data.delta).join("")).toBe("streamed through the SDK");
    // Replaying from the events endpoint, after a cursor.
    const replay = [];
    for await (const e of api.runEvents(await api.openRunEvents(events[0].data.id, 2))) replay.push(e.seq);
    expect(replay).toEqual(events.slice(2).map((e) => e.seq));
  }, 30_000);

  test("GET /console serves the page (CSP, no-cache) and its hashed assets (immutable)", async () => {
    const page = await fetch(`${t.url}/console`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toStartWith("default-src 'self'");
    expect(page.headers.get("cache-control")).toBe("no-cache");
    const html = await page.text();
    const script = html.match(/src="(\/console\/assets\/main-[a-z0-9]+\.js)"/)?.[1];
    const style = html.match(/href="(\/console\/assets\/main-[a-z0-9]+\.css)"/)?.[1];
    expect(script && style).toBeTruthy();
    for (const [path, type] of [[script!, "text/javascript"], [style!, "text/css"]]) {
      const asset = await fetch(t.url + path);
      expect(asset.status).toBe(200);
      expect(asset.headers.get("content-type")).toStartWith(type);
      expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    }
    const missing = await fetch(`${t.url}/console/assets/nope.js`);
    expect([missing.status, ((await missing.json()) as { error: { code: string } }).error.code]).toEqual([404, "not_found"]);
  }, 30_000);
});
