/**
 * AgentOS as an MCP server: `POST /v1/mcp` speaks MCP's Streamable HTTP (stateless: one SDK
 * `Server` per request, answers as an SSE stream) to any client holding an API key or access
 * token. Each agent of the caller's organization is a tool `ask_<agent name>` taking
 * `{input, thread_id?}`: a call starts a run (in a new thread unless `thread_id` continues
 * one), streams its progress — model text as it arrives (the run streams when the client sent
 * a progress token), each tool call — as MCP progress notifications, and returns the run's
 * final answer.
 */
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { Elysia, t } from "elysia";
import { AppError } from "../../platform/errors";
import type { AuthGuard } from "../../platform/http/auth-guard";
import { errors } from "../../platform/http/models";
import type { Principal } from "../../platform/principal";
import { VERSION } from "../../version";
import type { RunEventOut } from "../../runs";
import type { AppPlatform } from "../clients";
import type { AgentOut } from "./model";
import { followRun } from "./live";

/** The longest a call waits for its run; past it the answer says where to follow the run. */
export const MAX_ASK_SECONDS = 600;
/** Agents listed as tools at most (pages of 100). */
const MAX_AGENT_TOOLS = 1000;

const ASK_INPUT = {
  type: "object",
  properties: {
    input: { type: "string", minLength: 1, maxLength: 200_000, description: "The message to the agent" },
    thread_id: { type: "string", description: "Continue this thread (thr_…); default: a new thread" },
  },
  required: ["input"],
  additionalProperties: false,
} as const;
const ASK_OUTPUT = {
  type: "object",
  properties: { answer: { type: "string" }, run_id: { type: "string" }, thread_id: { type: "string" }, status: { type: "string" } },
  required: ["answer", "run_id", "thread_id", "status"],
} as const;

/** `ask_<name>` in MCP's tool-name alphabet; a name two agents share gets the end of each id. */
function toolNames(agents: AgentOut[]): Map<string, AgentOut> {
  const base = (a: AgentOut) => `ask_${a.name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 100)}`;
  const counts = new Map<string, number>();
  for (const a of agents) counts.set(base(a), (counts.get(base(a)) ?? 0) + 1);
  return new Map(agents.map((a) => [counts.get(base(a))! > 1 ? `${base(a)}_${a.id.slice(-8).toLowerCase()}` : base(a), a]));
}

async function organizationAgents(p: AppPlatform, orgId: string): Promise<AgentOut[]> {
  const out: AgentOut[] = [];
  let after: string | undefined;
  do {
    const page = await p.clients.agents.listAgents(orgId, { limit: 100, after });
    out.push(...page.data);
    after = page.has_more ? (page.next_cursor ?? undefined) : undefined;
  } while (after && out.length < MAX_AGENT_TOOLS);
  return out;
}

const errorResult = (text: string): CallToolResult => ({ content: [{ type: "text", text }], isError: true });

/** The text of one event worth telling the client while it waits. */
function progressText(e: RunEventOut): string | null {
  const data = e.data as Record<string, any>;
  if (e.type === "message.delta" && typeof data?.delta === "string") return data.delta;
  if (e.type === "tool_call.created") return `calling ${data?.name ?? "a tool"}`;
  if (e.type === "tool_call.completed") return `${data?.name ?? "a tool"} ${data?.ok === false ? "failed" : "answered"}`;
  if (e.type === "run.in_progress") return "started";
  return null;
}

/** The MCP SDK's server (≈ 7 MiB of RSS), imported by the first /v1/mcp request rather than at the gateway's start. */
let mcpSdk: Promise<[typeof import("@modelcontextprotocol/sdk/server/index.js"), typeof import("@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"), typeof import("@modelcontextprotocol/sdk/types.js")]> | undefined;
const loadMcpSdk = () => (mcpSdk ??= Promise.all([import("@modelcontextprotocol/sdk/server/index.js"), import("@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"), import("@modelcontextprotocol/sdk/types.js")]));

async function mcpServerFor(p: AppPlatform, principal: Principal): Promise<Server> {
  const [{ Server }, , { CallToolRequestSchema, ListToolsRequestSchema }] = await loadMcpSdk();
  const server = new Server({ name: "agentos", version: VERSION }, { capabilities: { tools: {} }, instructions: "Each tool asks one AgentOS agent; pass thread_id to continue a conversation." });
  server.setRequestHandler(ListToolsRequestSchema, async () => {
    const tools: Tool[] = [...toolNames(await organizationAgents(p, principal.orgId))].map(([name, a]) => ({
      name,
      title: a.name,
      description: `Ask the AgentOS agent '${a.name}' (${a.id}, model ${a.model}); returns its final answer.${a.instructions ? ` Its instructions: ${a.instructions.slice(0, 300)}` : ""}`,
      inputSchema: ASK_INPUT as unknown as Tool["inputSchema"],
      outputSchema: ASK_OUTPUT as unknown as Tool["outputSchema"],
    }));
    return { tools };
  });
  server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
    const agent = toolNames(await organizationAgents(p, principal.orgId)).get(req.params.name);
    if (!agent) return errorResult(`No agent is exposed as '${req.params.name}': list the tools again.`);
    const args = (req.params.arguments ?? {}) as { input?: unknown; thread_id?: unknown };
    if (typeof args.input !== "string" || args.input.length === 0) return errorResult("`input` must be a non-empty string.");
    if (args.thread_id !== undefined && typeof args.thread_id !== "string") return errorResult("`thread_id` must be a thread id (thr_…).");
    const token = req.params._meta?.progressToken;
    let progress = 0;
    try {
      const threadId = (args.thread_id as string | undefined) ?? (await p.clients.agents.createThread(principal.orgId, { metadata: { source: "mcp" } })).body.id;
      const run = (await p.clients.agents.createRun(principal.orgId, threadId, { agent_id: agent.id, input: args.input, stream: token !== undefined, metadata: { source: "mcp" } })).body;
      const done = await followRun(
        p, principal.orgId, run.id,
        async (e) => {
          const message = token === undefined ? null : progressText(e);
          if (message !== null) await extra.sendNotification({ method: "notifications/progress", params: { progressToken: token!, progress: ++progress, message } }).catch(() => {});
        },
        MAX_ASK_SECONDS, extra.signal,
      );
      const meta = { run_id: done.id, thread_id: threadId, status: done.status };
      if (done.status === "completed") {
        const answer = await finalAnswer(p, principal.orgId, threadId, done.id);
        return { content: [{ type: "text", text: answer }], structuredContent: { answer, ...meta } };
      }
      if (done.status === "requires_action") return errorResult(`The run ${done.id} waits for approval or client tool outputs (POST /v1/runs/${done.id}/tool_outputs); it is not answered here.`);
      if (done.status === "failed" || done.status === "cancelled" || done.status === "expired") return errorResult(`The run ${done.id} ${done.status}${done.last_error ? `: ${done.last_error.message}` : ""}.`);
      return errorResult(`The run ${done.id} is still ${done.status} after ${MAX_ASK_SECONDS} s; follow it with GET /v1/runs/${done.id}/events.`);
    } catch (err) {
      if (err instanceof AppError) return errorResult(`${err.code}: ${err.message}`);
      throw err;
    }
  });
  return server;
}

/** The run's last assistant message with text. */
async function finalAnswer(p: AppPlatform, orgId: string, threadId: string, runId: string): Promise<string> {
  const page = await p.clients.agents.listMessages(orgId, threadId, { limit: 100, order: "desc" });
  const last = page.data.find((m) => m.run_id === runId && m.role === "assistant" && m.content);
  return last?.content ?? "";
}

async function transportMessage(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    if (typeof message === "string") return message.slice(0, 500);
  } catch {
    /* not JSON */
  }
  return `The MCP request was refused (HTTP ${response.status}).`;
}

/** One JSON-RPC 2.0 message (MCP 2025-06-18 has no batches): a request, a notification or a response. */
const JsonRpcMessage = t.Object(
  {
    jsonrpc: t.Literal("2.0"),
    id: t.Optional(t.Union([t.String({ maxLength: 256 }), t.Integer()])),
    method: t.Optional(t.String({ maxLength: 256 })),
    params: t.Optional(t.Record(t.String(), t.Any())),
    result: t.Optional(t.Any()),
    error: t.Optional(t.Any()),
  },
  { description: "A JSON-RPC message of the Model Context Protocol" },
);

export function mcpEndpointController(p: AppPlatform, guard: AuthGuard) {
  return new Elysia({ name: "mcp-endpoint" }).use(guard.plugin).post(
    "/mcp",
    async ({ principal, request, body }) => {
      const [, { WebStandardStreamableHTTPServerTransport }] = await loadMcpSdk();
      const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      await (await mcpServerFor(p, principal)).connect(transport);
      const response = await transport.handleRequest(request, { parsedBody: body });
      if (response.status < 400) return response;
      // The transport's refusals (406 without Accept: text/event-stream, 400 for a message it
      // cannot take) carry a JSON-RPC error: answered in the API's error shape, with its words.
      throw new AppError(response.status, "mcp_request_refused", await transportMessage(response));
    },
    {
      auth: true,
      body: JsonRpcMessage,
      response: errors(400, 401, 406),
      detail: {
        tags: ["mcp"],
        summary: "MCP (Streamable HTTP, stateless): the organization's agents as tools ask_<agent> {input, thread_id?} → the run's final answer, progress as notifications",
        responses: {
          200: { description: "text/event-stream of JSON-RPC messages (progress notifications, then the result), or JSON", content: { "text/event-stream": { schema: { type: "string" } } } },
          202: { description: "A notification or response was accepted" },
        },
      },
    },
  );
}
