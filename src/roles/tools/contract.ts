import type { ToolsService } from "./service";
/**
 * What other roles may call on the tools role (through `p.clients.tools`): the run loop asks
 * for the tools of an agent and executes tool calls here. JSON in, JSON out.
 */
export type ToolKind = "http" | "nats" | "client" | "mcp" | "builtin";

/** A tool as the run loop needs it. Builtin memory tools appear here with kind "builtin". */
export interface RunTool {
  /** `tool_…` id, or the builtin's name (e.g. "archival_memory_search") for builtins. */
  id: string;
  name: string;
  description: string;
  parameters: Record<string, unknown>;
  kind: ToolKind;
  requires_approval: boolean;
  timeout_ms: number;
}

export interface ToolCallRequest {
  org_id: string;
  agent_id: string;
  run_id: string;
  tool_call_id: string;
  /** As listed by getRunTools. */
  tool_id: string;
  /** The raw JSON string the model produced (validated against the tool's schema here). */
  arguments: string;
}

export type ToolCallResult =
  | { ok: true; output: unknown }
  | { ok: false; error: { code: string; message: string } };

export interface ToolsContract {
  /**
   * Resolves an agent's `tools` list (tool ids and builtin names) to definitions.
   * Unknown refs are reported, not thrown: `missing` lists them.
   */
  getRunTools(orgId: string, refs: string[]): Promise<{ tools: RunTool[]; missing: string[] }>;
  /**
   * Executes a tool call of kind http, nats, mcp or builtin. Never throws for a failing tool:
   * invalid arguments, timeouts, non-2xx and garbage replies come back as `ok: false`
   * so the model sees an error result. (kind "client" is handled by the run loop.)
   */
  execute(call: ToolCallRequest): Promise<ToolCallResult>;
  /** Checks a run's response_format schema like tool parameters (400 `invalid_response_format`). */
  checkOutputSchema(schema: Record<string, unknown>): Promise<void>;
  /**
   * Validates a run's final answer (parsed JSON) against its response_format schema, with the
   * validator of tool arguments; `key` names the schema's version (the run id: it is fixed per run).
   */
  validateOutput(key: string, schema: Record<string, unknown>, value: Record<string, unknown>): Promise<OutputCheck>;
}

export type OutputCheck = { valid: true; value: Record<string, unknown> } | { valid: false; message: string };

/**
 * The tools role's RPC surface: what gateways and other roles may call through
 * `p.clients.tools`. Over the bus nothing else is served (src/platform/rpc.ts).
 */
export const TOOLS_RPC = [
  "getRunTools", "execute", "checkOutputSchema", "validateOutput", "createTool", "listTools", "listBuiltins", "getTool", "updateTool", "deleteTool",
  "invokeTool", "rotateSecret",
  "createMcpServer", "listMcpServers", "getMcpServer", "updateMcpServer", "refreshMcpServer", "deleteMcpServer",
] as const satisfies readonly (keyof ToolsService)[];
export type ToolsClient = Pick<ToolsService, (typeof TOOLS_RPC)[number]>;
