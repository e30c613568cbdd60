/** Route models of the tools role: the single source of truth for validation and OpenAPI. */
import { t } from "elysia";
import { IdParam, Page, Timestamp } from "../../platform/http/models";

export const MIN_TIMEOUT_MS = 100;
export const MAX_TIMEOUT_MS = 120_000;
export const DEFAULT_TIMEOUT_MS = 10_000;
/** OpenAI's function-name rule, so every registered tool can be offered to any model. */
export const TOOL_NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$";

const JsonObject = t.Record(t.String(), t.Any());

export const ToolName = t.String({ pattern: TOOL_NAME_PATTERN, description: "Function name the model calls (letters, digits, _ -; unique in the organization)" });
export const Parameters = t.Record(t.String(), t.Any(), {
  description: "JSON Schema of the arguments (an object schema); validated at registration and before every call",
});
export const ToolConfig = t.Record(t.String(), t.Any(), {
  description: "Per kind: http {url, headers?}; nats {subject}; client {}",
});
export const TimeoutMs = t.Integer({ minimum: MIN_TIMEOUT_MS, maximum: MAX_TIMEOUT_MS, description: `Execution timeout in ms (${MIN_TIMEOUT_MS}-${MAX_TIMEOUT_MS})` });

export const CreateToolBody = t.Object({
  name: ToolName,
  description: t.Optional(t.String({ maxLength: 4000 })),
  parameters: t.Optional(Parameters),
  kind: t.String({ maxLength: 32, description: "http | nats | client" }),
  config: t.Optional(ToolConfig),
  requires_approval: t.Optional(t.Boolean({ description: "Pause the run in requires_action until a person approves each call" })),
  timeout_ms: t.Optional(TimeoutMs),
});

export const UpdateToolBody = t.Object({
  name: t.Optional(ToolName),
  description: t.Optional(t.String({ maxLength: 4000 })),
  parameters: t.Optional(Parameters),
  kind: t.Optional(t.String({ maxLength: 32 })),
  config: t.Optional(ToolConfig),
  requires_approval: t.Optional(t.Boolean()),
  timeout_ms: t.Optional(TimeoutMs),
});

export const Tool = t.Object({
  id: t.String(),
  name: t.String(),
  description: t.String(),
  parameters: JsonObject,
  kind: t.String(),
  config: JsonObject,
  requires_approval: t.Boolean(),
  timeout_ms: t.Integer(),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const CreatedTool = t.Composite([
  Tool,
  t.Object({ signing_secret: t.String({ description: "HMAC-SHA256 key of X-AgentOS-Signature on http calls. Shown once: store it now." }) }),
]);
export const ToolPage = Page(Tool);

export const BuiltinTool = t.Object({ id: t.String(), name: t.String(), description: t.String(), parameters: JsonObject, kind: t.Literal("builtin") });
export const BuiltinToolList = t.Object({ data: t.Array(BuiltinTool) });

export const ToolRefParam = t.Object({ id: t.String({ maxLength: 64, description: "Tool id (tool_…), or a builtin tool's name for invoke" }) });
export const DeleteToolQuery = t.Object({
  force: t.Optional(t.Boolean({ description: "Delete even if agents use it: the tool is removed from those agents" })),
});
export const DeletedTool = t.Object({ id: t.String(), deleted: t.Literal(true), detached_from: t.Integer({ description: "Agents the tool was removed from (force)" }) });

export const InvokeBody = t.Object({
  arguments: t.Optional(JsonObject),
  agent_id: t.Optional(t.String({ maxLength: 64, description: "Required for builtin memory tools: whose memory" })),
});
export const InvokeResult = t.Object({
  ok: t.Boolean(),
  output: t.Optional(t.Any()),
  error: t.Optional(t.Object({ code: t.String(), message: t.String() })),
  duration_ms: t.Number(),
});

export const DEFAULT_SECRET_GRACE_SECONDS = 24 * 3600;
export const MAX_SECRET_GRACE_SECONDS = 7 * 24 * 3600;
export const RotateSecretBody = t.Object({
  grace_seconds: t.Optional(t.Integer({ minimum: 0, maximum: MAX_SECRET_GRACE_SECONDS, description: `How long the old secret keeps signing calls beside the new one (0-${MAX_SECRET_GRACE_SECONDS}; default ${DEFAULT_SECRET_GRACE_SECONDS}, one day)` })),
});
export const RotatedSecret = t.Object({
  id: t.String(),
  signing_secret: t.String({ description: "The new HMAC-SHA256 key. Shown once: store it now." }),
  previous_secret_expires_at: t.Union([Timestamp, t.Null()], { description: "Until then calls carry a second v1= signature made with the old secret" }),
});

export type RotateSecretInput = typeof RotateSecretBody.static;
export type RotatedSecretOut = typeof RotatedSecret.static;
export type CreateToolInput = typeof CreateToolBody.static;
export type UpdateToolInput = typeof UpdateToolBody.static;
export type ToolOut = typeof Tool.static;
export type CreatedToolOut = typeof CreatedTool.static;
export type InvokeInput = typeof InvokeBody.static;

// ---- MCP servers ------------------------------------------------------------------------------

export const MCP_SERVER_NAME_PATTERN = "^[A-Za-z0-9_-]{1,32}$";
const McpToolNames = t.Array(t.String({ minLength: 1, maxLength: 128 }), { maxItems: 200, uniqueItems: true });
export const RequiresApproval = t.Union([t.Literal("all"), t.Literal("none"), McpToolNames], {
  description: "Which of the server's tools pause a run for approval: all, none, or a list of MCP tool names",
});
const McpHeaders = t.Record(t.String(), t.String(), { description: "Sent with every request (e.g. Authorization); stored encrypted (AES-256-GCM), never returned" });

export const CreateMcpServerBody = t.Object({
  name: t.String({ pattern: MCP_SERVER_NAME_PATTERN, description: "Unique in the organization; its tools are named <name>__<tool>" }),
  url: t.String({ minLength: 1, maxLength: 2048, description: "The server's Streamable HTTP endpoint (http or https)" }),
  headers: t.Optional(McpHeaders),
  allowed_tools: t.Optional(t.Union([McpToolNames, t.Null()], { description: "MCP tool names to register (default: every listed tool)" })),
  requires_approval: t.Optional(RequiresApproval),
  timeout_ms: t.Optional(TimeoutMs),
});
export const UpdateMcpServerBody = t.Object({
  name: t.Optional(t.String({ pattern: MCP_SERVER_NAME_PATTERN })),
  url: t.Optional(t.String({ minLength: 1, maxLength: 2048 })),
  headers: t.Optional(McpHeaders),
  allowed_tools: t.Optional(t.Union([McpToolNames, t.Null()])),
  requires_approval: t.Optional(RequiresApproval),
  timeout_ms: t.Optional(TimeoutMs),
});

export const McpServerTool = t.Object({
  id: t.String(),
  name: t.String({ description: "The tool's name in AgentOS: <server>__<mcp tool>" }),
  mcp_name: t.String({ description: "The tool's name on the MCP server" }),
  requires_approval: t.Boolean(),
});
export const McpServer = t.Object({
  id: t.String(),
  name: t.String(),
  url: t.String(),
  header_names: t.Array(t.String(), { description: "Names of the stored headers (their values are never returned)" }),
  allowed_tools: t.Union([t.Array(t.String()), t.Null()]),
  requires_approval: t.Union([t.Literal("all"), t.Literal("none"), t.Array(t.String())]),
  timeout_ms: t.Integer(),
  server_info: t.Union([JsonObject, t.Null()], { description: "name and version the server reported in initialize" }),
  tools: t.Array(McpServerTool),
  refreshed_at: t.Union([Timestamp, t.Null()]),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const McpServerSynced = t.Composite([
  McpServer,
  t.Object({ skipped: t.Array(t.Object({ name: t.String(), reason: t.String() }), { description: "Listed tools that were not registered, and why" }) }),
]);
export const McpServerPage = Page(McpServer);
export const McpServerParam = IdParam("mcp", "MCP server id (mcp_…)");
export const DeletedMcpServer = t.Object({ id: t.String(), deleted: t.Literal(true), tools_deleted: t.Integer(), detached_from: t.Integer({ description: "Agents its tools were removed from (force)" }) });

export type CreateMcpServerInput = typeof CreateMcpServerBody.static;
export type UpdateMcpServerInput = typeof UpdateMcpServerBody.static;
export type McpServerOut = typeof McpServer.static;
export type McpServerSyncedOut = typeof McpServerSynced.static;
