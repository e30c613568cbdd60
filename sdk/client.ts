/**
 * A small typed client of the AgentOS API: openapi-fetch over the types generated from the
 * live OpenAPI document (sdk/schema.d.ts, by scripts/generate-sdk.ts), plus what every caller
 * needs around it — bearer auth, one transparent refresh on a 401 (`token_expired` or
 * `unauthorized`) with the refresh token, one retry after a short 429 Retry-After, and the run
 * event stream (SSE) as an async iterator.
 *
 *   const api = createAgentOS({ baseUrl: "http://localhost:8080" });
 *   await api.login("ada@example.com", "correct horse battery");
 *   const { data } = await api.GET("/v1/agents");
 *   for await (const e of api.runEvents(await api.startRunStream(threadId, { agent_id, input: "Hi" }))) …
 *
 * Tokens live in memory only (never localStorage): a page reload means logging in again.
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema";

export type { components, paths };

type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;
/** The JSON body of an operation's success response: `Ok<"/v1/agents/{id}", "get">` is an agent. */
export type Ok<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { responses: infer R } ? JsonOf<R[200 & keyof R]> | JsonOf<R[201 & keyof R]> : never;

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

export type AgentOS = Client<paths> & {
  session(): Session | null;
  setSession(session: Session | null): void;
  signup(email: string, password: string, name?: string): Promise<void>;
  login(email: string, password: string): Promise<void>;
  logout(): Promise<void>;
  /** POST /v1/threads/{id}/runs with stream: true: the open text/event-stream response. */
  startRunStream(threadId: string, body: Omit<NonNullable<paths["/v1/threads/{id}/runs"]["post"]["requestBody"]>["content"]["application/json"], "stream">): Promise<Response>;
  /** GET /v1/runs/{id}/events (resumes after `after`). */
  openRunEvents(runId: string, after?: number): Promise<Response>;
  /** The events of an SSE response, in order, until the server ends the stream. */
  runEvents(response: Response): AsyncGenerator<RunEvent>;
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
    if (session) request.headers.set("authorization", `Bearer ${session.accessToken}`);
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

  return Object.assign(client, {
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
    startRunStream(threadId, body) {
      return authedFetch(
        new Request(`${baseUrl}/v1/threads/${encodeURIComponent(threadId)}/runs`, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "text/event-stream" },
          body: JSON.stringify({ ...body, stream: true }),
        }),
      );
    },
    openRunEvents(runId, after = 0) {
      const query = after > 0 ? `?after=${after}` : "";
      return authedFetch(new Request(`${baseUrl}/v1/runs/${encodeURIComponent(runId)}/events${query}`, { headers: { accept: "text/event-stream" } }));
    },
    runEvents,
  } satisfies Omit<AgentOS, keyof Client<paths>>);
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
