/** The agents controller: /v1/agents, /v1/threads (+ messages, runs), /v1/runs. */
import { idempotencyKeys } from "../../platform/http/idempotency";
import { Elysia, t } from "elysia";
import type { AuthGuard } from "../../platform/http/auth-guard";
import { errors, IdOf, IdParam, PageQuery } from "../../platform/http/models";
import type { EdgeCache } from "../../platform/edge-cache";
import type { FastRoute } from "../../platform/http/fast-path";
import { isId } from "../../platform/ids";
import type { AppPlatform } from "../clients";
import { agentCacheKey } from "./contract";
import type { AgentOut, MessageOut } from "./model";
import { lastEventId, runEventStream, waitForRun } from "./live";
import {
  Agent, AgentPage, CreateAgentBody, CreateMessageBody, CreateThreadBody, Message, MessagePage, Thread, ThreadPage, UpdateAgentBody, UpdateThreadBody,
} from "./model";
import { CreateRunBody, CreateThreadAndRunBody, EventsQuery, ListRunsQuery, Run, RunPage, RunTrace, StepPage, ToolOutputsBody, WaitQuery } from "../../runs";

const AgentIdParam = IdParam("agt", "Agent id (agt_…)");
const ThreadIdParam = IdParam("thr", "Thread id (thr_…)");
const RunIdParam = IdParam("run", "Run id (run_…)");
const MessageParams = t.Object({ id: IdOf("thr", "Thread id (thr_…)"), message_id: IdOf("msg", "Message id (msg_…)") });
/** The 200 of a run create with `stream: true`, documented without a body schema so generated clients type the JSON reply (201) as Run. */
const STREAM_200 = "With `stream: true`: the run's events as `text/event-stream`, the same stream as `streamRunEvents` (GET /v1/runs/{id}/events), whose response documents the events";
/** What Elysia sends with an object body: the cached JSON answers with the same header. */
const JSON_HEADERS = { "content-type": "application/json;charset=utf-8" };
const jsonResponse = (json: string) => new Response(json, { headers: JSON_HEADERS });
const Deleted = (object: string) => t.Object({ id: t.String(), object: t.Literal(object), deleted: t.Literal(true) });

const AGENTS_PREFIX = "/v1/agents/";

/**
 * GET /v1/agents/:id from memory (see platform/http/fast-path.ts): a cached token, a cached
 * agent of the token's organization, and an allowance of the rate limit. Anything else (a
 * miss, another organization's id, a token not seen yet) is left to the route below.
 */
export function agentReadFastRoute(guard: AuthGuard, agentCache: EdgeCache<AgentOut>): FastRoute {
  return {
    route: "/v1/agents/:id",
    method: "GET",
    match(pathname) {
      const id = pathname.startsWith(AGENTS_PREFIX) ? pathname.slice(AGENTS_PREFIX.length) : "";
      return isId("agt", id) ? id : undefined;
    },
    answer(request, id) {
      const admitted = guard.admitNow(request.headers.get("authorization"), (principal) => agentCache.cachedJson(agentCacheKey(principal.orgId, id)));
      return admitted && { body: admitted.value, headers: { ...JSON_HEADERS, ...admitted.headers } };
    },
  };
}

export function agentsController(p: AppPlatform, guard: AuthGuard, agentCache: EdgeCache<AgentOut>) {
  const agentsApi = () => p.clients.agents;
  return new Elysia({ name: "agents-controller" })
    .use(guard.plugin)
    .use(idempotencyKeys)
    // ------------------------------------------------------------- agents
    .post(
      "/agents",
      async ({ principal, body, idempotency, set }) => {
        const r = await agentsApi().createAgent(principal.orgId, body, idempotency);
        set.status = r.status;
        return r.body;
      },
      { auth: true, body: CreateAgentBody, idempotent: true, response: { 201: Agent, ...errors(400, 401, 409, 422) }, detail: { tags: ["agents"], summary: "Create an agent" } },
    )
    .get("/agents", ({ principal, query }) => agentsApi().listAgents(principal.orgId, query), {
      auth: true, query: PageQuery, response: { 200: AgentPage, ...errors(400, 401) }, detail: { tags: ["agents"], summary: "List agents" },
    })
    // The hot read: served from the gateway's in-process cache, invalidated over the bus.
    // A hit answers with the entry's JSON text: the value was validated against Agent when it
    // was loaded (the miss goes through the response schema), so it is not copied, checked and
    // serialised again on every request.
    .get("/agents/:id", ({ principal, params }) => {
      const key = agentCacheKey(principal.orgId, params.id);
      const json = agentCache.cachedJson(key);
      if (json !== undefined) return jsonResponse(json) as unknown as AgentOut;
      return agentCache.get(key, () => agentsApi().getAgent(principal.orgId, params.id));
    }, {
      auth: true, params: AgentIdParam, response: { 200: Agent, ...errors(401, 404) }, detail: { tags: ["agents"], summary: "Get an agent" },
    })
    .patch("/agents/:id", ({ principal, params, body }) => agentsApi().updateAgent(principal.orgId, params.id, body), {
      auth: true, params: AgentIdParam, body: UpdateAgentBody, response: { 200: Agent, ...errors(400, 401, 404, 422) }, detail: { tags: ["agents"], summary: "Update an agent" },
    })
    .delete("/agents/:id", ({ principal, params }) => agentsApi().deleteAgent(principal.orgId, params.id), {
      auth: true, params: AgentIdParam, response: { 200: Deleted("agent"), ...errors(401, 404) }, detail: { tags: ["agents"], summary: "Delete an agent and its memory" },
    })
    // ------------------------------------------------------------- threads and messages
    .post(
      "/threads",
      async ({ principal, body, idempotency, set }) => {
        const r = await agentsApi().createThread(principal.orgId, body ?? {}, idempotency);
        set.status = r.status;
        return r.body;
      },
      { auth: true, body: t.Optional(CreateThreadBody), idempotent: true, response: { 201: Thread, ...errors(400, 401, 409) }, detail: { tags: ["threads"], summary: "Create a thread" } },
    )
    .get("/threads", ({ principal, query }) => agentsApi().listThreads(principal.orgId, query), {
      auth: true, query: PageQuery, response: { 200: ThreadPage, ...errors(400, 401) }, detail: { tags: ["threads"], summary: "List threads" },
    })
    .get("/threads/:id", ({ principal, params }) => agentsApi().getThread(principal.orgId, params.id), {
      auth: true, params: ThreadIdParam, response: { 200: Thread, ...errors(401, 404) }, detail: { tags: ["threads"], summary: "Get a thread" },
    })
    .patch("/threads/:id", ({ principal, params, body }) => agentsApi().updateThread(principal.orgId, params.id, body), {
      auth: true, params: ThreadIdParam, body: UpdateThreadBody, response: { 200: Thread, ...errors(400, 401, 404) }, detail: { tags: ["threads"], operationId: "updateThread", summary: "Update a thread (its metadata is replaced)" },
    })
    .delete("/threads/:id", ({ principal, params }) => agentsApi().deleteThread(principal.orgId, params.id), {
      auth: true, params: ThreadIdParam, response: { 200: Deleted("thread"), ...errors(401, 404) }, detail: { tags: ["threads"], summary: "Delete a thread with its messages and runs" },
    })
    .post(
      "/threads/:id/messages",
      async ({ principal, params, body, idempotency }) => {
        const r = await agentsApi().createMessage(principal.orgId, params.id, body, idempotency);
        // The hot write: its body is built from the inserted row (messageOut, shaped by the
        // Message type), so it is sent as JSON text without the response schema's check and
        // clean on every request — the same bytes and headers Elysia would send.
        return new Response(JSON.stringify(r.body), { status: r.status, headers: JSON_HEADERS }) as unknown as MessageOut;
      },
      { auth: true, params: ThreadIdParam, body: CreateMessageBody, idempotent: true, response: { 201: Message, ...errors(400, 401, 404, 409) }, detail: { tags: ["threads"], summary: "Append a message" } },
    )
    .get("/threads/:id/messages", ({ principal, params, query }) => agentsApi().listMessages(principal.orgId, params.id, query), {
      auth: true, params: ThreadIdParam, query: PageQuery, response: { 200: MessagePage, ...errors(400, 401, 404) }, detail: { tags: ["threads"], summary: "List messages" },
    })
    .get("/threads/:id/messages/:message_id", ({ principal, params }) => agentsApi().getMessage(principal.orgId, params.id, params.message_id), {
      auth: true, params: MessageParams, response: { 200: Message, ...errors(401, 404) }, detail: { tags: ["threads"], operationId: "getMessage", summary: "Get a message" },
    })
    .delete("/threads/:id/messages/:message_id", ({ principal, params }) => agentsApi().deleteMessage(principal.orgId, params.id, params.message_id), {
      auth: true, params: MessageParams, response: { 200: Deleted("message"), ...errors(401, 404, 409) },
      detail: { tags: ["threads"], operationId: "deleteMessage", summary: "Delete a message (409 thread_busy while a run is active on the thread)" },
    })
    // ------------------------------------------------------------- runs
    .post(
      "/threads/runs",
      async ({ principal, body, idempotency, set }) => {
        const r = await agentsApi().createThreadAndRun(principal.orgId, body, idempotency, principal.keyId ?? null);
        if (body.stream) return runEventStream(p, principal.orgId, r.body.id, 0) as never;
        set.status = r.status;
        return r.body;
      },
      {
        auth: true, body: CreateThreadAndRunBody, idempotent: true,
        response: { 201: Run, ...errors(400, 401, 402, 404, 409) },
        detail: {
          tags: ["runs"], operationId: "createThreadAndRun", summary: "Create a thread (metadata, first messages) and start a run on it in one call; the run's thread_id names the thread",
          responses: { 200: { description: STREAM_200 } },
        },
      },
    )
    .get("/runs", ({ principal, query }) => agentsApi().listOrgRuns(principal.orgId, query), {
      auth: true, query: ListRunsQuery, response: { 200: RunPage, ...errors(400, 401) },
      detail: { tags: ["runs"], operationId: "listRuns", summary: "List the organization's runs, filtered by status, agent, thread and creation time" },
    })
    .post(
      "/threads/:id/runs",
      async ({ principal, params, body, idempotency, set }) => {
        const r = await agentsApi().createRun(principal.orgId, params.id, body, idempotency, principal.keyId ?? null);
        // The stream is a Response (text/event-stream), not validated; documented in detail.responses
        // without a body schema, so generated clients type the JSON reply (201) as Run.
        if (body.stream) return runEventStream(p, principal.orgId, r.body.id, 0) as never;
        set.status = r.status;
        return r.body;
      },
      {
        auth: true, params: ThreadIdParam, body: CreateRunBody, idempotent: true,
        response: {
          201: Run,
          ...errors(400, 401, 402, 404, 409),
        },
        detail: {
          tags: ["runs"],
          summary: "Start a run (status queued); with stream: true the response is a text/event-stream of its events",
          responses: { 200: { description: STREAM_200 } },
        },
      },
    )
    .get("/threads/:id/runs", ({ principal, params, query }) => agentsApi().listRuns(principal.orgId, params.id, query), {
      auth: true, params: ThreadIdParam, query: PageQuery, response: { 200: RunPage, ...errors(400, 401, 404) }, detail: { tags: ["runs"], summary: "List the runs of a thread" },
    })
    .get("/runs/:id", ({ principal, params }) => agentsApi().getRun(principal.orgId, params.id), {
      auth: true, params: RunIdParam, response: { 200: Run, ...errors(401, 404) }, detail: { tags: ["runs"], summary: "Get a run" },
    })
    .get("/runs/:id/trace", ({ principal, params }) => agentsApi().runTrace(principal.orgId, params.id), {
      auth: true, params: RunIdParam, response: { 200: RunTrace, ...errors(401, 404) },
      detail: { tags: ["runs"], summary: "The run's timeline: queue wait, every model and tool call with latency, tokens and cost, time in requires_action" },
    })
    .get("/runs/:id/steps", ({ principal, params, query }) => agentsApi().listSteps(principal.orgId, params.id, query), {
      auth: true, params: RunIdParam, query: PageQuery, response: { 200: StepPage, ...errors(400, 401, 404) }, detail: { tags: ["runs"], summary: "List the steps (model and tool calls) of a run" },
    })
    .get(
      "/runs/:id/events",
      ({ principal, params, query, request }) =>
        runEventStream(p, principal.orgId, params.id, query.after ?? lastEventId(request.headers.get("last-event-id")) ?? 0),
      {
        auth: true, params: RunIdParam, query: EventsQuery,
        detail: {
          tags: ["runs"],
          summary: "Server-Sent Events of a run: replays events after `after` (or Last-Event-ID), then follows live; ends after the terminal event",
          responses: {
            200: {
              description: "text/event-stream; `id:` = seq, `event:` = type (run.*, step.*, message.delta, tool_call.*, error), `data:` = its JSON (RunStreamData)",
              content: {
                "text/event-stream": {
                  // contentSchema (JSON Schema 2020-12) names each event's payload; the 3.0 typings lack it.
                  schema: { type: "string", contentMediaType: "text/event-stream", contentSchema: { $ref: "#/components/schemas/RunStreamData" }, description: "Each event's `data:` is a RunStreamData (by `event:` type)" } as { type: "string" },
                  example: 'id: 3\nevent: message.delta\ndata: {"step_id":"step_…","delta":"Hel"}\n\n',
                },
              },
            },
            204: { description: "The run has ended and no event follows the cursor: nothing more will come (an EventSource stops reconnecting)" },
          },
        },
      },
    )
    .get("/runs/:id/wait", ({ principal, params, query }) => waitForRun(p, principal.orgId, params.id, query.timeout_s ?? 30), {
      auth: true, params: RunIdParam, query: WaitQuery, response: { 200: Run, ...errors(400, 401, 404) },
      detail: { tags: ["runs"], summary: "Wait (up to timeout_s, max 60) until the run is terminal or requires_action" },
    })
    .post("/runs/:id/cancel", ({ principal, params }) => agentsApi().cancelRun(principal.orgId, params.id), {
      auth: true, params: RunIdParam, response: { 200: Run, ...errors(401, 404, 409) }, detail: { tags: ["runs"], summary: "Cancel a run: no further model or tool call starts" },
    })
    .post("/runs/:id/tool_outputs", ({ principal, params, body }) => agentsApi().submitToolOutputs(principal.orgId, params.id, body), {
      auth: true, params: RunIdParam, body: ToolOutputsBody, response: { 200: Run, ...errors(400, 401, 404, 409) },
      detail: { tags: ["runs"], summary: "Submit client tool outputs and approvals; the run resumes" },
    });
}
