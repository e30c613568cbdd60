/**
 * MCP servers as tool sources: registering a server (or refreshing it) runs `initialize` +
 * `tools/list` under the server's timeout and a byte budget, then registers each allowed tool
 * as a tool of kind `mcp` named `<server>__<tool>`, which agents attach like any tool. Headers
 * (credentials) are sealed with AES-256-GCM and never returned. Nothing is stored when the
 * server cannot be listed, so a registered server always answered once.
 */
import { and, eq, inArray, ne } from "drizzle-orm";
import { mcpServers, tools } from "../../../schema";
import type { Db } from "../../platform/db";
import { isUniqueViolation } from "../../platform/db";
import { pageQuery, toPage, type PageOf, type PageRequest } from "../../platform/db/pagination";
import { AppError, badRequest, conflict, notFound, unprocessable } from "../../platform/errors";
import { randomSecret } from "../../platform/hash";
import { newId } from "../../platform/ids";
import type { Logger } from "../../platform/logging";
import type { OutboundPolicy } from "../../platform/net/outbound";
import type { Principal } from "../../platform/principal";
import type { SecretBox } from "../../platform/secrets";
import type { ToolCallResult } from "./contract";
import { checkHeaders, checkTargetUrl } from "./executors/http";
import { callMcpTool, listMcpTools, type McpListing, type McpTarget } from "./executors/mcp";
import { DEFAULT_TIMEOUT_MS, TOOL_NAME_PATTERN, type CreateMcpServerInput, type McpServerOut, type McpServerSyncedOut, type UpdateMcpServerInput } from "./model";
import { checkParameters } from "./schemas";
import type { AgentsClient } from "./service";

type ServerRow = typeof mcpServers.$inferSelect;
type ToolRow = typeof tools.$inferSelect;
type Approval = "all" | "none" | string[];
interface ServerSettings {
  name: string;
  url: string;
  headers: Record<string, string>;
  allowedTools: string[] | null;
  requiresApproval: Approval;
  timeoutMs: number;
}

/** MCP's default dialect: a listed `inputSchema` without `$schema` is 2020-12. */
const MCP_DEFAULT_SCHEMA = "https://json-schema.org/draft/2020-12/schema";
/** Headers the MCP transport sets itself. */
const MCP_RESERVED_HEADERS = ["content-type", "content-length", "host", "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id", "transfer-encoding", "connection"];
const MAX_DESCRIPTION = 4000;
const TOOL_NAME = new RegExp(TOOL_NAME_PATTERN);

export interface McpDeps {
  db: Db;
  log: Logger;
  outbound: OutboundPolicy;
  secrets: () => SecretBox;
  agents: () => AgentsClient;
}

/** `<server>__<tool>`, with characters a model's function name may not have replaced by `_`. */
export const mcpToolName = (server: string, tool: string) => `${server}__${tool.replace(/[^A-Za-z0-9_-]/g, "_")}`;

const needsApproval = (policy: Approval, tool: string) => (policy === "all" ? true : policy === "none" ? false : policy.includes(tool));

export class McpServers {
  constructor(private deps: McpDeps) {}

  private get db() {
    return this.deps.db;
  }

  async create(principal: Principal, input: CreateMcpServerInput): Promise<McpServerSyncedOut> {
    this.checkTarget(input.url, input.headers);
    const settings: ServerSettings = {
      name: input.name,
      url: input.url,
      headers: input.headers ?? {},
      allowedTools: input.allowed_tools ?? null,
      requiresApproval: (input.requires_approval ?? "none") as Approval,
      timeoutMs: input.timeout_ms ?? DEFAULT_TIMEOUT_MS,
    };
    const listing = await this.list(settings);
    let row: ServerRow;
    try {
      [row] = await this.db
        .insert(mcpServers)
        .values({ id: newId("mcp"), orgId: principal.orgId, ...this.columns(settings, listing) })
        .returning();
    } catch (err) {
      throw this.translate(err, settings.name);
    }
    const skipped = await this.syncTools(row, listing);
    return { ...(await this.out(row)), skipped };
  }

  async listServers(principal: Principal, page: PageRequest): Promise<PageOf<McpServerOut>> {
    const q = pageQuery(mcpServers.id, page, eq(mcpServers.orgId, principal.orgId));
    const rows = await this.db.select().from(mcpServers).where(q.where).orderBy(q.orderBy).limit(q.limit);
    const outs = await Promise.all(rows.map((r) => this.out(r)));
    return toPage(rows, q.pageSize, (r) => outs[rows.indexOf(r)]);
  }

  async get(principal: Principal, id: string): Promise<McpServerOut> {
    return this.out(await this.requireRow(principal.orgId, id));
  }

  /** Changes the settings and lists the tools again with them: nothing changes when the server cannot be listed. */
  async update(principal: Principal, id: string, input: UpdateMcpServerInput): Promise<McpServerSyncedOut> {
    const current = await this.requireRow(principal.orgId, id);
    const settings: ServerSettings = {
      name: input.name ?? current.name,
      url: input.url ?? current.url,
      headers: input.headers ?? this.headersOf(current),
      allowedTools: input.allowed_tools === undefined ? current.allowedTools : input.allowed_tools,
      requiresApproval: (input.requires_approval ?? current.requiresApproval) as Approval,
      timeoutMs: input.timeout_ms ?? current.timeoutMs,
    };
    this.checkTarget(settings.url, settings.headers);
    const listing = await this.list(settings);
    let row: ServerRow | undefined;
    try {
      [row] = await this.db
        .update(mcpServers)
        .set({ ...this.columns(settings, listing), updatedAt: new Date() })
        .where(and(eq(mcpServers.id, id), eq(mcpServers.orgId, principal.orgId)))
        .returning();
    } catch (err) {
      throw this.translate(err, settings.name);
    }
    if (!row) throw notFound("MCP server", id);
    const skipped = await this.syncTools(row, listing);
    return { ...(await this.out(row)), skipped };
  }

  async refresh(principal: Principal, id: string): Promise<McpServerSyncedOut> {
    const row = await this.requireRow(principal.orgId, id);
    const listing = await this.list({ url: row.url, headers: this.headersOf(row), timeoutMs: row.timeoutMs });
    const [updated] = await this.db
      .update(mcpServers)
      .set({ serverInfo: listing.serverInfo, refreshedAt: new Date() })
      .where(and(eq(mcpServers.id, id), eq(mcpServers.orgId, principal.orgId)))
      .returning();
    if (!updated) throw notFound("MCP server", id);
    const skipped = await this.syncTools(updated, listing);
    return { ...(await this.out(updated)), skipped };
  }

  /** 409 `mcp_server_in_use` naming the agents that use its tools, unless `force` (then they are detached). */
  async delete(principal: Principal, id: string, force: boolean): Promise<{ id: string; deleted: true; tools_deleted: number; detached_from: number }> {
    await this.requireRow(principal.orgId, id);
    const own = await this.db.select({ id: tools.id }).from(tools).where(and(eq(tools.orgId, principal.orgId), eq(tools.mcpServerId, id)));
    const agents = this.deps.agents();
    const users = (await Promise.all(own.map((t) => agents.agentsUsingTool(principal.orgId, t.id)))).flat();
    if (users.length && !force) {
      const names = [...new Map(users.map((a) => [a.id, `${a.name} (${a.id})`])).values()];
      throw conflict("mcp_server_in_use", `Agents use this server's tools: ${names.slice(0, 10).join(", ")}. Remove them, or delete with ?force=true to remove them from every agent.`, { agents: users });
    }
    for (const t of own) await agents.detachTool(principal.orgId, t.id);
    // Its tools go with it (foreign key, on delete cascade).
    const deleted = await this.db.delete(mcpServers).where(and(eq(mcpServers.id, id), eq(mcpServers.orgId, principal.orgId))).returning({ id: mcpServers.id });
    if (!deleted.length) throw notFound("MCP server", id);
    return { id, deleted: true, tools_deleted: own.length, detached_from: new Set(users.map((a) => a.id)).size };
  }

  /** A tool call on an `mcp` tool: its server's url and headers, the tool's timeout. */
  async call(tool: ToolRow, args: Record<string, unknown>): Promise<ToolCallResult> {
    const config = tool.config as { server_id: string; tool: string };
    const [server] = await this.db.select().from(mcpServers).where(and(eq(mcpServers.id, config.server_id), eq(mcpServers.orgId, tool.orgId)));
    if (!server) return { ok: false, error: { code: "tool_not_found", message: `The MCP server of ${tool.name} was deleted.` } };
    let headers: Record<string, string>;
    try {
      headers = this.headersOf(server);
    } catch {
      return { ok: false, error: { code: "mcp_headers_unreadable", message: "The MCP server's stored headers cannot be decrypted with this AGENTOS_SECRET_KEY; set them again (PATCH /v1/mcp-servers/:id)." } };
    }
    return callMcpTool({ url: server.url, headers, timeoutMs: tool.timeoutMs }, config.tool, args, this.deps.outbound, (detail) =>
      this.deps.log.debug("mcp server unreachable", { tool_id: tool.id, error: detail }),
    );
  }

  // ---- internals ---------------------------------------------------------------------------

  private checkTarget(url: string, headers: Record<string, string> | undefined) {
    const problem = checkTargetUrl(url, this.deps.outbound, "url") ?? checkHeaders(headers, "headers", MCP_RESERVED_HEADERS);
    if (problem) throw badRequest("invalid_mcp_server", problem);
  }

  /** `initialize` + `tools/list`, or 422 `mcp_server_failed` saying what went wrong (a refused address: 400). */
  private async list(target: McpTarget): Promise<McpListing> {
    const result = await listMcpTools({ url: target.url, headers: target.headers, timeoutMs: target.timeoutMs }, this.deps.outbound);
    if (result.ok) return result.listing;
    if (result.error.code === "target_unreachable") this.deps.log.debug("mcp server unreachable", { url: target.url, error: result.error.detail });
    if (result.error.code === "target_refused") throw badRequest("target_refused", result.error.message);
    throw unprocessable("mcp_server_failed", result.error.message, { reason: result.error.code });
  }

  /**
   * Makes the server's `mcp` tools what `listing` says (restricted to allowed_tools): new ones
   * are registered, changed ones updated (same id, so agents keep them), vanished ones detached
   * from agents and deleted. Returns the listed tools that were not registered, and why.
   */
  private async syncTools(server: ServerRow, listing: McpListing): Promise<{ name: string; reason: string }[]> {
    const skipped: { name: string; reason: string }[] = [];
    const existing = await this.db.select().from(tools).where(and(eq(tools.orgId, server.orgId), eq(tools.mcpServerId, server.id)));
    const byMcpName = new Map(existing.map((t) => [(t.config as { tool: string }).tool, t]));
    const wanted = listing.tools.filter((t) => server.allowedTools === null || server.allowedTools.includes(t.name));
    const names = wanted.map((t) => mcpToolName(server.name, t.name));
    const taken = names.length
      ? new Set((await this.db.select({ name: tools.name }).from(tools).where(and(eq(tools.orgId, server.orgId), inArray(tools.name, names), ne(tools.kind, "mcp")))).map((r) => r.name))
      : new Set<string>();
    const kept = new Set<string>();
    for (const listed of wanted) {
      const name = mcpToolName(server.name, listed.name);
      const problem = await this.toolProblem(name, listed.inputSchema, taken);
      if (problem) {
        skipped.push({ name: listed.name, reason: problem });
        continue;
      }
      const values = {
        name,
        description: (listed.description ?? listed.title ?? "").slice(0, MAX_DESCRIPTION),
        parameters: withDialect(listed.inputSchema),
        config: { server_id: server.id, tool: listed.name },
        requiresApproval: needsApproval(server.requiresApproval, listed.name),
        timeoutMs: server.timeoutMs,
        updatedAt: new Date(),
      };
      const known = byMcpName.get(listed.name);
      try {
        if (known) await this.db.update(tools).set(values).where(eq(tools.id, known.id));
        else await this.db.insert(tools).values({ ...values, id: newId("tool"), orgId: server.orgId, kind: "mcp", signingSecret: `tsk_${randomSecret()}`, mcpServerId: server.id });
        kept.add(listed.name);
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        skipped.push({ name: listed.name, reason: `a tool named '${name}' already exists in this organization` });
      }
    }
    const agents = this.deps.agents();
    for (const [mcpName, row] of byMcpName) {
      if (kept.has(mcpName)) continue;
      await agents.detachTool(server.orgId, row.id);
      await this.db.delete(tools).where(eq(tools.id, row.id));
    }
    for (const s of listing.tools.filter((t) => !wanted.includes(t))) skipped.push({ name: s.name, reason: "not in allowed_tools" });
    return skipped;
  }

  private async toolProblem(name: string, schema: unknown, taken: Set<string>): Promise<string | null> {
    if (!TOOL_NAME.test(name)) return `'${name.slice(0, 100)}' is longer than 64 characters; shorten the server's name`;
    if (taken.has(name)) return `a tool named '${name}' already exists in this organization`;
    try {
      await checkParameters(withDialect(schema));
      return null;
    } catch (err) {
      if (err instanceof AppError) return err.message;
      throw err;
    }
  }

  /** The stored columns of a server's settings, after a successful listing. */
  private columns(settings: ServerSettings, listing: McpListing) {
    return {
      name: settings.name,
      url: settings.url,
      headersSealed: this.seal(settings.headers),
      allowedTools: settings.allowedTools,
      requiresApproval: settings.requiresApproval,
      timeoutMs: settings.timeoutMs,
      serverInfo: listing.serverInfo,
      refreshedAt: new Date(),
    };
  }

  private seal(headers: Record<string, string>): string | null {
    return Object.keys(headers).length ? this.deps.secrets().encrypt(JSON.stringify(headers)) : null;
  }

  private headersOf(row: ServerRow): Record<string, string> {
    return row.headersSealed ? (JSON.parse(this.deps.secrets().decrypt(row.headersSealed)) as Record<string, string>) : {};
  }

  private async out(row: ServerRow): Promise<McpServerOut> {
    const own = await this.db.select().from(tools).where(and(eq(tools.orgId, row.orgId), eq(tools.mcpServerId, row.id))).orderBy(tools.name);
    let headerNames: string[] = [];
    try {
      headerNames = Object.keys(this.headersOf(row));
    } catch {
      headerNames = []; // sealed under another key: listed as none until set again
    }
    return {
      id: row.id,
      name: row.name,
      url: row.url,
      header_names: headerNames,
      allowed_tools: row.allowedTools,
      requires_approval: row.requiresApproval,
      timeout_ms: row.timeoutMs,
      server_info: row.serverInfo,
      tools: own.map((t) => ({ id: t.id, name: t.name, mcp_name: (t.config as { tool: string }).tool, requires_approval: t.requiresApproval })),
      refreshed_at: row.refreshedAt?.toISOString() ?? null,
      created_at: row.createdAt.toISOString(),
      updated_at: row.updatedAt.toISOString(),
    };
  }

  private async requireRow(orgId: string, id: string): Promise<ServerRow> {
    const [row] = await this.db.select().from(mcpServers).where(and(eq(mcpServers.id, id), eq(mcpServers.orgId, orgId)));
    if (!row) throw notFound("MCP server", id);
    return row;
  }

  private translate(err: unknown, name: string) {
    if (isUniqueViolation(err)) return conflict("mcp_server_name_taken", `An MCP server named '${name}' already exists in this organization.`);
    return err;
  }
}

/** A listed input schema with its dialect made explicit (MCP's default is 2020-12). */
function withDialect(schema: unknown): Record<string, unknown> {
  const s = schema && typeof schema === "object" && !Array.isArray(schema) ? (schema as Record<string, unknown>) : {};
  return s.$schema === undefined ? { $schema: MCP_DEFAULT_SCHEMA, ...s } : s;
}
