/**
 * Helpers of the run tests (agents + worker): API shortcuts, an SSE reader, and a local
 * HTTP tool endpoint that records every call. Test support (test/support): nothing in src/ imports it.
 */
export interface Api {
  request(method: string, path: string, opts?: { body?: unknown; token?: string; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
}

export function runApi(t: Api & { url: string }, token: string) {
  const call = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => t.request(method, path, { token, body, headers });
  const ok = async (method: string, path: string, body?: unknown, expected = [200, 201]) => {
    const r = await call(method, path, body);
    if (!expected.includes(r.status)) throw new Error(`${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  return {
    call,
    ok,
    agent: (body: Record<string, unknown> = {}) => ok("POST", "/v1/agents", { name: "agent", model: "fake-model", instructions: "You are a test agent.", ...body }),
    thread: () => ok("POST", "/v1/threads", {}),
    tool: (body: Record<string, unknown>) => ok("POST", "/v1/tools", body),
    run: (threadId: string, body: Record<string, unknown>) => ok("POST", `/v1/threads/${threadId}/runs`, body),
    wait: (runId: string, timeoutS = 20) => ok("GET", `/v1/runs/${runId}/wait?timeout_s=${timeoutS}`),
    get: (runId: string) => ok("GET", `/v1/runs/${runId}`),
    steps: (runId: string) => ok("GET", `/v1/runs/${runId}/steps?limit=100`).then((b) => b.data as any[]),
    messages: (threadId: string) => ok("GET", `/v1/threads/${threadId}/messages?limit=100`).then((b) => b.data as any[]),
    events: (runId: string, after = 0) => readSse(`${t.url}/v1/runs/${runId}/events?after=${after}`, token),
    /** Waits until the run has the status (or a terminal one). */
    async until(runId: string, status: string, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const run = await ok("GET", `/v1/runs/${runId}`);
        if (run.status === status) return run;
        if (Date.now() > end) throw new Error(`run ${runId} is ${run.status}, expected ${status}`);
        await Bun.sleep(20);
      }
    },
  };
}

export interface SseEvent {
  id: number;
  event: string;
  data: any;
}

/**
 * Reads an SSE response until it ends, or until `stopAfter` events (then drops the
 * connection, like a client losing its network).
 */
export async function readSse(
  url: string,
  token: string,
  opts: { stopAfter?: number; headers?: Record<string, string>; method?: string; body?: unknown; timeoutMs?: number; onComment?: (c: string) => void } = {},
): Promise<{ status: number; events: SseEvent[]; contentType: string | null }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), opts.timeoutMs ?? 20_000);
  const res = await fetch(url, {
    method: opts.method ?? "GET",
    headers: { authorization: `Bearer ${token}`, ...(opts.body ? { "content-type": "application/json" } : {}), ...opts.headers },
    body: opts.body ? JSON.stringify(opts.body) : undefined,
    signal: controller.signal,
  });
  const events: SseEvent[] = [];
  if (!res.ok || !res.body) {
    clearTimeout(timer);
    return { status: res.status, events, contentType: res.headers.get("content-type") };
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    outer: for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (block.startsWith(":")) {
          opts.onComment?.(block);
          continue;
        }
        const fields = Object.fromEntries(block.split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trimStart()]));
        events.push({ id: Number(fields.id), event: fields.event, data: JSON.parse(fields.data) });
        if (opts.stopAfter && events.length >= opts.stopAfter) {
          controller.abort();
          break outer;
        }
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
  }
  return { status: res.status, events, contentType: res.headers.get("content-type") };
}

export interface ToolServer {
  url: string;
  calls: { tool_call_id: string; body: any; at: number }[];
  /** Delay before answering, per call. */
  delayMs: number;
  stop(): void;
}

/** A local endpoint for `http` tools: answers `{echo: <arguments>}` and records each call. */
export function startToolServer(): ToolServer {
  const state: ToolServer = {
    url: "",
    calls: [],
    delayMs: 0,
    stop: () => server.stop(true),
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const body = await req.json().catch(() => null);
      state.calls.push({ tool_call_id: req.headers.get("x-agentos-tool-call-id") ?? "", body, at: Date.now() });
      if (state.delayMs) await Bun.sleep(state.delayMs);
      return Response.json({ echo: body });
    },
  });
  state.url = `http://127.0.0.1:${server.port}/tool`;
  return state;
}

/** Event seqs of a run are 1..n without gaps or repeats. */
export function assertContiguous(events: SseEvent[]) {
  events.forEach((e, i) => {
    if (e.id !== i + 1) throw new Error(`event #${i} has seq ${e.id}, expected ${i + 1}: ${events.map((x) => `${x.id}:${x.event}`).join(" ")}`);
  });
}

/** Signs up and moves the organization to the enterprise plan (rate limits and run quotas out of the way). */
export async function signupUnlimited<T extends Api & { signup(): Promise<{ token: string; orgId: string; userId: string; email: string; password: string; refresh: string }> }>(t: T) {
  const user = await t.signup();
  const r = await t.request("PUT", "/v1/billing/plan", { token: user.token, body: { plan: "enterprise" } });
  if (r.status !== 200) throw new Error(`plan change failed: ${r.status} ${JSON.stringify(r.body)}`);
  return user;
}
