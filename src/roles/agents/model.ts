/** Route models of the agents role (agents, threads, messages, runs): validation + OpenAPI. */
import { t } from "elysia";
import { Enum, Metadata, metadataOf, Page, Timestamp } from "../../platform/http/models";
// Agent creation takes core memory blocks in the memory role's shape.
import { MemoryBlockIn } from "../memory/model";
import { SamplingFields, ThreadMessage, ToolCallView } from "../../runs";

export const DEFAULT_CONTEXT_WINDOW = 8192;
export const DEFAULT_MAX_STEPS = 10;
const ContextStrategy = Enum(["truncate", "summarize"], {
  description: "When the history outgrows context_window: truncate drops the oldest messages (default); summarize folds them into a kept, metered summary",
});
const MemoryBlockView = t.Object({ label: t.String(), value: t.String(), limit: t.Integer() });

const ToolRefs = t.Array(t.String({ minLength: 1, maxLength: 64 }), { maxItems: 64, description: "Tool ids (tool_…) or builtin tool names" });

export const CreateAgentBody = t.Object({
  name: t.String({ minLength: 1, maxLength: 200 }),
  model: t.String({ minLength: 1, maxLength: 200, description: "Model name sent to the OpenAI-compatible API" }),
  instructions: t.Optional(t.String({ maxLength: 100_000 })),
  tools: t.Optional(ToolRefs),
  memory_blocks: t.Optional(t.Array(MemoryBlockIn, { maxItems: 32 })),
  context_window: t.Optional(t.Integer({ minimum: 256, maximum: 2_000_000, description: `Prompt budget in tokens (default ${DEFAULT_CONTEXT_WINDOW})` })),
  max_steps: t.Optional(t.Integer({ minimum: 1, maximum: 100, description: `Model calls per run (default ${DEFAULT_MAX_STEPS})` })),
  ...SamplingFields,
  context_strategy: t.Optional(ContextStrategy),
  metadata: t.Optional(Metadata),
});
export const UpdateAgentBody = t.Object({
  name: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
  model: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
  instructions: t.Optional(t.String({ maxLength: 100_000 })),
  tools: t.Optional(ToolRefs),
  context_window: t.Optional(t.Integer({ minimum: 256, maximum: 2_000_000 })),
  max_steps: t.Optional(t.Integer({ minimum: 1, maximum: 100 })),
  /** null clears a sampling default (the model's own applies again). */
  temperature: t.Optional(t.Nullable(SamplingFields.temperature)),
  top_p: t.Optional(t.Nullable(SamplingFields.top_p)),
  max_output_tokens: t.Optional(t.Nullable(SamplingFields.max_output_tokens)),
  context_strategy: t.Optional(ContextStrategy),
  metadata: t.Optional(Metadata),
});
export const Agent = t.Object({
  id: t.String(),
  object: t.Literal("agent"),
  name: t.String(),
  model: t.String(),
  instructions: t.String(),
  tools: t.Array(t.String()),
  memory_blocks: t.Array(MemoryBlockView),
  context_window: t.Integer(),
  max_steps: t.Integer(),
  temperature: t.Nullable(t.Number()),
  top_p: t.Nullable(t.Number()),
  max_output_tokens: t.Nullable(t.Integer()),
  context_strategy: ContextStrategy,
  metadata: t.Record(t.String(), t.Any()),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const AgentPage = Page(Agent);

export const CreateThreadBody = t.Object({ metadata: t.Optional(Metadata) });
// No default: a PATCH without metadata changes nothing (a default would wipe it).
export const UpdateThreadBody = t.Object({ metadata: t.Optional(metadataOf({ description: "Replaces the thread's metadata." })) });
export const Thread = t.Object({ id: t.String(), object: t.Literal("thread"), metadata: t.Record(t.String(), t.Any()), created_at: Timestamp, updated_at: Timestamp });
export const ThreadPage = Page(Thread);

export const CreateMessageBody = ThreadMessage;
export const Message = t.Object({
  id: t.String(),
  object: t.Literal("message"),
  thread_id: t.String(),
  role: t.String(),
  content: t.Nullable(t.String()),
  tool_calls: t.Nullable(t.Array(ToolCallView)),
  tool_call_id: t.Nullable(t.String()),
  run_id: t.Nullable(t.String()),
  parsed: t.Nullable(t.Any({ description: "The final answer of a run with a JSON response_format, parsed and validated" })),
  metadata: t.Record(t.String(), t.Any()),
  created_at: Timestamp,
});
export const MessagePage = Page(Message);

export type CreateAgentInput = typeof CreateAgentBody.static;
export type UpdateAgentInput = typeof UpdateAgentBody.static;
export type AgentOut = typeof Agent.static;
export type ThreadOut = typeof Thread.static;
export type UpdateThreadInput = typeof UpdateThreadBody.static;
export type CreateMessageInput = typeof CreateMessageBody.static;
export type MessageOut = typeof Message.static;

// ---- model providers (/v1/providers) --------------------------------------------------------

/** A provider name is the prefix of `model: "<provider>/<model>"`. */
export const PROVIDER_NAME_PATTERN = "^[a-z0-9][a-z0-9_-]{0,39}$";

export const CreateProviderBody = t.Object({
  name: t.String({ pattern: PROVIDER_NAME_PATTERN, description: "Lower-case name (letters, digits, _ -); agents use it as `model: \"<name>/<model>\"`" }),
  base_url: t.String({ format: "uri", maxLength: 2000, description: "OpenAI-compatible API base URL (…/v1): /chat/completions is appended" }),
  api_key: t.Optional(t.String({ minLength: 1, maxLength: 4000, description: "Sent as `Authorization: Bearer`; stored encrypted, never returned" })),
  models: t.Optional(t.Array(t.String({ minLength: 1, maxLength: 200 }), { maxItems: 200, uniqueItems: true, description: "Models it serves; an agent naming another is refused (422). Omitted: any" })),
});
export const Provider = t.Object({
  id: t.String(),
  name: t.String(),
  base_url: t.String(),
  has_api_key: t.Boolean({ description: "Whether a key is stored (the key itself is never returned)" }),
  models: t.Union([t.Array(t.String()), t.Null()]),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const ProviderPage = Page(Provider);
export const ProviderDeleted = t.Object({ id: t.String(), object: t.Literal("provider"), deleted: t.Literal(true) });

export type CreateProviderInput = typeof CreateProviderBody.static;
export type ProviderOut = typeof Provider.static;
