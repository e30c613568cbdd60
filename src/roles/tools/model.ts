/** Route models of the tools role: the single source of truth for validation and OpenAPI. */
import { t } from "elysia";
import { Page, Timestamp } from "../../platform/http/models";

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
