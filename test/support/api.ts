/** A tiny JSON client for a running AgentOS (child process or in-process) by its base URL. */
import { uniqueName } from "./backends";

export interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

export function apiClient(baseUrl: string) {
  async function call(method: string, path: string, opts: { body?: unknown; token?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(baseUrl + path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body, headers: res.headers };
  }
  async function signup(email = `${uniqueName("u")}@example.com`, password = "correct horse battery") {
    const res = await call("POST", "/v1/auth/signup", { body: { email, password } });
    if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { email, password, token: res.body.access_token as string, userId: res.body.user.id as string, orgId: res.body.organization.id as string };
  }
  return { url: baseUrl, call, signup };
}

export type ApiClient = ReturnType<typeof apiClient>;
