/**
 * Per-run options: what a run create may override of its agent for this run only (model,
 * instructions, tools, sampling, limits, tool_choice), how its final answer must be shaped
 * (response_format) and whether tool calls of one turn run at once (parallel_tool_calls).
 * The TypeBox models are the single source of the create body, the run view and the type
 * persisted in `runs.options`; `effectiveOptions` folds them over the agent's settings and
 * `modelParams` turns the result into the OpenAI chat-completions request fields.
 */
import { t } from "elysia";
import { badRequest, unprocessable } from "../platform/errors";
import type { ModelParams } from "../platform/model/types";

export const ToolChoice = t.Union(
  [
    t.Union([t.Literal("auto"), t.Literal("none"), t.Literal("required")]),
    t.Object({ type: t.Literal("function"), function: t.Object({ name: t.String({ minLength: 1, maxLength: 64 }) }) }),
  ],
  { description: "auto (the model decides), none (no tool calls), required (at least one), or {type:'function', function:{name}} (that tool). Applies until the run's first tool call; later turns are auto." },
);
export type ToolChoice = typeof ToolChoice.static;

export const ResponseFormat = t.Union(
  [
    t.Object({ type: t.Literal("text") }),
    t.Object({ type: t.Literal("json_object") }),
    t.Object({
      type: t.Literal("json_schema"),
      json_schema: t.Object({
        name: t.String({ minLength: 1, maxLength: 64, pattern: "^[a-zA-Z0-9_-]+$" }),
        description: t.Optional(t.String({ maxLength: 2000 })),
        schema: t.Record(t.String(), t.Any(), { description: "A JSON Schema (draft-07) with type: object, validated like tool parameters" }),
        strict: t.Optional(t.Boolean({ default: true })),
      }),
    }),
  ],
  { description: "Shape of the final answer: text (default), json_object (any JSON object) or json_schema (validated; one corrective turn, then failed/invalid_output)" },
);
export type ResponseFormat = typeof ResponseFormat.static;

/** Sampling defaults an agent carries and a run may override. */
export const SamplingFields = {
  temperature: t.Optional(t.Number({ minimum: 0, maximum: 2 })),
  top_p: t.Optional(t.Number({ minimum: 0, maximum: 1 })),
  max_output_tokens: t.Optional(t.Integer({ minimum: 1, maximum: 1_000_000, description: "Upper bound of tokens the model generates per call (sent as max_tokens)" })),
};

/** The create-run fields of this module (spread into CreateRunBody). */
export const RunOptionFields = {
  model: t.Optional(t.String({ minLength: 1, maxLength: 200, description: "Model for this run instead of the agent's" })),
  instructions: t.Optional(t.String({ maxLength: 100_000, description: "Replaces the agent's instructions for this run" })),
  additional_instructions: t.Optional(t.String({ maxLength: 100_000, description: "Appended to the (agent's or overridden) instructions for this run" })),
  tools: t.Optional(t.Array(t.String({ minLength: 1, maxLength: 64 }), { maxItems: 64, description: "Replaces the agent's tools for this run: tool ids (tool_…) or builtin names of the organization" })),
  ...SamplingFields,
  max_steps: t.Optional(t.Integer({ minimum: 1, maximum: 100, description: "Model calls this run may make instead of the agent's max_steps" })),
  max_tool_calls: t.Optional(t.Integer({ minimum: 0, maximum: 1000, description: "Tool calls this run may make in total; past it the model is asked to answer (tool_choice none)" })),
  tool_choice: t.Optional(ToolChoice),
  response_format: t.Optional(ResponseFormat),
  parallel_tool_calls: t.Optional(t.Boolean({ default: true, description: "Several tool calls of one model turn run at once (false: the model is told so, and calls run one after the other)" })),
};
const RunOptionsModel = t.Object(RunOptionFields);
/** What a run persists in `runs.options` (the model override lives in `runs.model`). */
export type RunOptions = Omit<typeof RunOptionsModel.static, "model">;

/** The options as GET /v1/runs/:id shows them: null = the agent's setting applies. */
export const RunOptionsView = t.Object({
  instructions: t.Nullable(t.String()),
  additional_instructions: t.Nullable(t.String()),
  tools: t.Nullable(t.Array(t.String())),
  temperature: t.Nullable(t.Number()),
  top_p: t.Nullable(t.Number()),
  max_output_tokens: t.Nullable(t.Integer()),
  max_steps: t.Nullable(t.Integer()),
  max_tool_calls: t.Nullable(t.Integer()),
  tool_choice: t.Nullable(ToolChoice),
  response_format: t.Nullable(ResponseFormat),
  parallel_tool_calls: t.Boolean(),
});
export type RunOptionsView = typeof RunOptionsView.static;

const OPTION_KEYS = ["instructions", "additional_instructions", "tools", "temperature", "top_p", "max_output_tokens", "max_steps", "max_tool_calls", "tool_choice", "response_format", "parallel_tool_calls"] as const;

/** The options of a create body (undefined fields left out), as persisted. */
export function runOptionsOf(input: Partial<RunOptions>): RunOptions {
  const out: Record<string, unknown> = {};
  for (const k of OPTION_KEYS) if (input[k] !== undefined) out[k] = input[k];
  return out as RunOptions;
}

export function runOptionsView(o: RunOptions | null | undefined): RunOptionsView {
  const v = o ?? {};
  return {
    instructions: v.instructions ?? null,
    additional_instructions: v.additional_instructions ?? null,
    tools: v.tools ?? null,
    temperature: v.temperature ?? null,
    top_p: v.top_p ?? null,
    max_output_tokens: v.max_output_tokens ?? null,
    max_steps: v.max_steps ?? null,
    max_tool_calls: v.max_tool_calls ?? null,
    tool_choice: v.tool_choice ?? null,
    response_format: v.response_format ?? null,
    parallel_tool_calls: v.parallel_tool_calls ?? true,
  };
}

/** The agent's settings a run may override. */
export interface AgentDefaults {
  instructions: string;
  tools: string[];
  maxSteps: number;
  temperature: number | null;
  topP: number | null;
  maxOutputTokens: number | null;
}

/** What the run loop executes with: the run's options over the agent's settings. */
export interface EffectiveOptions {
  instructions: string;
  toolRefs: string[];
  maxSteps: number;
  maxToolCalls: number | null;
  temperature: number | null;
  topP: number | null;
  maxOutputTokens: number | null;
  toolChoice: ToolChoice | null;
  /** A JSON format (text is the same as none). */
  responseFormat: JsonResponseFormat | null;
  parallelToolCalls: boolean;
}
export type JsonResponseFormat = Exclude<ResponseFormat, { type: "text" }>;

export function effectiveOptions(agent: AgentDefaults, o: RunOptions | null | undefined): EffectiveOptions {
  const v = o ?? {};
  const base = v.instructions ?? agent.instructions;
  return {
    instructions: v.additional_instructions ? (base ? `${base}\n\n${v.additional_instructions}` : v.additional_instructions) : base,
    toolRefs: v.tools ?? agent.tools,
    maxSteps: v.max_steps ?? agent.maxSteps,
    maxToolCalls: v.max_tool_calls ?? null,
    temperature: v.temperature ?? agent.temperature,
    topP: v.top_p ?? agent.topP,
    maxOutputTokens: v.max_output_tokens ?? agent.maxOutputTokens,
    toolChoice: v.tool_choice ?? null,
    responseFormat: v.response_format && v.response_format.type !== "text" ? (v.response_format as JsonResponseFormat) : null,
    parallelToolCalls: v.parallel_tool_calls ?? true,
  };
}


/**
 * `hasTools`: the call lists tools (tool_choice and parallel_tool_calls are refused by
 * OpenAI without them). `toolChoice`: the choice for this call (see the loop's rule).
 */
export function modelParams(e: EffectiveOptions, call: { hasTools: boolean; toolChoice: ToolChoice | null }): ModelParams {
  const p: ModelParams = {};
  if (e.temperature !== null) p.temperature = e.temperature;
  if (e.topP !== null) p.top_p = e.topP;
  if (e.maxOutputTokens !== null) p.max_tokens = e.maxOutputTokens;
  if (call.hasTools) {
    if (call.toolChoice) p.tool_choice = call.toolChoice;
    if (!e.parallelToolCalls) p.parallel_tool_calls = false;
  }
  if (e.responseFormat) p.response_format = e.responseFormat;
  return p;
}

/** The tool a named tool_choice asks for, or null. */
export const namedToolChoice = (c: ToolChoice | null | undefined): string | null => (c && typeof c === "object" ? c.function.name : null);

/** What checking the options of a new run needs of the tools role (wired by the agents role). */
export interface RunOptionChecks {
  /** The names of the tools `refs` resolve to in the organization, and the refs that do not exist. */
  resolveTools(orgId: string, refs: string[]): Promise<{ names: string[]; missing: string[] }>;
  /** 400 `invalid_response_format` unless the schema is one the tool-argument validator accepts. */
  checkOutputSchema(schema: Record<string, unknown>): Promise<void>;
}

/** The options of a new run make sense for its agent: its tools exist, tool_choice names one of them, the schema compiles. */
export async function assertRunOptions(orgId: string, agentTools: string[], o: RunOptions, checks: RunOptionChecks): Promise<void> {
  const choice = o.tool_choice;
  const forced = choice === "required" || typeof choice === "object";
  if (o.tools || forced) {
    const refs = o.tools ? [...new Set(o.tools)] : agentTools;
    const { names, missing } = refs.length ? await checks.resolveTools(orgId, refs) : { names: [], missing: [] };
    if (o.tools && missing.length) {
      throw unprocessable("unknown_tools", `These tools do not exist in this organization: ${missing.join(", ")}. Create them with POST /v1/tools or use a builtin name.`, { field: "tools", missing });
    }
    if (forced && !names.length) throw badRequest("invalid_tool_choice", "tool_choice asks for a tool call but the run has no tools.", { field: "tool_choice" });
    const named = namedToolChoice(choice);
    if (named && !names.includes(named)) {
      throw badRequest("invalid_tool_choice", `tool_choice names '${named}', which is not one of the run's tools (${names.join(", ")}).`, { field: "tool_choice", tools: names });
    }
  }
  if (o.response_format?.type === "json_schema") await checks.checkOutputSchema(o.response_format.json_schema.schema);
}
