/** The MCP executor in-process against the SDK test server: result mapping, the SSRF guard on every connection, bounds. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startMcpServer, type McpTestServer } from "../../../../test/support/mcp-server";
import { callMcpTool, listMcpTools, toToolResult } from "./mcp";

describe("mcp executor", () => {
  let mcp: McpTestServer;
  beforeAll(() => {
    mcp = startMcpServer();
  });
  afterAll(() => mcp.stop());

  test("content maps to the output: structured as is, one text (JSON parsed), several parts listed, media by reference, isError an error", () => {
    expect(toToolResult({ content: [{ type: "text", text: "x" }], structuredContent: { a: 1 } })).toEqual({ ok: true, output: { a: 1 } });
    expect(toToolResult({ content: [{ type: "text", text: '{"b": [1]}' }] })).toEqual({ ok: true, output: { b: [1] } });
    expect(toToolResult({ content: [{ type: "text", text: "{not json" }] })).toEqual({ ok: true, output: "{not json" });
    expect(toToolResult({ content: [] })).toEqual({ ok: true, output: null });
    expect(toToolResult({ content: [{ type: "text", text: "a" }, { type: "image", data: "AAAA", mimeType: "image/png" }, { type: "resource", resource: { uri: "file:///x", text: "t" } }] })).toEqual({
      ok: true,
      output: ["a", { type: "image", mime_type: "image/png", bytes: 3 }, { type: "resource", uri: "file:///x", text: "t" }],
    });
    expect(toToolResult({ content: [{ type: "text", text: "boom" }], isError: true })).toEqual({ ok: false, error: { code: "tool_error", message: "boom" } });
  });

  test("a name that resolves to loopback is refused on connect unless private targets are allowed (the server is never reached)", async () => {
    const port = new URL(mcp.url).port;
    const policy = { allowPrivate: false, resolve: async () => ["127.0.0.1"] };
    const before = mcp.hits["/mcp"] ?? 0;
    const listed = await listMcpTools({ url: `http://tools.example.com:${port}/mcp`, headers: {}, timeoutMs: 2000 }, policy);
    expect(listed).toMatchObject({ ok: false, error: { code: "target_refused" } });
    const called = await callMcpTool({ url: `http://tools.example.com:${port}/mcp`, headers: {}, timeoutMs: 2000 }, "echo", { text: "x" }, policy);
    expect(called).toMatchObject({ ok: false, error: { code: "target_refused" } });
    expect(mcp.hits["/mcp"] ?? 0).toBe(before);
    const allowed = await listMcpTools({ url: `http://tools.example.com:${port}/mcp`, headers: {}, timeoutMs: 2000 }, { ...policy, allowPrivate: true });
    expect(allowed.ok).toBe(true);
  });

  test("a closed port is target_unreachable without the cause; a hanging server is tool_timeout", async () => {
    const closed = await listMcpTools({ url: "http://127.0.0.1:1/mcp", headers: {}, timeoutMs: 2000 }, { allowPrivate: true });
    expect(closed).toMatchObject({ ok: false, error: { code: "target_unreachable" } });
    if (!closed.ok) expect(closed.error.message).not.toMatch(/ECONN/);
    const hung = await callMcpTool({ url: `${mcp.url}/hang`, headers: {}, timeoutMs: 500 }, "echo", {}, { allowPrivate: true });
    expect(hung).toMatchObject({ ok: false, error: { code: "tool_timeout" } });
  });
});
