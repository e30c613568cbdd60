/** The tools controller: /v1/tools registry CRUD, /v1/tools/:id/invoke and rotate-secret, /v1/mcp-servers. */
import { Elysia, t } from "elysia";
import type { AuthGuard } from "../../platform/http/auth-guard";
import { idempotencyKeys } from "../../platform/http/idempotency";
import { errors, PageQuery } from "../../platform/http/models";
import type { AppPlatform } from "../clients";
import {
  BuiltinToolList, CreateMcpServerBody, CreateToolBody, DeletedMcpServer, McpServer, McpServerPage, McpServerParam, McpServerSynced, RotatedSecret, RotateSecretBody, UpdateMcpServerBody, CreatedTool, DeletedTool, DeleteToolQuery, InvokeBody, InvokeResult, Tool, ToolPage, ToolRefParam, UpdateToolBody,
} from "./model";

export function toolsController(p: AppPlatform, guard: AuthGuard) {
  const tags = ["tools"];
  const mcpTags = ["mcp"];
  return new Elysia({ name: "tools-controller" })
    .use(guard.plugin)
    .use(idempotencyKeys)
    .post(
      "/tools",
      async ({ principal, body, idempotency, set }) => {
        const result = await p.clients.tools.createTool(principal, body, idempotency);
        set.status = result.status;
        return result.body;
      },
      {
        auth: true,
        idempotent: true,
        body: CreateToolBody,
        response: { 201: CreatedTool, ...errors(400, 401, 409) },
        detail: { tags, summary: "Register a tool (http, nats or client); the signing secret is shown once" },
      },
    )
    .get("/tools", ({ principal, query }) => p.clients.tools.listTools(principal, query), {
      auth: true,
      query: PageQuery,
      response: { 200: ToolPage, ...errors(400, 401) },
      detail: { tags, summary: "List the organization's tools" },
    })
    .get("/tools/builtin", () => p.clients.tools.listBuiltins(), {
      auth: true,
      response: { 200: BuiltinToolList, ...errors(401) },
      detail: { tags, summary: "The builtin memory tools any agent can list by name in its tools" },
    })
    .get("/tools/:id", ({ principal, params }) => p.clients.tools.getTool(principal, params.id), {
      auth: true,
      params: ToolRefParam,
      response: { 200: Tool, ...errors(401, 404) },
      detail: { tags, summary: "Get a tool" },
    })
    .patch("/tools/:id", ({ principal, params, body }) => p.clients.tools.updateTool(principal, params.id, body), {
      auth: true,
      params: ToolRefParam,
      body: UpdateToolBody,
      response: { 200: Tool, ...errors(400, 401, 404, 409) },
      detail: { tags, summary: "Update a tool" },
    })
    .delete("/tools/:id", ({ principal, params, query }) => p.clients.tools.deleteTool(principal, params.id, query.force ?? false), {
      auth: true,
      params: ToolRefParam,
      query: DeleteToolQuery,
      response: { 200: DeletedTool, ...errors(400, 401, 404, 409) },
      detail: { tags, summary: "Delete a tool (409 tool_in_use naming the agents that use it, unless ?force=true)" },
    })
    .post("/tools/:id/rotate-secret", ({ principal, params, body }) => p.clients.tools.rotateSecret(principal, params.id, body ?? {}), {
      auth: true,
      params: ToolRefParam,
      body: t.Optional(RotateSecretBody),
      response: { 200: RotatedSecret, ...errors(400, 401, 404) },
      detail: { tags, summary: "New signing secret (shown once); the old one keeps signing calls beside it for grace_seconds (default one day)" },
    })
    .post("/tools/:id/invoke", ({ principal, params, body }) => p.clients.tools.invokeTool(principal, params.id, body ?? {}), {
      auth: true,
      params: ToolRefParam,
      body: InvokeBody,
      response: { 200: InvokeResult, ...errors(400, 401, 404) },
      detail: { tags, summary: "Run a tool by hand with {arguments} and see the result a model would get" },
    })
    .post(
      "/mcp-servers",
      async ({ principal, body, set }) => {
        set.status = 201;
        return p.clients.tools.createMcpServer(principal, body);
      },
      {
        auth: true,
        body: CreateMcpServerBody,
        response: { 201: McpServerSynced, ...errors(400, 401, 409, 422) },
        detail: { tags: mcpTags, summary: "Register a remote MCP server (Streamable HTTP): initialize + tools/list, each tool registered as a tool of kind mcp" },
      },
    )
    .get("/mcp-servers", ({ principal, query }) => p.clients.tools.listMcpServers(principal, query), {
      auth: true,
      query: PageQuery,
      response: { 200: McpServerPage, ...errors(400, 401) },
      detail: { tags: mcpTags, summary: "List the organization's MCP servers (headers are never returned)" },
    })
    .get("/mcp-servers/:id", ({ principal, params }) => p.clients.tools.getMcpServer(principal, params.id), {
      auth: true,
      params: McpServerParam,
      response: { 200: McpServer, ...errors(401, 404) },
      detail: { tags: mcpTags, summary: "Get an MCP server and the tools registered from it" },
    })
    .patch("/mcp-servers/:id", ({ principal, params, body }) => p.clients.tools.updateMcpServer(principal, params.id, body), {
      auth: true,
      params: McpServerParam,
      body: UpdateMcpServerBody,
      response: { 200: McpServerSynced, ...errors(400, 401, 404, 409, 422) },
      detail: { tags: mcpTags, summary: "Change an MCP server; its tools are listed again with the new settings (nothing changes if that fails)" },
    })
    .post("/mcp-servers/:id/refresh", ({ principal, params }) => p.clients.tools.refreshMcpServer(principal, params.id), {
      auth: true,
      params: McpServerParam,
      response: { 200: McpServerSynced, ...errors(400, 401, 404, 422) },
      detail: { tags: mcpTags, summary: "List the server's tools again: new ones registered, changed ones updated, vanished ones removed" },
    })
    .delete("/mcp-servers/:id", ({ principal, params, query }) => p.clients.tools.deleteMcpServer(principal, params.id, query.force ?? false), {
      auth: true,
      params: McpServerParam,
      query: DeleteToolQuery,
      response: { 200: DeletedMcpServer, ...errors(400, 401, 404, 409) },
      detail: { tags: mcpTags, summary: "Delete an MCP server and its tools (409 mcp_server_in_use naming the agents, unless ?force=true)" },
    });
}
