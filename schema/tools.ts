/** Tool registry: tools an organization's agents may call, and the MCP servers some of them come from. */
import { boolean, index, integer, jsonb, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, tstz, updatedAt } from "./columns";

/** Remote MCP servers (Streamable HTTP) whose tools are registered as tools of kind `mcp`. */
export const mcpServers = pgTable(
  "mcp_servers",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    name: text("name").notNull(),
    url: text("url").notNull(),
    /** The request headers as JSON, sealed with AES-256-GCM (platform/secrets); never returned. */
    headersSealed: text("headers_sealed"),
    /** MCP tool names to register; null registers every listed tool. */
    allowedTools: jsonb("allowed_tools").$type<string[] | null>(),
    /** "all" | "none" | a list of MCP tool names that need approval. */
    requiresApproval: jsonb("requires_approval").$type<"all" | "none" | string[]>().notNull(),
    timeoutMs: integer("timeout_ms").notNull().default(10000),
    /** What `initialize` reported: {name, version} of the server. */
    serverInfo: jsonb("server_info").$type<Record<string, unknown> | null>(),
    refreshedAt: tstz("refreshed_at"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("mcp_servers_org_name_key").on(t.orgId, t.name), index("mcp_servers_org_idx").on(t.orgId, t.id)],
);

export const tools = pgTable(
  "tools",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    parameters: jsonb("parameters").$type<Record<string, unknown>>().notNull(),
    kind: text("kind").notNull(), // http | nats | client | mcp | builtin
    config: jsonb("config").$type<Record<string, unknown>>().notNull().default({}),
    requiresApproval: boolean("requires_approval").notNull().default(false),
    timeoutMs: integer("timeout_ms").notNull().default(10000),
    /** HMAC-SHA256 key that signs http tool calls; shown once at creation (and at each rotation). */
    signingSecret: text("signing_secret").notNull(),
    /** The key before the last rotation: calls carry a second signature with it until `previous_secret_expires_at`. */
    previousSigningSecret: text("previous_signing_secret"),
    previousSecretExpiresAt: tstz("previous_secret_expires_at"),
    /** The MCP server a `mcp` tool comes from (its tools go with it). */
    mcpServerId: text("mcp_server_id").references(() => mcpServers.id, { onDelete: "cascade" }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("tools_org_name_key").on(t.orgId, t.name), index("tools_org_idx").on(t.orgId, t.id), index("tools_mcp_server_idx").on(t.mcpServerId)],
);
