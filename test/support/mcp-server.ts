/**
 * A real MCP server for tests, built with the official SDK's server classes (`Server` +
 * the Web-standard Streamable HTTP transport, stateless: one server per request). One
 * behaviour per path:
 * - `/mcp`: tools `echo {text}` (text), `add {a, b}` (structured JSON), `fail` (isError),
 *   `huge` (10 MB of text), `slow` (answers after `slowMs`), `tuple` (a 2020-12 schema);
 * - `/auth`: the same, only with `Authorization: Bearer <token>`;
 * - `/hang`: accepts the connection and never answers;
 * - `/huge-list`: `tools/list` answers 10 MB.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";

export const MCP_TOKEN = "mcp-test-token-1234";
const TEN_MB = 10 * 1024 * 1024;

export const TEST_MCP_TOOLS = [
  { name: "echo", description: "Echo the text back", inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] } },
  { name: "add", description: "Add two numbers", inputSchema: { type: "object", properties: { a: { type: "number" }, b: { type: "number" } }, required: ["a", "b"] } },
  { name: "fail", description: "Always fails", inputSchema: { type: "object", properties: {} } },
  { name: "huge", description: "Answers 10 MB", inputSchema: { type: "object", properties: {} } },
  { name: "slow", description: "Answers late", inputSchema: { type: "object", properties: {} } },
  {
    name: "tuple",
    description: "A 2020-12 schema",
    inputSchema: { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: { point: { type: "array", prefixItems: [{ type: "number" }, { type: "number" }], items: false } }, required: ["point"] },
  },
];

export interface McpTestServer {
  url: string;
  /** Tool calls received: name, arguments and the request's authorization header. */
  calls: { name: string; arguments: unknown; authorization: string | null }[];
  /** Requests received per path (any method). */
  hits: Record<string, number>;
  slowMs: number;
  /** Tools listed on /mcp (tests change it to see a refresh). */
  tools: typeof TEST_MCP_TOOLS;
  stop(): void;
}

function mcpServer(state: McpTestServer, authorization: string | null, hugeList: boolean): Server {
  const server = new Server({ name: "agentos-test-mcp", version: "1.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => {
    if (hugeList) return { tools: [{ name: "big", description: "x".repeat(TEN_MB), inputSchema: { type: "object", properties: {} } }] };
    return { tools: state.tools };
  });
  server.setRequestHandler(CallToolRequestSchema, async (req): Promise<CallToolResult> => {
    const args = (req.params.arguments ?? {}) as Record<string, any>;
    state.calls.push({ name: req.params.name, arguments: args, authorization });
    switch (req.params.name) {
      case "echo":
        return { content: [{ type: "text", text: `echo: ${args.text}` }] };
      case "add":
        return { content: [{ type: "text", text: JSON.stringify({ sum: args.a + args.b }) }], structuredContent: { sum: args.a + args.b } };
      case "fail":
        return { content: [{ type: "text", text: "the backend is down" }], isError: true };
      case "huge":
        return { content: [{ type: "text", text: "y".repeat(TEN_MB) }] };
      case "slow":
        await Bun.sleep(state.slowMs);
        return { content: [{ type: "text", text: "late" }] };
      case "tuple":
        return { content: [{ type: "text", text: `point ${JSON.stringify(args.point)}` }] };
    }
    return { content: [{ type: "text", text: `unknown tool ${req.params.name}` }], isError: true };
  });
  return server;
}

async function serveMcp(state: McpTestServer, req: Request, authorization: string | null, hugeList: boolean): Promise<Response> {
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  await mcpServer(state, authorization, hugeList).connect(transport);
  return transport.handleRequest(req);
}

/** Answers `req` as `/mcp` does, for a test server of another kind that must also speak MCP (the fuzz sink). */
export function answerMcp(req: Request): Promise<Response> {
  const state: McpTestServer = { url: "", calls: [], hits: {}, slowMs: 0, tools: [...TEST_MCP_TOOLS], stop: () => {} };
  return serveMcp(state, req, req.headers.get("authorization"), false);
}

/** MCP clients accept both JSON and SSE answers; webhooks and http tools do not ask for SSE. */
export const isMcpRequest = (req: Request) => (req.headers.get("accept") ?? "").includes("text/event-stream");

export function startMcpServer(): McpTestServer {
  const state: McpTestServer = { url: "", calls: [], hits: {}, slowMs: 5000, tools: [...TEST_MCP_TOOLS], stop: () => http.stop(true) };
  const http = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      state.hits[path] = (state.hits[path] ?? 0) + 1;
      if (path === "/hang") return new Promise<Response>(() => {}); // never answers
      const authorization = req.headers.get("authorization");
      if (path === "/auth" && authorization !== `Bearer ${MCP_TOKEN}`) return Response.json({ error: "unauthorized" }, { status: 401 });
      if (path !== "/mcp" && path !== "/auth" && path !== "/huge-list") return new Response("not found", { status: 404 });
      return serveMcp(state, req, authorization, path === "/huge-list");
    },
  });
  state.url = `http://127.0.0.1:${http.port}`;
  return state;
}
