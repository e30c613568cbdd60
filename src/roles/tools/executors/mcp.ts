/**
 * `mcp` tools: remote MCP servers over Streamable HTTP, through the official SDK client.
 * Every exchange is one short session — `initialize`, then `tools/list` (registration and
 * refresh) or `tools/call` (a tool call) — bounded as a whole by the server's timeout and by a
 * byte budget on everything the server sends, so a server that hangs or answers 10 MB costs
 * at most the timeout and the budget. The SDK's fetch is replaced by the SSRF guard's
 * (platform/net/outbound): every connection goes to a checked public address, no redirects,
 * and no standalone GET stream (a one-shot session needs no server-initiated messages).
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult, Tool as McpListedTool } from "@modelcontextprotocol/sdk/types.js";
import { OutboundError, outboundFetch, type OutboundPolicy } from "../../../platform/net/outbound";
import { VERSION } from "../../../version";
import type { ToolCallResult } from "../contract";
import { nestsDeeperThan } from "./http";

/** What `tools/list` may send in all (every page), and a tool call's reply. */
export const MAX_LIST_BYTES = 2 * 1024 * 1024;
export const MAX_CALL_BYTES = 1024 * 1024;
/** Tools registered from one server at most; pages of `tools/list` followed at most. */
export const MAX_MCP_TOOLS = 200;
const MAX_LIST_PAGES = 20;
const ERROR_EXCERPT_CHARS = 500;
const MAX_PARSED_DEPTH = 64;

export interface McpTarget {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

export type McpFailure = { code: "tool_timeout" | "tool_response_too_large" | "target_refused" | "target_unreachable" | "mcp_error"; message: string; detail?: unknown };

class BudgetExceeded extends Error {}

/** One bounded session: its abort signal, its byte budget, and why it failed (set by the fetch). */
class Session {
  readonly controller = new AbortController();
  used = 0;
  overBudget = false;
  outboundError: OutboundError | undefined;
  private timer: ReturnType<typeof setTimeout>;
  timedOut = false;

  constructor(readonly target: McpTarget, readonly budget: number, private policy: OutboundPolicy) {
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, target.timeoutMs);
  }

  /** The SDK's fetch: the SSRF guard's, no GET stream, every body counted against the budget. */
  readonly fetch = async (input: string | URL, init?: RequestInit): Promise<Response> => {
    const method = init?.method ?? "GET";
    if (method === "GET") return new Response(null, { status: 405 });
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
    const signal = init?.signal ? AbortSignal.any([this.controller.signal, init.signal]) : this.controller.signal;
    let response: Response;
    try {
      ({ response } = await outboundFetch(input, { method, headers, body: typeof init?.body === "string" ? init.body : undefined, signal }, this.policy));
    } catch (err) {
      if (err instanceof OutboundError) this.outboundError = err;
      throw err;
    }
    const declared = Number(response.headers.get("content-length") ?? "NaN");
    if (Number.isFinite(declared) && this.used + declared > this.budget) {
      await response.body?.cancel().catch(() => {});
      throw this.exceed();
    }
    if (!response.body) return response;
    const session = this;
    const counted = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, out) {
          session.used += chunk.byteLength;
          if (session.used > session.budget) out.error(session.exceed());
          else out.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, { status: response.status, statusText: response.statusText, headers: response.headers });
  };

  private exceed(): BudgetExceeded {
    this.overBudget = true;
    this.controller.abort(); // stops reading (the server stops sending) and fails the pending request at once
    return new BudgetExceeded();
  }

  /** Connects, runs `work`, and always closes the session. */
  async run<T>(work: (client: Client, opts: { signal: AbortSignal; timeout: number }) => Promise<T>): Promise<T> {
    const { Client, StreamableHTTPClientTransport } = await loadMcpSdk();
    const client = new Client({ name: "agentos", version: VERSION }, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(new URL(this.target.url), { fetch: this.fetch, requestInit: { headers: this.target.headers } });
    const opts = { signal: this.controller.signal, timeout: this.target.timeoutMs };
    try {
      await client.connect(transport, opts);
      return await work(client, opts);
    } finally {
      clearTimeout(this.timer);
      await client.close().catch(() => {});
    }
  }

  /** Why the session failed, in words the tenant may see (an internal server's words never are). */
  failure(err: unknown, what: string): McpFailure {
    const host = new URL(this.target.url).host;
    if (this.overBudget) return { code: "tool_response_too_large", message: `The MCP server's ${what} reply is larger than ${this.budget} bytes.` };
    if (this.timedOut) return { code: "tool_timeout", message: `The MCP server did not answer ${what} within ${this.target.timeoutMs} ms.` };
    if (this.outboundError) return { code: this.outboundError.code, message: this.outboundError.message, detail: this.outboundError.detail };
    if (mcpSdk && err instanceof mcpSdk.McpError) return { code: "mcp_error", message: `The MCP server refused ${what}: ${excerpt(err.message)}`, detail: err };
    const status = (err as { code?: unknown })?.code;
    if (typeof status === "number" && status >= 400 && status < 600) return { code: "mcp_error", message: `The MCP server at ${host} answered HTTP ${status} to ${what}.`, detail: err };
    return { code: "target_unreachable", message: `Could not reach ${host}: the connection failed or the reply was not MCP.`, detail: err };
  }
}

/** The MCP SDK's client (≈ 7 MiB of RSS), imported by the first MCP call rather than at the tools role's start. */
let mcpSdk: { Client: typeof Client; StreamableHTTPClientTransport: typeof import("@modelcontextprotocol/sdk/client/streamableHttp.js").StreamableHTTPClientTransport; McpError: typeof import("@modelcontextprotocol/sdk/types.js").McpError } | undefined;
async function loadMcpSdk() {
  if (!mcpSdk) {
    const [client, transport, types] = await Promise.all([import("@modelcontextprotocol/sdk/client/index.js"), import("@modelcontextprotocol/sdk/client/streamableHttp.js"), import("@modelcontextprotocol/sdk/types.js")]);
    mcpSdk = { Client: client.Client, StreamableHTTPClientTransport: transport.StreamableHTTPClientTransport, McpError: types.McpError };
  }
  return mcpSdk;
}

const excerpt = (text: string) => (text.length > ERROR_EXCERPT_CHARS ? `${text.slice(0, ERROR_EXCERPT_CHARS)}…` : text);

export interface McpListing {
  serverInfo: Record<string, unknown> | null;
  tools: McpListedTool[];
}

/** `initialize` + `tools/list` (every page, at most MAX_MCP_TOOLS tools), bounded; a failure is returned, never thrown. */
export async function listMcpTools(target: McpTarget, policy: OutboundPolicy): Promise<{ ok: true; listing: McpListing } | { ok: false; error: McpFailure }> {
  const session = new Session(target, MAX_LIST_BYTES, policy);
  try {
    const listing = await session.run(async (client, opts) => {
      const tools: McpListedTool[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < MAX_LIST_PAGES && tools.length < MAX_MCP_TOOLS; page++) {
        const res = await client.listTools(cursor ? { cursor } : undefined, opts);
        tools.push(...res.tools);
        cursor = res.nextCursor;
        if (!cursor) break;
      }
      const info = client.getServerVersion();
      return { serverInfo: info ? { name: info.name, version: info.version } : null, tools: tools.slice(0, MAX_MCP_TOOLS) };
    });
    return { ok: true, listing };
  } catch (err) {
    return { ok: false, error: session.failure(err, "tools/list") };
  }
}

/** `initialize` + `tools/call`; the result content becomes the tool output, `isError` an error result. */
export async function callMcpTool(target: McpTarget, tool: string, args: Record<string, unknown>, policy: OutboundPolicy, onUnreachable?: (detail: unknown) => void): Promise<ToolCallResult> {
  const session = new Session(target, MAX_CALL_BYTES, policy);
  try {
    const result = (await session.run((client, opts) => client.callTool({ name: tool, arguments: args }, undefined, opts))) as CallToolResult;
    return toToolResult(result);
  } catch (err) {
    const failure = session.failure(err, `tools/call ${tool}`);
    if (failure.code === "target_unreachable") onUnreachable?.(failure.detail);
    return { ok: false, error: { code: failure.code, message: failure.message } };
  }
}

/** Text as text (JSON text parsed), structured content as it is; images, audio and resources by reference, not inline. */
export function toToolResult(result: CallToolResult): ToolCallResult {
  const parts = (result.content ?? []).map(contentPart);
  if (result.isError) {
    const text = parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join("\n");
    return { ok: false, error: { code: "tool_error", message: excerpt(text || "The MCP tool reported an error.") } };
  }
  if (result.structuredContent !== undefined) return { ok: true, output: result.structuredContent };
  if (parts.length === 0) return { ok: true, output: null };
  if (parts.length === 1 && typeof parts[0] === "string") return { ok: true, output: parseText(parts[0]) };
  return { ok: true, output: parts };
}

function contentPart(c: CallToolResult["content"][number]): unknown {
  switch (c.type) {
    case "text":
      return c.text;
    case "image":
    case "audio":
      return { type: c.type, mime_type: c.mimeType, bytes: Math.floor((c.data.length * 3) / 4) };
    case "resource":
      return "text" in c.resource ? { type: "resource", uri: c.resource.uri, text: c.resource.text } : { type: "resource", uri: c.resource.uri, mime_type: c.resource.mimeType };
    case "resource_link":
      return { type: "resource_link", uri: c.uri, name: c.name };
    default:
      return { type: (c as { type: string }).type };
  }
}

function parseText(text: string): unknown {
  const t = text.trim();
  if (!(t.startsWith("{") || t.startsWith("[")) || nestsDeeperThan(t, MAX_PARSED_DEPTH)) return text;
  try {
    return JSON.parse(t);
  } catch {
    return text;
  }
}
