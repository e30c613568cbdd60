/**
 * `http` tools: POST `{tool, arguments, run_id, tool_call_id}` to `config.url`, signed like
 * webhooks (`X-AgentOS-Signature: t=<unix>,v1=<hex hmac-sha256(secret, "t.body")>`). The
 * whole exchange (connect, headers, body) is bounded by the tool's timeout and the reply by
 * a size cap read as a stream; redirects are followed only to the same origin (307/308, so
 * the signed POST is replayed unchanged), never to another host. Every hop goes through the
 * SSRF guard (platform/net/outbound): internal addresses are refused unless allowed, and a
 * failure never says more than "unreachable".
 */
import { readCapped } from "../../../platform/streams";
import { literalTargetProblem, OutboundError, outboundFetch, type OutboundPolicy, type RedirectRule } from "../../../platform/net/outbound";
import { VERSION } from "../../../version";
import type { ToolCallResult } from "../contract";

export const MAX_RESPONSE_BYTES = 1024 * 1024;
const MAX_REDIRECTS = 3;
/** What of a non-2xx reply the model and the caller see: the error message, bounded. */
const ERROR_EXCERPT_CHARS = 200;

const SAME_ORIGIN_307_308: RedirectRule = {
  max: MAX_REDIRECTS,
  allow: (status, from, to) => (status === 307 || status === 308) && to.origin === from.origin,
};

export interface HttpToolTarget {
  name: string;
  url: string;
  headers?: Record<string, string>;
  /** The signing secret, then the previous one while its grace period lasts. */
  secrets: string[];
  timeoutMs: number;
}

export interface HttpCall {
  arguments: unknown;
  run_id: string | null;
  tool_call_id: string;
}

/**
 * `t=<unix>,v1=<hmac>` with one `v1` per secret: during a rotation's grace period the call is
 * signed with the new secret and the previous one, so a server that knows either verifies it.
 */
export function sign(secrets: string | string[], body: string, unix = Math.floor(Date.now() / 1000)): string {
  const macs = (Array.isArray(secrets) ? secrets : [secrets]).map((secret) => `v1=${new Bun.CryptoHasher("sha256", secret).update(`${unix}.${body}`).digest("hex")}`);
  return `t=${unix},${macs.join(",")}`;
}

const fail = (code: string, message: string): ToolCallResult => ({ ok: false, error: { code, message } });

class TooLarge extends Error {}

/** Reads at most `cap` bytes of the reply as text; beyond it the stream is cancelled (the server stops sending). */
async function readCappedText(res: Response, cap: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > cap) {
    await res.body?.cancel().catch(() => {});
    throw new TooLarge();
  }
  if (!res.body) return "";
  const bytes = await readCapped(res.body, cap);
  if (!bytes) throw new TooLarge();
  return new TextDecoder().decode(bytes);
}

/** Only http(s) URLs with a host; no credentials in the URL (they would leak into logs); no internal IP literal. */
export function checkTargetUrl(raw: unknown, policy: OutboundPolicy, field: string): string | null {
  if (typeof raw !== "string" || raw.length === 0) return `\`${field}\` is required.`;
  if (raw.length > 2048) return `\`${field}\` is longer than 2048 characters.`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `\`${field}\` '${raw.slice(0, 200)}' is not a URL.`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return `\`${field}\` must be http or https, not '${url.protocol}'.`;
  if (!url.hostname) return `\`${field}\` has no host.`;
  if (url.username || url.password) return `\`${field}\` must not contain credentials; put them in the headers.`;
  const refused = literalTargetProblem(url, policy);
  return refused ? `\`${field}\` is refused: ${refused}` : null;
}

export const checkToolUrl = (raw: unknown, policy: OutboundPolicy) => checkTargetUrl(raw, policy, "config.url");

/** Headers a tenant sets on outbound calls: at most 20 single-line values, none of the `reserved` ones AgentOS sets. */
export function checkHeaders(headers: unknown, field: string, reserved: readonly string[]): string | null {
  if (headers === undefined) return null;
  if (!headers || typeof headers !== "object" || Array.isArray(headers)) return `\`${field}\` must be an object of header names to string values.`;
  const entries = Object.entries(headers as Record<string, unknown>);
  if (entries.length > 20) return `\`${field}\` has more than 20 headers.`;
  for (const [k, v] of entries) {
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/.test(k)) return `\`${field}\`: '${k.slice(0, 100)}' is not a valid header name.`;
    if (reserved.includes(k.toLowerCase())) return `\`${field}\`: '${k}' is set by AgentOS.`;
    if (typeof v !== "string" || v.length > 4096 || /[\r\n\0]/.test(v)) return `\`${field}\`: the value of '${k}' must be a single-line string (at most 4096 characters).`;
  }
  return null;
}

export async function executeHttp(target: HttpToolTarget, call: HttpCall, policy: OutboundPolicy, onUnreachable?: (detail: unknown) => void): Promise<ToolCallResult> {
  const body = JSON.stringify({ tool: target.name, arguments: call.arguments, run_id: call.run_id, tool_call_id: call.tool_call_id });
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), target.timeoutMs);
  const headers = {
    ...(target.headers ?? {}),
    "content-type": "application/json",
    "user-agent": `AgentOS/${VERSION}`,
    "x-agentos-signature": sign(target.secrets, body),
    "x-agentos-tool-call-id": call.tool_call_id,
  };
  try {
    const { response: res, url } = await outboundFetch(target.url, { method: "POST", body, headers, signal: controller.signal }, policy, SAME_ORIGIN_307_308);
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get("location");
      let next: URL | null = null;
      try {
        next = location ? new URL(location, url) : null;
      } catch {
        /* no usable Location */
      }
      return fail(
        "tool_redirect_refused",
        `The tool server answered ${res.status}${next ? ` to ${next.origin}${next.pathname}` : ""}; AgentOS follows only 307/308 redirects to the same host (at most ${MAX_REDIRECTS}). Point config.url at the final address.`,
      );
    }
    const text = await readCappedText(res, MAX_RESPONSE_BYTES);
    if (res.status < 200 || res.status >= 300) return fail("tool_http_error", `The tool server answered HTTP ${res.status}: ${errorExcerpt(text)}`);
    return { ok: true, output: parseOutput(text) };
  } catch (err) {
    if (err instanceof TooLarge) return fail("tool_response_too_large", `The tool's reply is larger than ${MAX_RESPONSE_BYTES} bytes.`);
    if (controller.signal.aborted) return fail("tool_timeout", `The tool did not answer within ${target.timeoutMs} ms.`);
    if (err instanceof OutboundError) {
      if (err.code === "target_unreachable") onUnreachable?.(err.detail);
      return fail(err.code, err.message);
    }
    // Failed while reading the reply (reset mid-body): the same words as any other failure.
    onUnreachable?.(err);
    return fail("target_unreachable", `Could not reach ${new URL(target.url).host}: the connection failed or closed before a reply.`);
  } finally {
    clearTimeout(timer);
  }
}

/** JSON replies become the output as they are; anything else is passed on as text. */
/** JSON nesting kept as a parsed value; a deeper reply stays text (parsing it costs ~0.2 µs a level, and serialising it again overflows the stack). */
const MAX_PARSED_DEPTH = 64;

/** Whether the JSON text nests arrays/objects deeper than `limit` (a linear scan that skips strings). */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > limit) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

function parseOutput(text: string): unknown {
  if (text.length === 0) return null;
  if (nestsDeeperThan(text, MAX_PARSED_DEPTH)) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function errorExcerpt(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof j.error === "string" ? j.error : (j.error?.message ?? j.message);
    if (typeof m === "string") return m.length > ERROR_EXCERPT_CHARS ? `${m.slice(0, ERROR_EXCERPT_CHARS)}…` : m;
  } catch {
    /* not JSON */
  }
  if (text.length === 0) return "(empty body)";
  return text.length > ERROR_EXCERPT_CHARS ? `${text.slice(0, ERROR_EXCERPT_CHARS)}…` : text;
}
