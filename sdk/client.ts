/**
 * A small typed client of the AgentOS API: openapi-fetch over the types generated from the
 * live OpenAPI document (sdk/schema.d.ts, by scripts/generate-sdk.ts), plus what every caller
 * needs around it — bearer auth (an access token or an API key), one transparent refresh on a
 * 401 (`token_expired` or `unauthorized`) with the rotating refresh token, one retry after a
 * short 429 Retry-After, typed methods per resource that throw AgentOSError, pagination as
 * async iterators, run event streams that reconnect from the last seq, and runs.wait().
 *
 *   const api = createAgentOS({ baseUrl: "http://localhost:8080" });
 *   await api.login("ada@example.com", "correct horse battery");
 *   const agent = await api.agents.create({ name: "helper", model: "gpt-4o-mini" });
 *   const run = await api.threads.createAndRun({ agent_id: agent.id, input: "Hi" });
 *   for await (const e of api.runs.stream(run.id)) if (e.type === "message.delta") write(e.data.delta);
 *   for await (const m of api.messages.iterate(run.thread_id)) console.log(m.role, m.content);
 *
 * Tokens live in memory only (never localStorage): a page reload means logging in again.
 * Webhook signatures: sdk/webhooks.ts (kept apart: it is not needed in a browser).
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema";

export type { components, paths };

type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;
/** The JSON body of an operation's success response: `Ok<"/v1/agents/{id}", "get">` is an agent. */
export type Ok<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { responses: infer R } ? JsonOf<R[200 & keyof R]> | JsonOf<R[201 & keyof R]> : never;
/** The JSON body of one status: `Reply<"/v1/threads/{id}/runs", "post", 201>` is a run (its 200 is the stream). */
export type Reply<P extends keyof paths, M extends keyof paths[P], S extends number> = paths[P][M] extends { responses: infer R } ? JsonOf<R[S & keyof R]> : never;
/** An operation's JSON request body. */
export type BodyOf<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;
/** An operation's query parameters. */
export type QueryOf<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

export type Agent = Ok<"/v1/agents/{id}", "get">;
export type Thread = Ok<"/v1/threads/{id}", "get">;
export type Message = Ok<"/v1/threads/{id}/messages/{message_id}", "get">;
export type Run = Ok<"/v1/runs/{id}", "get">;
export type Step = Ok<"/v1/runs/{id}/steps", "get">["data"][number];
export type RunStatus = Run["status"];
export type CreateRunBody = Omit<BodyOf<"/v1/threads/{id}/runs", "post">, "stream">;
export type CreateThreadAndRunBody = Omit<BodyOf<"/v1/threads/runs", "post">, "stream">;
/** A page of any list: `{data, has_more, next_cursor}`. */
export interface PageOf<T> {
  data: T[];
  has_more: boolean;
  next_cursor: string | null;
}

/** The SPEC §2 error body: `{"error":{"code","message","details","request_id"}}`. */
export interface ApiError {
  code: string;
  message: string;
  details?: unknown;
  request_id?: string;
}

export interface Session {
  accessToken: string;
  refreshToken: string;
}

export interface RunEvent {
  /** The run's event sequence number (SSE `id:`). */
  seq: number;
  /** e.g. run.in_progress, message.delta, tool_call.created, run.requires_action, run.completed */
  type: string;
  data: any;
}

export interface AgentOSOptions {
  /** Origin of the API ("" = the page's own origin). */
  baseUrl?: string;
  /** An API key (POST /v1/api-keys) sent when there is no session; it is never refreshed. */
  apiKey?: string;
  /** Called with a Request only (as openapi-fetch does). */
  fetch?: typeof fetch;
  /** A 429 whose Retry-After is at most this many seconds is retried once after it (0 = never). Default 3. */
  maxRetryAfterSeconds?: number;
  /** Told whenever the session changes (login, refresh, logout, a refresh that failed → null). */
  onSession?: (session: Session | null) => void;
}

const REFRESHABLE = new Set(["token_expired", "unauthorized"]);

export class AgentOSError extends Error {
  constructor(readonly status: number, readonly error: ApiError) {
    super(error.message);
  }
}

/** Options of a run event stream. */
export interface StreamOptions {
  /** Start after this seq (0 = from the first event). */
  after?: number;
  /** Reconnections allowed in a row without receiving an event (default 5). */
  maxReconnects?: number;
  /** First reconnect delay in ms, doubling (default 250). */
  reconnectDelayMs?: number;
  signal?: AbortSignal;
}

export interface WaitOptions {
  /** Give up after this many seconds (default 300): the run as it is then is returned. */
  timeoutS?: number;
  /** Also return at requires_action (default true): the caller has to act. */
  untilRequiresAction?: boolean;
}

/** Runs end with one of these events; nothing follows them. */
export const TERMINAL_EVENTS = ["run.completed", "run.failed", "run.cancelled", "run.expired"] as const;
const TERMINAL_STATUSES: readonly string[] = ["completed", "failed", "cancelled", "expired"];
const isTerminalEvent = (event: RunEvent) => (TERMINAL_EVENTS as readonly string[]).includes(event.type);
const sleepMs = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export type AgentOS = Client<paths> & {
  session(): Session | null;
  setSession(session: Session | null): void;
  signup(email: string, password: string, name?: string): Promise<void>;
  login(email: string, password: string): Promise<void>;
  logout(): Promise<void>;
  /** POST /v1/threads/{id}/runs with stream: true: the open text/event-stream response. */
  startRunStream(threadId: string, body: CreateRunBody): Promise<Response>;
  /** GET /v1/runs/{id}/events (resumes after `after`). */
  openRunEvents(runId: string, after?: number): Promise<Response>;
  /** The events of an SSE response, in order, until the server ends the stream. */
  runEvents(response: Response): AsyncGenerator<RunEvent>;
  agents: {
    create(body: BodyOf<"/v1/agents", "post">): Promise<Agent>;
    get(id: string): Promise<Agent>;
    update(id: string, body: BodyOf<"/v1/agents/{id}", "patch">): Promise<Agent>;
    delete(id: string): Promise<Ok<"/v1/agents/{id}", "delete">>;
    list(query?: QueryOf<"/v1/agents", "get">): Promise<PageOf<Agent>>;
    iterate(query?: QueryOf<"/v1/agents", "get">): AsyncGenerator<Agent>;
  };
  threads: {
    create(body?: BodyOf<"/v1/threads", "post">): Promise<Thread>;
    get(id: string): Promise<Thread>;
    update(id: string, body: BodyOf<"/v1/threads/{id}", "patch">): Promise<Thread>;
    delete(id: string): Promise<Ok<"/v1/threads/{id}", "delete">>;
    list(query?: QueryOf<"/v1/threads", "get">): Promise<PageOf<Thread>>;
    iterate(query?: QueryOf<"/v1/threads", "get">): AsyncGenerator<Thread>;
    /** POST /v1/threads/runs: a new thread and a run on it (`run.thread_id`). */
    createAndRun(body: CreateThreadAndRunBody): Promise<Run>;
  };
  messages: {
    create(threadId: string, body: BodyOf<"/v1/threads/{id}/messages", "post">): Promise<Message>;
    get(threadId: string, messageId: string): Promise<Message>;
    delete(threadId: string, messageId: string): Promise<Ok<"/v1/threads/{id}/messages/{message_id}", "delete">>;
    list(threadId: string, query?: QueryOf<"/v1/threads/{id}/messages", "get">): Promise<PageOf<Message>>;
    iterate(threadId: string, query?: QueryOf<"/v1/threads/{id}/messages", "get">): AsyncGenerator<Message>;
  };
  runs: {
    create(threadId: string, body: CreateRunBody): Promise<Run>;
    get(id: string): Promise<Run>;
    /** GET /v1/runs: the organization's runs (status, agent_id, thread_id, created_after/before). */
    list(query?: QueryOf<"/v1/runs", "get">): Promise<PageOf<Run>>;
    iterate(query?: QueryOf<"/v1/runs", "get">): AsyncGenerator<Run>;
    listForThread(threadId: string, query?: QueryOf<"/v1/threads/{id}/runs", "get">): Promise<PageOf<Run>>;
    steps(runId: string, query?: QueryOf<"/v1/runs/{id}/steps", "get">): AsyncGenerator<Step>;
    cancel(id: string): Promise<Run>;
    submitToolOutputs(id: string, body: BodyOf<"/v1/runs/{id}/tool_outputs", "post">): Promise<Run>;
    trace(id: string): Promise<Ok<"/v1/runs/{id}/trace", "get">>;
    /** Until the run is terminal (or requires_action): long-polls GET /v1/runs/{id}/wait. */
    wait(id: string, options?: WaitOptions): Promise<Run>;
    /**
     * The run's events until its terminal event. A dropped connection is resumed from the last
     * seq received (Last-Event-ID), so nothing is lost or repeated.
     */
    stream(id: string, options?: StreamOptions): AsyncGenerator<RunEvent>;
    /** Starts a run with stream: true and follows it like stream() (resuming through the events endpoint). */
    createAndStream(threadId: string, body: CreateRunBody, options?: Omit<StreamOptions, "after">): AsyncGenerator<RunEvent>;
  };
  billing: {
    usage(query?: QueryOf<"/v1/billing/usage", "get">): Promise<Ok<"/v1/billing/usage", "get">>;
  };
};

/** Throws the API's error body of a failed call; returns the data of a successful one. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    const body = (result.error as { error?: ApiError } | undefined)?.error;
    throw new AgentOSError(result.response.status, body ?? { code: "http_error", message: `HTTP ${result.response.status}` });
  }
  return result.data as T;
}

export function createAgentOS(opts: AgentOSOptions = {}): AgentOS {
  const baseUrl = (opts.baseUrl ?? "").replace(/\/+$/, "");
  const rawFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const maxRetryAfter = opts.maxRetryAfterSeconds ?? 3;
  let session: Session | null = null;
  let refreshing: Promise<boolean> | null = null;

  const setSession = (next: Session | null) => {
    session = next;
    opts.onSession?.(next);
  };

  /** One refresh at a time: concurrent 401s wait for the same one. */
  function refresh(): Promise<boolean> {
    const token = session?.refreshToken;
    if (!token) return Promise.resolve(false);
    refreshing ??= (async () => {
      try {
        const res = await rawFetch(
          new Request(`${baseUrl}/v1/auth/refresh`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refresh_token: token }) }),
        );
        if (!res.ok) {
          setSession(null);
          return false;
        }
        const body = (await res.json()) as { access_token: string; refresh_token: string };
        setSession({ accessToken: body.access_token, refreshToken: body.refresh_token });
        return true;
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  const withAuth = (request: Request) => {
    const bearer = session?.accessToken ?? opts.apiKey;
    if (bearer) request.headers.set("authorization", `Bearer ${bearer}`);
    return request;
  };

  /** Sends with the access token; on a refreshable 401 refreshes once and sends again. */
  async function authedFetch(input: Request): Promise<Response> {
    const retry = input.clone() as Request;
    const sentWith = session?.accessToken;
    const response = await sendRateLimited(withAuth(input));
    if (response.status !== 401 || !session || new URL(input.url).pathname === "/v1/auth/refresh") return response;
    const code = await response.clone().json().then((b) => (b as { error?: ApiError }).error?.code, () => undefined);
    if (!code || !REFRESHABLE.has(code)) return response;
    // Another call refreshed while this one was in flight: just retry with the new token.
    const fresh = session.accessToken !== sentWith || (await refresh());
    return fresh && session ? sendRateLimited(withAuth(retry)) : response;
  }

  /** A 429 was refused before any work was done: wait out a short Retry-After and send once more. */
  async function sendRateLimited(request: Request): Promise<Response> {
    const again = maxRetryAfter > 0 ? (request.clone() as Request) : null;
    const response = await rawFetch(request);
    const wait = Number(response.headers.get("retry-after"));
    if (response.status !== 429 || !again || !(wait >= 0 && wait <= maxRetryAfter)) return response;
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    return rawFetch(again);
  }

  const client = createClient<paths>({ baseUrl, fetch: authedFetch });

  const adopt = (result: { data?: { access_token: string; refresh_token: string }; error?: unknown; response: Response }) => {
    const body = unwrap(result);
    setSession({ accessToken: body.access_token, refreshToken: body.refresh_token });
  };

  async function* runEvents(response: Response): AsyncGenerator<RunEvent> {
    if (!response.ok || !response.body) {
      const body = (await response.json().catch(() => undefined)) as { error?: ApiError } | undefined;
      throw new AgentOSError(response.status, body?.error ?? { code: "http_error", message: `HTTP ${response.status}` });
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseSseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) yield event;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  const path = (id: string) => encodeURIComponent(id);

  /** One typed call: the data, or AgentOSError. */
  async function call<T>(method: string, url: string, init: { body?: unknown; query?: Record<string, unknown> } = {}): Promise<T> {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(init.query ?? {})) if (v !== undefined && v !== null) search.set(k, String(v));
    const qs = search.size ? `?${search}` : "";
    const response = await authedFetch(
      new Request(`${baseUrl}${url}${qs}`, {
        method,
        headers: init.body === undefined ? {} : { "content-type": "application/json" },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      }),
    );
    const text = await response.text();
    const body = text ? JSON.parse(text) : undefined;
    if (!response.ok) throw new AgentOSError(response.status, (body as { error?: ApiError } | undefined)?.error ?? { code: "http_error", message: `HTTP ${response.status}` });
    return body as T;
  }

  /** Every item of a list, page after page (following next_cursor). */
  async function* paginate<T>(page: (query: { after?: string }) => Promise<PageOf<T>>): AsyncGenerator<T> {
    let after: string | undefined;
    for (;;) {
      const p = await page({ after });
      yield* p.data;
      if (!p.has_more || !p.next_cursor) return;
      after = p.next_cursor;
    }
  }

  /**
   * Follows a run's events from `after`, reconnecting with Last-Event-ID until its terminal
   * event. Network failures count against `maxReconnects` (reset by every event); a stream the
   * server or a proxy ended cleanly is simply reopened.
   */
  async function* follow(runId: string, options: StreamOptions = {}): AsyncGenerator<RunEvent> {
    let last = options.after ?? 0;
    let failures = 0;
    const maxReconnects = options.maxReconnects ?? 5;
    const delayMs = options.reconnectDelayMs ?? 250;
    for (;;) {
      if (options.signal?.aborted) return;
      try {
        const response = await authedFetch(
          new Request(`${baseUrl}/v1/runs/${path(runId)}/events`, { headers: { accept: "text/event-stream", "last-event-id": String(last) }, signal: options.signal }),
        );
        if (response.status === 204) return; // the run has ended and nothing follows `last`
        for await (const event of runEvents(response)) {
          if (event.seq <= last) continue;
          last = event.seq;
          failures = 0;
          yield event;
          if (isTerminalEvent(event)) return;
        }
        await sleepMs(delayMs);
        continue;
      } catch (err) {
        if (err instanceof AgentOSError || options.signal?.aborted) throw err;
        // A network failure: reconnect below.
      }
      if (++failures > maxReconnects) throw new AgentOSError(0, { code: "stream_lost", message: `The event stream of run ${runId} was lost ${failures} times in a row after seq ${last}.` });
      await sleepMs(delayMs * 2 ** (failures - 1));
    }
  }

  const pageOf = <T>(url: string) => (query?: object) => call<PageOf<T>>("GET", url, { query: query as Record<string, unknown> });

  const resources = {
    agents: {
      create: (body) => call("POST", "/v1/agents", { body }),
      get: (id) => call("GET", `/v1/agents/${path(id)}`),
      update: (id, body) => call("PATCH", `/v1/agents/${path(id)}`, { body }),
      delete: (id) => call("DELETE", `/v1/agents/${path(id)}`),
      list: pageOf<Agent>("/v1/agents"),
      iterate: (query) => paginate((c) => pageOf<Agent>("/v1/agents")({ ...query, ...c })),
    },
    threads: {
      create: (body = {}) => call("POST", "/v1/threads", { body }),
      get: (id) => call("GET", `/v1/threads/${path(id)}`),
      update: (id, body) => call("PATCH", `/v1/threads/${path(id)}`, { body }),
      delete: (id) => call("DELETE", `/v1/threads/${path(id)}`),
      list: pageOf<Thread>("/v1/threads"),
      iterate: (query) => paginate((c) => pageOf<Thread>("/v1/threads")({ ...query, ...c })),
      createAndRun: (body) => call("POST", "/v1/threads/runs", { body: { ...body, stream: false } }),
    },
    messages: {
      create: (threadId, body) => call("POST", `/v1/threads/${path(threadId)}/messages`, { body }),
      get: (threadId, messageId) => call("GET", `/v1/threads/${path(threadId)}/messages/${path(messageId)}`),
      delete: (threadId, messageId) => call("DELETE", `/v1/threads/${path(threadId)}/messages/${path(messageId)}`),
      list: (threadId, query) => pageOf<Message>(`/v1/threads/${path(threadId)}/messages`)(query),
      iterate: (threadId, query) => paginate((c) => pageOf<Message>(`/v1/threads/${path(threadId)}/messages`)({ ...query, ...c })),
    },
    runs: {
      create: (threadId, body) => call("POST", `/v1/threads/${path(threadId)}/runs`, { body: { ...body, stream: false } }),
      get: (id) => call("GET", `/v1/runs/${path(id)}`),
      list: pageOf<Run>("/v1/runs"),
      iterate: (query) => paginate((c) => pageOf<Run>("/v1/runs")({ ...query, ...c })),
      listForThread: (threadId, query) => pageOf<Run>(`/v1/threads/${path(threadId)}/runs`)(query),
      steps: (runId, query) => paginate((c) => pageOf<Step>(`/v1/runs/${path(runId)}/steps`)({ ...query, ...c })),
      cancel: (id) => call("POST", `/v1/runs/${path(id)}/cancel`),
      submitToolOutputs: (id, body) => call("POST", `/v1/runs/${path(id)}/tool_outputs`, { body }),
      trace: (id) => call("GET", `/v1/runs/${path(id)}/trace`),
      async wait(id, options = {}) {
        const deadline = Date.now() + (options.timeoutS ?? 300) * 1000;
        const enough = (run: Run) => TERMINAL_STATUSES.includes(run.status) || (run.status === "requires_action" && options.untilRequiresAction !== false);
        for (;;) {
          const left = Math.max(0, Math.min(60, Math.ceil((deadline - Date.now()) / 1000)));
          const run = await call<Run>("GET", `/v1/runs/${path(id)}/wait`, { query: { timeout_s: left } });
          if (enough(run) || left === 0) return run;
        }
      },
      stream: (id, options) => follow(id, options),
      async *createAndStream(threadId, body, options = {}) {
        const response = await startRunStream(threadId, body);
        let runId: string | undefined;
        let after = 0;
        try {
          for await (const event of runEvents(response)) {
            runId ??= event.type === "run.created" ? (event.data as { id: string }).id : undefined;
            after = event.seq;
            yield event;
            if (isTerminalEvent(event)) return;
          }
        } catch (err) {
          if (err instanceof AgentOSError || !runId) throw err;
        }
        if (!runId) throw new AgentOSError(0, { code: "stream_lost", message: "The run's stream ended before its first event." });
        yield* follow(runId, { ...options, after });
      },
    },
    billing: {
      usage: (query) => call("GET", "/v1/billing/usage", { query: query as Record<string, unknown> }),
    },
  } satisfies Pick<AgentOS, "agents" | "threads" | "messages" | "runs" | "billing">;

  function startRunStream(threadId: string, body: CreateRunBody) {
    return authedFetch(
      new Request(`${baseUrl}/v1/threads/${path(threadId)}/runs`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify({ ...body, stream: true }),
      }),
    );
  }

  return Object.assign(client, resources, {
    session: () => session,
    setSession,
    async signup(email: string, password: string, name?: string) {
      adopt(await client.POST("/v1/auth/signup", { body: { email, password, ...(name ? { name } : {}) } }));
    },
    async login(email: string, password: string) {
      adopt(await client.POST("/v1/auth/login", { body: { email, password } }));
    },
    async logout() {
      const refreshToken = session?.refreshToken;
      if (refreshToken) await client.POST("/v1/auth/logout", { body: { refresh_token: refreshToken } }).catch(() => {});
      setSession(null);
    },
    startRunStream,
    openRunEvents(runId, after = 0) {
      const query = after > 0 ? `?after=${after}` : "";
      return authedFetch(new Request(`${baseUrl}/v1/runs/${path(runId)}/events${query}`, { headers: { accept: "text/event-stream" } }));
    },
    runEvents,
  } satisfies Omit<AgentOS, keyof Client<paths> | keyof typeof resources>);
}

function parseSseEvent(block: string): RunEvent | null {
  let type = "message";
  let seq = 0;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "id") seq = Number(value);
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return null;
  const text = data.join("\n");
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { seq, type, data: parsed };
}
