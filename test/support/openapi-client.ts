/**
 * A small client program written only against types generated from the OpenAPI document
 * (openapi-typescript) and openapi-fetch — what a new user of the API writes. test/openapi.test.ts
 * copies it beside freshly generated types (the import below is rewritten to "./schema"),
 * type-checks it with `tsc --strict` and runs it; here it is checked against sdk/schema.d.ts.
 */
import createClient from "openapi-fetch";
import type { components, paths } from "../../sdk/schema";

type Run = components["schemas"]["Run"];
type ApiError = components["schemas"]["Error"];

export interface DriveResult {
  stream: string;
  status: Run["status"];
  messages: (string | null)[];
  steps: number;
  totalTokens: number;
}

function must<T>(reply: { data?: T; error?: unknown; response: Response }, what: string): T {
  if (reply.data === undefined) throw new Error(`${what}: ${reply.response.status} ${JSON.stringify(reply.error)}`);
  return reply.data;
}

export async function drive(baseUrl: string, fetchFn: typeof fetch): Promise<DriveResult> {
  const api = createClient<paths>({ baseUrl, fetch: fetchFn });
  const email = `client-${crypto.randomUUID()}@example.com`;
  const session = must(await api.POST("/v1/auth/signup", { body: { email, password: "correct horse battery" } }), "signup");
  const token: string = session.access_token;
  const expiresIn: number = session.expires_in; // an integer, not `string | number`
  if (!(expiresIn > 0)) throw new Error("expires_in");
  api.use({
    onRequest({ request }) {
      request.headers.set("authorization", `Bearer ${token}`);
      return request;
    },
  });

  const agent = must(await api.POST("/v1/agents", { body: { name: "client", model: "fake-model" } }), "createAgent");
  const listed = must(await api.GET("/v1/agents", { params: { query: { limit: 10 } } }), "listAgents");
  if (!listed.data.some((a) => a.id === agent.id)) throw new Error("listAgents misses the agent");
  // A documented 400: the error body is typed as the named error shape.
  const bad = await api.GET("/v1/agents", { params: { query: { limit: 0 } } });
  const badError: ApiError | undefined = bad.error;
  if (bad.response.status !== 400 || !badError?.error.code) throw new Error("limit=0 should be a 400 with a code");

  const thread = must(await api.POST("/v1/threads", { body: {} }), "createThread");
  const created = must(await api.POST("/v1/threads/{id}/runs", { params: { path: { id: thread.id } }, body: { agent_id: agent.id, input: "Say hello" } }), "createRun");
  const runId: string = created.id; // the JSON reply is a Run (the stream is another response)

  // The run's events through the SSE operation: replayed, then live until the terminal event.
  const stream = await api.GET("/v1/runs/{id}/events", { params: { path: { id: runId } }, parseAs: "text" });
  if (stream.response.status !== 200 || typeof stream.data !== "string") throw new Error(`streamRunEvents: ${stream.response.status}`);
  const waited = must(await api.GET("/v1/runs/{id}/wait", { params: { path: { id: runId }, query: { timeout_s: 30 } } }), "waitForRun");
  const polled = must(await api.GET("/v1/runs/{id}", { params: { path: { id: runId } } }), "getRun");
  if (polled.status !== waited.status) throw new Error("getRun and waitForRun disagree");
  // A finished run's stream, asked after its last event: 204, nothing more will come.
  const after = await api.GET("/v1/runs/{id}/events", { params: { path: { id: runId }, query: { after: 1_000_000 } }, parseAs: "text" });
  if (after.response.status !== 204) throw new Error(`finished stream: ${after.response.status}`);

  const missingId = "run_00000000000000000000000000";
  const missing = await api.GET("/v1/runs/{id}/events", { params: { path: { id: missingId } }, parseAs: "text" });
  const missingRun = await api.GET("/v1/runs/{id}", { params: { path: { id: missingId } } });
  if (missing.response.status !== 404 || missingRun.error?.error.code === undefined) throw new Error("an unknown run should be a 404");

  const messages = must(await api.GET("/v1/threads/{id}/messages", { params: { path: { id: thread.id }, query: { order: "asc" } } }), "listThreadMessages");
  const steps = must(await api.GET("/v1/runs/{id}/steps", { params: { path: { id: runId } } }), "listRunSteps");
  const usage = must(await api.GET("/v1/billing/usage", { params: { query: { group_by: "model" } } }), "getBillingUsage");
  const totalTokens: number = usage.totals.total_tokens;

  const logout = must(await api.POST("/v1/auth/logout", { body: {} }), "logout");
  const revoked: number = logout.revoked;
  if (revoked < 0) throw new Error("revoked");

  return { stream: stream.data, status: waited.status, messages: messages.data.map((m) => m.content), steps: steps.data.length, totalTokens };
}
