/**
 * GET /v1/agents/:id is served from each gateway's in-process cache: every change to the
 * agent or its memory blocks must be visible at once on the gateway that made it and, over
 * the bus, on every other gateway.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, uniqueName } from "../../../test/support/backends";
import { startTestProcess, type TestProcess, type TestUser } from "../../../test/support/harness";

function cacheSuite(start: () => Promise<{ writer: TestProcess; reader: TestProcess; stop(): Promise<void> }>) {
  let writer: TestProcess;
  let reader: TestProcess;
  let stop: () => Promise<void>;
  let user: TestUser;
  let agentId: string;
  beforeAll(async () => {
    ({ writer, reader, stop } = await start());
    user = await writer.signup();
    const created = await writer.request("POST", "/v1/agents", {
      token: user.token,
      body: { name: "cached", model: "m", instructions: "v1", memory_blocks: [{ label: "persona", value: "calm", limit: 100 }] },
    });
    expect(created.status).toBe(201);
    agentId = created.body.id;
  });
  afterAll(() => stop?.());

  const read = async (t: TestProcess) => (await t.request("GET", `/v1/agents/${agentId}`, { token: user.token })).body;
  const eventually = async (check: () => Promise<boolean>) => {
    for (let i = 0; i < 250 && !(await check()); i++) await Bun.sleep(20);
    expect(await check()).toBe(true);
  };

  test("a cached read answers exactly like the first (body bytes and headers)", async () => {
    const get = async () => {
      const r = await fetch(`${reader.url}/v1/agents/${agentId}`, { headers: { authorization: `Bearer ${user.token}`, origin: "http://app.example" } });
      const headers = [...r.headers].filter(([k]) => !["date", "x-request-id", "x-ratelimit-remaining"].includes(k));
      return { status: r.status, body: await r.text(), headers, id: r.headers.get("x-request-id") };
    };
    const first = await get();
    const second = await get();
    expect(second.status).toBe(200);
    expect(second.body).toBe(first.body);
    expect(second.headers).toEqual(first.headers);
    expect(second.id).toMatch(/^req_/);
    expect(JSON.parse(second.body).memory_blocks).toEqual([{ label: "persona", value: "calm", limit: 100 }]);
  });

  test("an update is visible on both gateways", async () => {
    expect((await read(reader)).instructions).toBe("v1"); // now cached on the reader
    expect((await read(writer)).instructions).toBe("v1");
    expect((await writer.request("PATCH", `/v1/agents/${agentId}`, { token: user.token, body: { instructions: "v2" } })).status).toBe(200);
    expect((await read(writer)).instructions).toBe("v2");
    await eventually(async () => (await read(reader)).instructions === "v2");
  });

  test("a memory block change (memory role) is visible on both gateways", async () => {
    const put = await writer.request("PUT", `/v1/agents/${agentId}/memory/blocks/persona`, { token: user.token, body: { value: "curious" } });
    expect(put.status).toBe(200);
    const persona = (a: any) => a.memory_blocks.find((b: any) => b.label === "persona")?.value;
    expect(persona(await read(writer))).toBe("curious");
    await eventually(async () => persona(await read(reader)) === "curious");
  });

  test("a deleted agent is 404 on both gateways", async () => {
    expect((await writer.request("DELETE", `/v1/agents/${agentId}`, { token: user.token })).status).toBe(200);
    expect((await writer.request("GET", `/v1/agents/${agentId}`, { token: user.token })).status).toBe(404);
    await eventually(async () => (await reader.request("GET", `/v1/agents/${agentId}`, { token: user.token })).status === 404);
  });

  test("another organization never reads a cached agent", async () => {
    const other = await writer.signup();
    const mine = await writer.request("POST", "/v1/agents", { token: user.token, body: { name: "x", model: "m" } });
    await read(writer);
    expect((await writer.request("GET", `/v1/agents/${mine.body.id}`, { token: other.token })).status).toBe(404);
  });
}

describe("agent read cache on the embedded default", () =>
  cacheSuite(async () => {
    const t = await startTestProcess();
    return { writer: t, reader: t, stop: () => t.stop() };
  }));

await describeReal("agent read cache across two processes", () =>
  cacheSuite(async () => {
    const database = await createTestDatabase();
    const namespace = uniqueName("t");
    const writer = await startTestProcess({ real: true, keep: true, databaseUrl: database.url, namespace });
    const reader = await startTestProcess({ real: true, keep: true, databaseUrl: database.url, namespace });
    return {
      writer,
      reader,
      async stop() {
        await reader.stop();
        await writer.stop();
        await database.drop();
        await dropNatsNamespace(namespace);
        await dropRedisNamespace(namespace);
      },
    };
  }));
