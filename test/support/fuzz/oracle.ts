/**
 * Sends fuzz requests and judges every reply (the Schemathesis checks):
 *   - never a 5xx, never a dropped connection or a hang;
 *   - every non-2xx reply in the error shape {error:{code,message,request_id}};
 *   - every 2xx reply documented for the operation and valid against its documented schema;
 *   - input the documented schema rejects (or the request marks as invalid) gets a 4xx;
 *   - every reply carries X-Request-Id.
 * Failures are grouped by signature (check, operation, status, code) and keep the smallest
 * examples, so a report names each distinct bug once with a reproducible input.
 */
import { appendFileSync } from "node:fs";
import { ERROR_SHAPE, type Operation, type Validators } from "./openapi";

export type Expectation = "any" | "4xx" | "2xx" | "400" | "401" | "404" | "413" | "415";

export interface FuzzRequest {
  method: string;
  /** Path and query, already encoded. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array | ReadableStream<Uint8Array>;
  op?: Operation;
  expect: Expectation;
  /** The error code the reply must carry as well (e.g. unknown_parameter). */
  expectCode?: string;
  /** What generated it, for the report. */
  label: string;
}

export interface Reply {
  status: number;
  text: string;
  json: unknown;
  headers: Headers;
}

export interface Finding {
  check: string;
  operation: string;
  status: number;
  code?: string;
  count: number;
  examples: { request: string; reply: string }[];
  /** The smallest request behind it (for FUZZ_SAVE). */
  first?: FuzzRequest;
}

const MAX_EXAMPLES = 3;
/** FUZZ_TRACE=<file>: every request is appended before it is sent (find the one that hangs). */
const TRACE_FILE = process.env.FUZZ_TRACE;
const PREVIEW = 300;

function preview(value: FuzzRequest["body"], max = PREVIEW): string {
  if (value === undefined) return "";
  if (value instanceof ReadableStream) return "<streamed body>";
  const text = typeof value === "string" ? value : `<${value.length} bytes: ${Buffer.from(value.subarray(0, 60)).toString("hex")}>`;
  return text.length > max ? `${JSON.stringify(text.slice(0, max))}… (${text.length} chars)` : JSON.stringify(text);
}

export function describeRequest(r: FuzzRequest): string {
  const headers = Object.entries(r.headers ?? {})
    .map(([k, v]) => `${k}: ${v.length > 80 ? `${v.slice(0, 80)}…(${v.length})` : v}`)
    .join(" | ");
  const path = r.path.length > 200 ? `${r.path.slice(0, 200)}…(${r.path.length} chars)` : r.path;
  return `${r.method} ${path} [${r.label}]${headers ? ` {${headers}}` : ""}${r.body !== undefined ? ` body=${preview(r.body)}` : ""}`;
}

/** The body, except for event streams: their first chunk is enough (they stay open). */
async function readBody(res: Response): Promise<string> {
  if (!(res.headers.get("content-type") ?? "").includes("text/event-stream") || !res.body) {
    return res.text().catch((err) => `<body read failed: ${err}>`);
  }
  const reader = res.body.getReader();
  const first = await Promise.race([reader.read(), Bun.sleep(2000).then(() => ({ value: undefined }))]);
  await reader.cancel().catch(() => {});
  return first.value ? new TextDecoder().decode(first.value) : "";
}

export class Oracle {
  readonly findings = new Map<string, Finding>();
  /** Non-2xx statuses an operation answered without documenting them (reported, not failed). */
  readonly undocumented = new Map<string, Set<number>>();
  sent = 0;
  /** Requests whose reply must also carry a given error code (unknown_parameter …). */
  coded = 0;
  readonly byStatus = new Map<number, number>();

  constructor(
    private baseUrl: string,
    private validators: Validators,
    private timeoutMs = 20_000,
  ) {}

  record(check: string, r: FuzzRequest, status: number, reply: string, code?: string) {
    const operation = r.op?.key ?? `${r.method} ${r.path.split("?")[0].slice(0, 80)}`;
    const key = `${check}|${operation}|${status}|${code ?? ""}`;
    let f = this.findings.get(key);
    if (!f) this.findings.set(key, (f = { check, operation, status, code, count: 0, examples: [] }));
    f.count++;
    const example = { request: describeRequest(r), reply: reply.length > 400 ? `${reply.slice(0, 400)}…` : reply };
    f.examples.push(example);
    f.examples.sort((a, b) => a.request.length - b.request.length);
    f.examples.length = Math.min(f.examples.length, MAX_EXAMPLES);
    if (!f.first || describeRequest(r).length < describeRequest(f.first).length) f.first = r;
  }

  /** Requests in flight and since when (for the slow-request log). */
  readonly inFlight = new Map<FuzzRequest, number>();
  /** Replies slower than this are listed (a warning: timing depends on the machine). */
  slowMs = 2_000;
  readonly slow: string[] = [];

  async send(r: FuzzRequest): Promise<Reply | null> {
    this.inFlight.set(r, Date.now());
    if (TRACE_FILE) appendFileSync(TRACE_FILE, `${new Date().toISOString()} ${describeRequest(r).slice(0, 400)}\n`);
    try {
      return await this.sendOnce(r);
    } finally {
      const took = Date.now() - this.inFlight.get(r)!;
      this.inFlight.delete(r);
      if (took > this.slowMs) this.slow.push(`${took} ms: ${describeRequest(r).slice(0, 600)}`);
    }
  }

  private async sendOnce(r: FuzzRequest): Promise<Reply | null> {
    let res: Response;
    this.sent++;
    if (r.expectCode) this.coded++;
    try {
      res = await fetch(this.baseUrl + r.path, {
        method: r.method,
        headers: r.headers,
        body: r.body,
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: "manual",
      });
    } catch (err) {
      this.record("no reply (connection error or timeout)", r, 0, String(err));
      return null;
    }
    const text = await readBody(res);
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const reply = { status: res.status, text, json, headers: res.headers };
    this.byStatus.set(res.status, (this.byStatus.get(res.status) ?? 0) + 1);
    this.judge(r, reply);
    return reply;
  }

  private judge(r: FuzzRequest, reply: Reply) {
    const { status, text, json } = reply;
    const code = (json as any)?.error?.code as string | undefined;
    if (status >= 500) return this.record("5xx", r, status, text, code);
    // Bun's HTTP parser answers 431 itself (request line + headers over 16 KiB) before any of
    // our code runs: no error shape is possible there, and a 4xx is the right answer.
    if (status === 431) return;
    if (!reply.headers.get("x-request-id")) this.record("reply without X-Request-Id", r, status, text, code);
    const ok = status >= 200 && status < 300;
    if (!ok && status !== 304) {
      const shapeErrors = json === undefined ? "not JSON" : this.validators.errors(ERROR_SHAPE, json);
      if (shapeErrors) this.record(`non-2xx reply not in the error shape (${shapeErrors})`, r, status, text, code);
    }
    if (ok && r.op) this.checkDocumented(r, reply);
    if (!ok && r.op && r.op.responses.size && !r.op.responses.has(status)) {
      let set = this.undocumented.get(r.op.key);
      if (!set) this.undocumented.set(r.op.key, (set = new Set()));
      set.add(status);
    }
    const expected = r.expect;
    if (expected === "any") return;
    const met =
      expected === "4xx" ? status >= 400 && status < 500 : expected === "2xx" ? ok : status === Number(expected);
    if (!met) this.record(`expected ${expected}${r.expectCode ? ` ${r.expectCode}` : ""}`, r, status, text, code);
    else if (r.expectCode && code !== r.expectCode) this.record(`expected ${expected} ${r.expectCode}`, r, status, text, code);
  }

  private checkDocumented(r: FuzzRequest, reply: Reply) {
    const op = r.op!;
    const documented2xx = [...op.responses.keys()].filter((s) => s >= 200 && s < 300);
    if (documented2xx.length && !op.responses.has(reply.status)) {
      return this.record(`2xx status not documented (documented: ${documented2xx.join(", ")})`, r, reply.status, reply.text);
    }
    const schema = op.responses.get(reply.status);
    if (!schema) return;
    if (reply.json === undefined) return this.record("2xx reply is not JSON though a JSON schema is documented", r, reply.status, reply.text);
    const errors = this.validators.errors(schema, reply.json);
    if (errors) this.record(`2xx reply does not match the documented schema: ${errors}`, r, reply.status, reply.text);
  }

  /** Runs requests with bounded concurrency. */
  async sendAll(requests: FuzzRequest[], concurrency = 8): Promise<(Reply | null)[]> {
    const replies: (Reply | null)[] = new Array(requests.length);
    let next = 0;
    const worker = async () => {
      while (next < requests.length) {
        const i = next++;
        replies[i] = await this.send(requests[i]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, requests.length) }, worker));
    return replies;
  }

  report(): string {
    const lines: string[] = [];
    for (const f of [...this.findings.values()].sort((a, b) => a.operation.localeCompare(b.operation))) {
      lines.push(`✗ ${f.check} — ${f.operation} → ${f.status}${f.code ? ` ${f.code}` : ""} (${f.count}×)`);
      for (const e of f.examples) lines.push(`    request: ${e.request}\n    reply:   ${e.reply}`);
    }
    return lines.join("\n");
  }
}
