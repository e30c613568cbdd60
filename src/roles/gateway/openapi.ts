/**
 * What the gateway's OpenAPI document says beyond the routes (see platform/http/openapi.ts for
 * the pass that finishes it): the named models, servers, the WebSocket, better operation ids
 * where the derived one reads badly, and request examples.
 *
 * A new role's models become named components by adding its model module to MODEL_MODULES.
 */
import { Kind, type TSchema } from "@sinclair/typebox";
import { ErrorResponse } from "../../platform/http/models";
import { openApiDocument } from "../../platform/http/openapi";
import * as agents from "../agents/model";
import * as auth from "../auth/model";
import * as billing from "../billing/model";
import * as memory from "../memory/model";
import * as notify from "../notify/model";
import * as tools from "../tools/model";
import * as schedules from "../agents/schedules/model";
import * as runs from "../../runs/model";
import { RunTrace, RunTraceStep } from "../../runs";
import { LIVE_PATH } from "../notify/live";
import { VERSION } from "../../version";

/** Model modules, with the prefix that disambiguates a name two modules export (`BillingUsage`). */
const MODEL_MODULES: [string, Record<string, unknown>][] = [
  ["Agent", agents], ["Auth", auth], ["Billing", billing], ["Memory", memory], ["Notify", notify], ["Tool", tools], ["Schedule", schedules], ["Run", { ...runs, RunTrace, RunTraceStep }],
];

/** Response models only: parameters are split into parameters, request bodies stay inline (openapi.ts). */
const isComponent = (name: string, v: unknown): v is TSchema =>
  !!v && typeof v === "object" && Kind in v && !/(Query|Params?|Body|In)$/.test(name) && ((v as { type?: string }).type === "object" || ["UnionEnum", "Union"].includes((v as { [Kind]: string })[Kind]));

export function namedModels(): Record<string, TSchema> {
  const found = new Map<string, [string, TSchema][]>();
  for (const [prefix, mod] of MODEL_MODULES) {
    for (const [name, value] of Object.entries(mod)) if (isComponent(name, value)) found.set(name, [...(found.get(name) ?? []), [prefix, value]]);
  }
  const out: Record<string, TSchema> = { Error: ErrorResponse };
  for (const [name, owners] of found) {
    if (owners.length === 1) out[name] = owners[0][1];
    else for (const [prefix, schema] of owners) out[`${prefix}${name}`] = schema;
  }
  return out;
}

const OPERATION_IDS: Record<string, string> = {
  "POST /v1/auth/signup": "signup",
  "POST /v1/auth/login": "login",
  "POST /v1/auth/refresh": "refreshToken",
  "POST /v1/auth/logout": "logout",
  "GET /v1/auth/me": "getMe",
  "POST /v1/organization/members": "addMember",
  "GET /v1/organization/members": "listMembers",
  "POST /v1/threads/:id/runs": "createRun",
  "GET /v1/threads/:id/runs": "listThreadRuns",
  "GET /v1/runs/:id/events": "streamRunEvents",
  "GET /v1/runs/:id/wait": "waitForRun",
  "POST /v1/runs/:id/tool_outputs": "submitToolOutputs",
  "GET /v1/tools/builtin": "listBuiltinTools",
  "POST /v1/notifications/:id/read": "markNotificationRead",
  "GET /v1/agents/:id/memory/blocks": "listMemoryBlocks",
  "GET /v1/agents/:id/memory/blocks/:label": "getMemoryBlock",
  "PUT /v1/agents/:id/memory/blocks/:label": "putMemoryBlock",
  "POST /v1/agents/:id/memories": "createMemory",
  "GET /v1/agents/:id/memories": "listMemories",
  "GET /v1/agents/:id/memories/:memory_id": "getMemory",
  "DELETE /v1/agents/:id/memories/:memory_id": "deleteMemory",
  "GET /healthz": "getHealth",
  "GET /readyz": "getReadiness",
  "GET /metrics": "getMetrics",
};

const EXAMPLES: Record<string, unknown> = {
  signup: { email: "ada@example.com", password: "correct horse battery", name: "Ada" },
  login: { email: "ada@example.com", password: "correct horse battery" },
  createAgent: { name: "support", model: "gpt-4o-mini", instructions: "You answer support questions briefly." },
  createThread: { metadata: { customer: "c_42" } },
  createThreadMessage: { role: "user", content: "Where is my order?" },
  createRun: { agent_id: "agt_01HZX3K4M5N6P7Q8R9S0T1V2W3", input: "Where is my order?" },
  createApiKey: { name: "ci" },
  createWebhook: { url: "https://hooks.example.com/agentos", event_types: ["run.completed"] },
};

/** GET /v1/ws is a Bun WebSocket upgrade, not an Elysia route: described here. */
const WEBSOCKET_PATH = {
  [LIVE_PATH]: {
    get: {
      operationId: "openLiveEvents",
      tags: ["notifications"],
      summary: "WebSocket of the organization's events, live (send `Upgrade: websocket`)",
      description:
        'Frames are JSON: `{"type":"connected","organization_id":…}` once, `{"type":"event","event":{…}}` per event, `{"type":"pong"}` for a ping. Authenticate with `Authorization: Bearer …` or, from a browser, `?token=`. The socket closes with 4001 when the credential expires or its API key is deleted, 1013 when the client reads too slowly.',
      parameters: [
        { name: "token", in: "query", required: false, description: "Access token or API key, for clients that cannot set headers (browsers)", schema: { type: "string" } },
        { name: "Upgrade", in: "header", required: true, schema: { type: "string", const: "websocket" } },
      ],
      responses: {
        "101": { description: "Switching protocols: the socket is open" },
        "400": { $ref: "#/components/responses/BadRequest" },
        "401": { $ref: "#/components/responses/Unauthorized" },
        "404": { description: "Not a WebSocket upgrade: this path answers only `Upgrade: websocket`", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
        "503": { $ref: "#/components/responses/ServiceUnavailable" },
      },
    },
  },
};

export function gatewayDocument(path: string) {
  return openApiDocument(path, {
    components: namedModels(),
    operationIds: OPERATION_IDS,
    examples: EXAMPLES,
    tagDescriptions: {
      auth: "Sign up, log in, refresh and revoke sessions",
      "api-keys": "Long-lived credentials (aos_…) for servers",
      organization: "Members and their roles",
      agents: "Agents: model, instructions, tools, memory",
      threads: "Conversations and their messages",
      runs: "An agent working on a thread: status, steps, events, trace",
      billing: "Plan, usage and invoices",
      webhooks: "Signed HTTP callbacks for events",
      notifications: "The organization's inbox and the live WebSocket",
      memory: "Core memory blocks and archival memories of an agent",
      tools: "HTTP, client and builtin tools agents call",
      health: "Liveness, readiness and metrics",
    },
    documentation: {
      info: {
        title: "AgentOS API",
        version: VERSION,
        description: "Agents, threads, runs, memory, tools, billing and notifications. Errors have one shape (`Error`); lists are cursor pages (`limit`, `after`).",
        license: { name: "Proprietary", identifier: "LicenseRef-Proprietary" },
      },
      // Relative: the server that serves this document (a local one is http://localhost:8080).
      servers: [{ url: "/", description: "The AgentOS that serves this document" }],
      security: [{ bearer: [] }],
      paths: WEBSOCKET_PATH,
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "Access token (JWT) or API key (aos_…)" } } },
    },
  });
}
