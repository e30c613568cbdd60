/**
 * What a scenario needs before the load starts: a user (signup → access token) and the
 * resource to hit. The agents role is preferred (GET /v1/agents/:id,
 * POST /v1/threads/:id/messages); while a server does not have it yet, the scenario falls
 * back to an auth route of the same shape and says so in its results.
 */
export interface Call {
  method: string;
  path: string;
  body?: string;
  status: number;
  /** What this call stands for, e.g. "GET /v1/agents/:id" or the fallback's name. */
  route: string;
  fallback: boolean;
}

async function request(base: string, method: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  return { status: res.status, json, text };
}

export async function signup(base: string): Promise<string> {
  const email = `bench-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}@example.com`;
  const r = await request(base, "POST", "/v1/auth/signup", undefined, { email, password: "correct horse battery staple" });
  if (r.status !== 201) throw new Error(`signup failed: ${r.status} ${r.text}`);
  return r.json.access_token as string;
}

export const AGENT_BODY = { name: "bench-agent", model: "gpt-4o-mini", instructions: "You answer benchmark requests." };

/** GET /v1/agents/:id when the agents role answers POST /v1/agents with 201, else GET /v1/auth/me. */
export async function readCall(base: string, token: string, override?: string): Promise<Call> {
  if (override) return { method: "GET", path: override, status: 200, route: `GET ${override}`, fallback: false };
  const r = await request(base, "POST", "/v1/agents", token, AGENT_BODY);
  if (r.status === 201 && r.json?.id) return { method: "GET", path: `/v1/agents/${r.json.id}`, status: 200, route: "GET /v1/agents/:id", fallback: false };
  console.log(`bench: POST /v1/agents answered ${r.status}: the agents role is not there yet; measuring GET /v1/auth/me instead`);
  return { method: "GET", path: "/v1/auth/me", status: 200, route: "GET /v1/auth/me (fallback: no agents role)", fallback: true };
}

export const MESSAGE_BODY = JSON.stringify({ role: "user", content: "Hello from the write benchmark." });

/** POST /v1/threads/:id/messages when POST /v1/threads answers 201, else POST /v1/api-keys. */
export async function writeCall(base: string, token: string, override?: { path: string; body: string }): Promise<Call> {
  if (override) return { method: "POST", path: override.path, body: override.body, status: 201, route: `POST ${override.path}`, fallback: false };
  const r = await request(base, "POST", "/v1/threads", token, {});
  if (r.status === 201 && r.json?.id) {
    return { method: "POST", path: `/v1/threads/${r.json.id}/messages`, body: MESSAGE_BODY, status: 201, route: "POST /v1/threads/:id/messages", fallback: false };
  }
  console.log(`bench: POST /v1/threads answered ${r.status}: the agents role is not there yet; measuring POST /v1/api-keys instead`);
  return { method: "POST", path: "/v1/api-keys", body: JSON.stringify({ name: "bench-key" }), status: 201, route: "POST /v1/api-keys (fallback: no agents role)", fallback: true };
}

/** One request before the load: the call must answer as expected, or the numbers mean nothing. */
export async function checkCall(base: string, token: string, call: Call) {
  const r = await request(base, call.method, call.path, token, call.body === undefined ? undefined : JSON.parse(call.body));
  if (r.status !== call.status) throw new Error(`${call.method} ${call.path} answered ${r.status} (expected ${call.status}): ${r.text.slice(0, 500)}`);
}
