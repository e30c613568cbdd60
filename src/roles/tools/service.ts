/**
 * The tools role's service: the tool registry (per organization) and tool execution for the
 * run loop. Free of HTTP: the gateway's controller and the worker call it directly
 * in-process or over NATS request/reply. A failing tool never throws out of `execute`: it
 * becomes an error result that the model sees.
 */
import { withIdempotency, type IdempotencyScope, type IdempotentResult } from "../../platform/idempotency";
import { and, eq, inArray } from "drizzle-orm";
import { tools } from "../../../schema";
import type { Bus } from "../../platform/bus";
import { isUniqueViolation, type Db } from "../../platform/db";
import { pageQuery, toPage, type PageOf, type PageRequest } from "../../platform/db/pagination";
import { AppError, badRequest, conflict, notFound } from "../../platform/errors";
import { randomSecret } from "../../platform/hash";
import type { Principal } from "../../platform/principal";
import { isId, newId } from "../../platform/ids";
import type { Logger } from "../../platform/logging";
import type { OutboundPolicy } from "../../platform/net/outbound";
import type { AgentsContract } from "../agents/contract";
import { BUILTIN_MEMORY_TOOL_DEFS, BUILTIN_MEMORY_TOOLS, isBuiltinMemoryTool, type MemoryContract } from "../memory/contract";
import type { OutputCheck, RunTool, ToolCallRequest, ToolCallResult, ToolsContract } from "./contract";
import { checkHeaders, checkToolUrl, executeHttp } from "./executors/http";
import { checkToolSubject, executeNats } from "./executors/nats";
import { DEFAULT_SECRET_GRACE_SECONDS, DEFAULT_TIMEOUT_MS, type RotatedSecretOut, type RotateSecretInput, type CreateToolInput, type CreatedToolOut, type InvokeInput, type ToolOut, type UpdateToolInput, type CreateMcpServerInput, type McpServerOut, type McpServerSyncedOut, type UpdateMcpServerInput } from "./model";
import { checkOutputSchema, checkParameters, validateArguments } from "./schemas";
import { McpServers } from "./mcp-servers";
import type { SecretBox } from "../../platform/secrets";

type ToolRow = typeof tools.$inferSelect;

/** What the tools role needs from the agents role: agent lookup (404 outside the caller's org) and tool references. */
export type AgentsClient = AgentsContract & { getAgent(orgId: string, id: string): Promise<{ id: string }> };

export interface ToolsDeps {
  db: Db;
  bus: Bus;
  log: Logger;
  /** Subjects nats tools may use (config.toolsSubjectPrefix). */
  toolsSubjectPrefix: string;
  /** The SSRF guard's policy for http tools. */
  outbound: OutboundPolicy;
  memory: () => MemoryContract;
  agents: () => AgentsClient;
  /** --idempotency-stale (see withIdempotency). */
  idempotencyStaleMs: number;
  /** Seals MCP server headers (platform/secrets); opened on first use. */
  secrets: () => SecretBox;
}

const USER_KINDS = ["http", "nats", "client"] as const;
const DEFAULT_PARAMETERS = { type: "object", properties: {} };
const BUILTIN_TIMEOUT_MS = 30_000;

const fail = (code: string, message: string): ToolCallResult => ({ ok: false, error: { code, message } });
const newSecret = () => `tsk_${randomSecret()}`;

const toolOut = (r: ToolRow): ToolOut => ({
  id: r.id,
  name: r.name,
  description: r.description,
  parameters: r.parameters,
  kind: r.kind,
  config: r.config,
  requires_approval: r.requiresApproval,
  timeout_ms: r.timeoutMs,
  created_at: r.createdAt.toISOString(),
  updated_at: r.updatedAt.toISOString(),
});

const builtinRunTool = (name: (typeof BUILTIN_MEMORY_TOOLS)[number]): RunTool => ({
  id: name,
  name,
  description: BUILTIN_MEMORY_TOOL_DEFS[name].description,
  parameters: BUILTIN_MEMORY_TOOL_DEFS[name].parameters,
  kind: "builtin",
  requires_approval: false,
  timeout_ms: BUILTIN_TIMEOUT_MS,
});

const runToolOf = (r: ToolRow): RunTool => ({
  id: r.id,
  name: r.name,
  description: r.description,
  parameters: r.parameters,
  kind: r.kind as RunTool["kind"],
  requires_approval: r.requiresApproval,
  timeout_ms: r.timeoutMs,
});

/** The secrets that sign a call: the current one, and the previous one until its grace period ends. */
const signingSecrets = (r: ToolRow, now = Date.now()): string[] =>
  r.previousSigningSecret && r.previousSecretExpiresAt && r.previousSecretExpiresAt.getTime() > now ? [r.signingSecret, r.previousSigningSecret] : [r.signingSecret];

/** Nesting bound of a tool's JSON output. */
export const MAX_OUTPUT_DEPTH = 64;

/** Nesting depth of a JSON value, counted without recursion and only up to `limit` + 1. */
export function nestingDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth + 1 > deepest) deepest = depth + 1;
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
  }
  return deepest;
}

/** Identifies one version of a tool's schema (validators are cached under it). */
const versionKey = (r: ToolRow) => `${r.id}:${r.updatedAt.getTime()}`;

/** Parses the model's argument string; an empty string means no arguments. */
function parseArguments(raw: unknown): { args: Record<string, unknown> } | { error: ToolCallResult } {
  if (raw && typeof raw === "object" && !Array.isArray(raw)) return { args: raw as Record<string, unknown> };
  const text = typeof raw === "string" ? raw.trim() : "";
  if (text === "") return { args: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: fail("invalid_arguments", `The arguments are not valid JSON (${(err as Error).message}); send a JSON object.`) };
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return { error: fail("invalid_arguments", "The arguments must be a JSON object.") };
  return { args: value as Record<string, unknown> };
}

export class ToolsService implements ToolsContract {
  private mcp: McpServers;

  constructor(private deps: ToolsDeps) {
    this.mcp = new McpServers({ db: deps.db, log: deps.log, outbound: deps.outbound, secrets: deps.secrets, agents: deps.agents });
  }

  private get db() {
    return this.deps.db;
  }

  // ---- contract (the run loop) -------------------------------------------------------------

  async getRunTools(orgId: string, refs: string[]): Promise<{ tools: RunTool[]; missing: string[] }> {
    const unique = [...new Set(refs ?? [])];
    const ids = unique.filter((r) => isId("tool", r));
    const rows = ids.length ? await this.db.select().from(tools).where(and(eq(tools.orgId, orgId), inArray(tools.id, ids))) : [];
    const byId = new Map(rows.map((r) => [r.id, r]));
    const out: RunTool[] = [];
    const missing: string[] = [];
    for (const ref of unique) {
      const row = byId.get(ref);
      if (row) out.push(runToolOf(row));
      else if (isBuiltinMemoryTool(ref)) out.push(builtinRunTool(ref));
      else missing.push(ref);
    }
    return { tools: out, missing };
  }

  async execute(call: ToolCallRequest): Promise<ToolCallResult> {
    try {
      const result = await this.executeUnsafe(call);
      // Deeper JSON would overflow the stack wherever the output is serialised next (steps, events, the prompt).
      if (result.ok && nestingDepth(result.output, MAX_OUTPUT_DEPTH) > MAX_OUTPUT_DEPTH) {
        return fail("tool_output_too_deep", `The tool's reply nests JSON deeper than ${MAX_OUTPUT_DEPTH} levels; flatten it.`);
      }
      return result;
    } catch (err) {
      if (err instanceof AppError) return fail(err.code, err.message);
      this.deps.log.error("tool execution failed", { tool_id: call.tool_id, run_id: call.run_id, error: err });
      return fail("tool_failed", `The tool failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  async checkOutputSchema(schema: Record<string, unknown>): Promise<void> {
    await checkOutputSchema(schema);
  }

  async validateOutput(key: string, schema: Record<string, unknown>, value: Record<string, unknown>): Promise<OutputCheck> {
    const checked = await validateArguments(`output:${key}`, schema, value, "output");
    return checked.valid ? { valid: true, value: checked.args } : checked;
  }

  private async executeUnsafe(call: ToolCallRequest): Promise<ToolCallResult> {
    const builtin = isBuiltinMemoryTool(call.tool_id);
    const row = builtin ? undefined : await this.findRow(call.org_id, call.tool_id);
    if (!builtin && !row) return fail("tool_not_found", `The tool '${call.tool_id}' does not exist (deleted?) in this organization.`);
    const name = row?.name ?? call.tool_id;
    const parsed = parseArguments(call.arguments);
    if ("error" in parsed) return parsed.error;
    const schema = row ? row.parameters : BUILTIN_MEMORY_TOOL_DEFS[call.tool_id as keyof typeof BUILTIN_MEMORY_TOOL_DEFS].parameters;
    const checked = await validateArguments(row ? versionKey(row) : `builtin:${call.tool_id}`, schema, parsed.args);
    if (!checked.valid) return fail("invalid_arguments", `Invalid arguments for ${name}: ${checked.message}.`);
    const args = checked.args;

    if (builtin) {
      if (!call.agent_id) return fail("invalid_call", `The builtin tool ${name} needs the agent whose memory it uses.`);
      return { ok: true, output: await this.deps.memory().runBuiltinTool(call.org_id, call.agent_id, name, args) };
    }
    const tool = row as ToolRow;
    const runId = call.run_id || null;
    switch (tool.kind) {
      case "http": {
        const config = tool.config as { url: string; headers?: Record<string, string> };
        return executeHttp(
          { name, url: config.url, headers: config.headers, secrets: signingSecrets(tool), timeoutMs: tool.timeoutMs },
          { arguments: args, run_id: runId, tool_call_id: call.tool_call_id },
          this.deps.outbound,
          (detail) => this.deps.log.debug("http tool unreachable", { tool_id: tool.id, error: detail }),
        );
      }
      case "nats":
        return executeNats(this.deps.bus, {
          tool: name,
          subject: (tool.config as { subject: string }).subject,
          timeoutMs: tool.timeoutMs,
          arguments: args,
          run_id: runId,
          tool_call_id: call.tool_call_id,
        }, this.deps.toolsSubjectPrefix);
      case "mcp":
        return this.mcp.call(tool, args);
      case "client":
        return fail("client_tool", `${name} is a client tool: its output is submitted by the caller (POST /v1/runs/:id/tool_outputs), not executed by AgentOS.`);
      default:
        return fail("tool_failed", `Unknown tool kind '${tool.kind}'.`);
    }
  }

  // ---- HTTP-facing (the gateway's controller) ---------------------------------------------

  async createTool(principal: Principal, input: CreateToolInput, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<CreatedToolOut>> {
    return withIdempotency(this.db, { orgId: principal.orgId, scope: idempotency, body: input, staleClaimMs: this.deps.idempotencyStaleMs }, async () => ({
      status: 201,
      body: await this.registerTool(principal, input),
    }));
  }

  private async registerTool(principal: Principal, input: CreateToolInput): Promise<CreatedToolOut> {
    const kind = this.checkKind(input.kind);
    const parameters = input.parameters ?? DEFAULT_PARAMETERS;
    await checkParameters(parameters);
    const config = this.checkConfig(kind, input.config ?? {});
    this.checkName(input.name);
    const secret = newSecret();
    try {
      const [row] = await this.db
        .insert(tools)
        .values({
          id: newId("tool"),
          orgId: principal.orgId,
          name: input.name,
          description: input.description ?? "",
          parameters,
          kind,
          config,
          requiresApproval: input.requires_approval ?? false,
          timeoutMs: input.timeout_ms ?? DEFAULT_TIMEOUT_MS,
          signingSecret: secret,
        })
        .returning();
      return { ...toolOut(row), signing_secret: secret };
    } catch (err) {
      throw this.translate(err, input.name);
    }
  }

  async listTools(principal: Principal, page: PageRequest): Promise<PageOf<ToolOut>> {
    const q = pageQuery(tools.id, page, eq(tools.orgId, principal.orgId));
    const rows = await this.db.select().from(tools).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q.pageSize, toolOut);
  }

  async listBuiltins(): Promise<{ data: { id: string; name: string; description: string; parameters: Record<string, unknown>; kind: "builtin" }[] }> {
    return { data: BUILTIN_MEMORY_TOOLS.map((n) => ({ id: n, name: n, description: BUILTIN_MEMORY_TOOL_DEFS[n].description, parameters: BUILTIN_MEMORY_TOOL_DEFS[n].parameters, kind: "builtin" as const })) };
  }

  async getTool(principal: Principal, id: string): Promise<ToolOut> {
    return toolOut(await this.requireRow(principal.orgId, id));
  }

  async updateTool(principal: Principal, id: string, input: UpdateToolInput): Promise<ToolOut> {
    const current = await this.requireRow(principal.orgId, id);
    refuseIfMcp(current);
    const kind = input.kind === undefined ? (current.kind as (typeof USER_KINDS)[number]) : this.checkKind(input.kind);
    const kindChanged = kind !== current.kind;
    const parameters = input.parameters ?? current.parameters;
    if (input.parameters) await checkParameters(parameters);
    const config = input.config !== undefined || kindChanged ? this.checkConfig(kind, input.config ?? {}) : current.config;
    if (input.name !== undefined) this.checkName(input.name);
    try {
      const [row] = await this.db
        .update(tools)
        .set({
          name: input.name ?? current.name,
          description: input.description ?? current.description,
          parameters,
          kind,
          config,
          requiresApproval: input.requires_approval ?? current.requiresApproval,
          timeoutMs: input.timeout_ms ?? current.timeoutMs,
          updatedAt: new Date(),
        })
        .where(and(eq(tools.id, id), eq(tools.orgId, principal.orgId)))
        .returning();
      if (!row) throw notFound("tool", id);
      return toolOut(row);
    } catch (err) {
      throw this.translate(err, input.name ?? current.name);
    }
  }

  /** 409 `tool_in_use` naming the agents that reference it, unless `force` (then it is removed from them first). */
  async deleteTool(principal: Principal, id: string, force = false): Promise<{ id: string; deleted: true; detached_from: number }> {
    refuseIfMcp(await this.requireRow(principal.orgId, id));
    const agents = this.deps.agents();
    const users = await agents.agentsUsingTool(principal.orgId, id);
    if (users.length && !force) {
      const names = users.slice(0, 10).map((a) => `${a.name} (${a.id})`).join(", ");
      throw conflict(
        "tool_in_use",
        `Agents use this tool: ${names}${users.length > 10 ? ` and ${users.length - 10} more` : ""}. Remove it from them, or delete with ?force=true to remove it from every agent.`,
        { agents: users },
      );
    }
    const detached = users.length ? await agents.detachTool(principal.orgId, id) : 0;
    const deleted = await this.db.delete(tools).where(and(eq(tools.id, id), eq(tools.orgId, principal.orgId))).returning({ id: tools.id });
    if (!deleted.length) throw notFound("tool", id);
    return { id, deleted: true, detached_from: detached };
  }

  /**
   * A new signing secret (shown once); the old one keeps signing calls beside it (a second
   * `v1=`) for `grace_seconds`, so the tool server can switch over without a failed call.
   */
  async rotateSecret(principal: Principal, id: string, input: RotateSecretInput): Promise<RotatedSecretOut> {
    const current = await this.requireRow(principal.orgId, id);
    const graceSeconds = input.grace_seconds ?? DEFAULT_SECRET_GRACE_SECONDS;
    const secret = newSecret();
    const expiresAt = new Date(Date.now() + graceSeconds * 1000);
    const [row] = await this.db
      .update(tools)
      .set({ signingSecret: secret, previousSigningSecret: graceSeconds > 0 ? current.signingSecret : null, previousSecretExpiresAt: graceSeconds > 0 ? expiresAt : null, updatedAt: new Date() })
      .where(and(eq(tools.id, id), eq(tools.orgId, principal.orgId)))
      .returning();
    if (!row) throw notFound("tool", id);
    return { id, signing_secret: secret, previous_secret_expires_at: graceSeconds > 0 ? expiresAt.toISOString() : null };
  }

  /** Runs a tool by hand (http, nats, or a builtin on `agent_id`'s memory); the result is what a model would see. */
  async invokeTool(principal: Principal, ref: string, input: InvokeInput): Promise<ToolCallResult & { duration_ms: number }> {
    let agentId = "";
    if (isBuiltinMemoryTool(ref)) {
      if (!input.agent_id) throw badRequest("agent_required", `${ref} works on an agent's memory: pass \`agent_id\`.`);
      if (!isId("agt", input.agent_id)) throw notFound("agent", input.agent_id);
      await this.deps.agents().getAgent(principal.orgId, input.agent_id);
      agentId = input.agent_id;
    } else {
      const row = await this.requireRow(principal.orgId, ref);
      if (row.kind === "client") {
        throw badRequest("client_tool_not_invocable", "Client tools are answered by the caller: a run pauses in requires_action and you submit the output with POST /v1/runs/:id/tool_outputs.");
      }
      agentId = input.agent_id ?? "";
    }
    const started = performance.now();
    const result = await this.execute({
      org_id: principal.orgId,
      agent_id: agentId,
      run_id: "",
      tool_call_id: `manual_${crypto.randomUUID()}`,
      tool_id: ref,
      arguments: JSON.stringify(input.arguments ?? {}),
    });
    return { ...result, duration_ms: Math.round((performance.now() - started) * 100) / 100 };
  }

  // ---- MCP servers (mcp-servers.ts) --------------------------------------------------------

  createMcpServer(principal: Principal, input: CreateMcpServerInput): Promise<McpServerSyncedOut> {
    return this.mcp.create(principal, input);
  }

  listMcpServers(principal: Principal, page: PageRequest): Promise<PageOf<McpServerOut>> {
    return this.mcp.listServers(principal, page);
  }

  getMcpServer(principal: Principal, id: string): Promise<McpServerOut> {
    return this.mcp.get(principal, id);
  }

  updateMcpServer(principal: Principal, id: string, input: UpdateMcpServerInput): Promise<McpServerSyncedOut> {
    return this.mcp.update(principal, id, input);
  }

  refreshMcpServer(principal: Principal, id: string): Promise<McpServerSyncedOut> {
    return this.mcp.refresh(principal, id);
  }

  deleteMcpServer(principal: Principal, id: string, force = false) {
    return this.mcp.delete(principal, id, force);
  }

  // ---- internals ---------------------------------------------------------------------------

  private async findRow(orgId: string, id: string): Promise<ToolRow | undefined> {
    if (!isId("tool", id)) return undefined;
    const [row] = await this.db.select().from(tools).where(and(eq(tools.id, id), eq(tools.orgId, orgId)));
    return row;
  }

  private async requireRow(orgId: string, id: string): Promise<ToolRow> {
    const row = await this.findRow(orgId, id);
    if (!row) throw notFound("tool", id);
    return row;
  }

  private checkKind(kind: string): (typeof USER_KINDS)[number] {
    if (kind === "builtin") {
      throw badRequest("invalid_tool_kind", `builtin tools are not registered: every agent can list them by name in its \`tools\` (${BUILTIN_MEMORY_TOOLS.join(", ")}).`);
    }
    if (kind === "mcp") throw badRequest("invalid_tool_kind", "mcp tools are registered by their server: POST /v1/mcp-servers {name, url} lists its tools and registers them.");
    if (!(USER_KINDS as readonly string[]).includes(kind)) throw badRequest("invalid_tool_kind", `kind must be one of ${USER_KINDS.join(", ")}.`);
    return kind as (typeof USER_KINDS)[number];
  }

  private checkName(name: string) {
    if (isBuiltinMemoryTool(name)) throw conflict("tool_name_reserved", `'${name}' is the name of a builtin memory tool; choose another name.`);
  }

  /** Validates and normalises the per-kind config; unknown keys are refused so typos do not pass silently. */
  private checkConfig(kind: (typeof USER_KINDS)[number], config: Record<string, unknown>): Record<string, unknown> {
    const allowed = { http: ["url", "headers"], nats: ["subject"], client: [] as string[] }[kind];
    const unknown = Object.keys(config).filter((k) => !allowed.includes(k));
    if (unknown.length) {
      throw badRequest("invalid_tool_config", `Unknown config key(s) for a ${kind} tool: ${unknown.join(", ")} (allowed: ${allowed.join(", ") || "none"}).`);
    }
    if (kind === "http") {
      const problem = checkToolUrl(config.url, this.deps.outbound) ?? checkHeaders(config.headers, "config.headers", HTTP_RESERVED_HEADERS);
      if (problem) throw badRequest("invalid_tool_config", problem);
      return config.headers === undefined ? { url: config.url } : { url: config.url, headers: config.headers };
    }
    if (kind === "nats") {
      const problem = checkToolSubject(config.subject, this.deps.toolsSubjectPrefix);
      if (problem) throw badRequest("invalid_tool_config", problem);
      return { subject: config.subject };
    }
    return {};
  }

  private translate(err: unknown, name: string) {
    if (isUniqueViolation(err)) return conflict("tool_name_taken", `A tool named '${name}' already exists in this organization.`);
    return err;
  }
}

/** An `mcp` tool is what its server lists: changed or removed through the server, not one by one. */
function refuseIfMcp(row: ToolRow) {
  if (row.kind === "mcp") {
    throw badRequest("mcp_tool_managed", `${row.name} comes from an MCP server (${(row.config as { server_id: string }).server_id}): change it with PATCH /v1/mcp-servers/:id (allowed_tools, requires_approval) or POST /v1/mcp-servers/:id/refresh.`);
  }
}

const HTTP_RESERVED_HEADERS = ["content-type", "content-length", "host", "user-agent", "x-agentos-signature", "x-agentos-tool-call-id", "transfer-encoding", "connection"];
