/**
 * OpenAI-compatible Chat Completions client (no HTTP framework, only `fetch`).
 *
 * - POST `${baseUrl}/chat/completions`, `Authorization: Bearer <apiKey>` when given.
 * - Streaming (SSE) and non-streaming replies are normalised into one {@link ModelReply}.
 * - Retries (exponential backoff + jitter) on 429 (Retry-After honoured, capped), 5xx,
 *   network errors and timeouts; other 4xx fail at once.
 * - Aborting `signal` cancels the in-flight request (or backoff sleep) immediately and
 *   rejects with an error named "AbortError"; aborts are never retried.
 * - The API key is never logged and is redacted from any error message.
 */
import { jitteredBackoffMs } from "../backoff";
import { estimateUsage, normaliseArgs, normaliseUsage, SSEParser, StreamAccumulator } from "./sse";
import { makeAbortError, ModelError, type CompleteRequest, type ModelProvider, type ModelReply, type ToolCall } from "./types";

export type OpenAIProviderOptions = {
  baseUrl: string;
  apiKey?: string;
  /** Per-attempt timeout. For streams it is an inactivity timeout, re-armed on every received chunk. Default 60 000. */
  timeoutMs?: number;
  /** Retries after the first attempt. Default 3. */
  maxRetries?: number;
  /** Base of the exponential backoff. Default 500. */
  backoffBaseMs?: number;
  /** Upper bound of one backoff sleep and of an honoured Retry-After. Default 30 000. */
  maxBackoffMs?: number;
  fetch?: typeof fetch;
};

const TIMEOUT = Symbol("timeout");

/** Thrown inside an attempt; carries whether the outer loop may retry it. */
class AttemptFailure extends Error {
  constructor(
    readonly error: ModelError,
    readonly retryAfterMs?: number,
  ) {
    super(error.message);
  }
}

export function createOpenAIProvider(opts: OpenAIProviderOptions): ModelProvider {
  return new OpenAIProvider(opts);
}

/** The transport: one HTTP attempt at a time, retried with backoff while the failure is transient. */
class OpenAIProvider implements ModelProvider {
  private readonly url: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly backoffBaseMs: number;
  private readonly maxBackoffMs: number;
  private readonly send: (url: string, init: RequestInit) => Promise<Response>;
  private readonly apiKey: string | undefined;

  constructor(opts: OpenAIProviderOptions) {
    this.url = `${opts.baseUrl.replace(/\/+$/, "")}/chat/completions`;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxRetries = Math.max(0, opts.maxRetries ?? 3);
    this.backoffBaseMs = Math.max(0, opts.backoffBaseMs ?? 500);
    this.maxBackoffMs = Math.max(0, opts.maxBackoffMs ?? 30_000);
    const send = opts.fetch ?? globalThis.fetch;
    this.send = (url, init) => send(url, init);
    this.apiKey = opts.apiKey;
  }

  private redact(s: string): string {
    const apiKey = this.apiKey;
    return apiKey && apiKey.length >= 4 ? s.split(apiKey).join("[REDACTED]") : s;
  }

  private backoffDelay(attempt: number): number {
    return jitteredBackoffMs(this.backoffBaseMs, this.maxBackoffMs, attempt);
  }

  private async attemptOnce(
    req: CompleteRequest,
    body: string,
    state: { emitted: boolean },
  ): Promise<ModelReply> {
    const ctrl = new AbortController();
    const external = req.signal;
    const onExternalAbort = () => ctrl.abort(external?.reason);
    external?.addEventListener("abort", onExternalAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => ctrl.abort(TIMEOUT), this.timeoutMs);
    };
    arm();

    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: req.stream ? "text/event-stream" : "application/json",
    };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;

    try {
      let res: Response;
      try {
        res = await this.send(this.url, { method: "POST", headers, body, signal: ctrl.signal });
      } catch (e) {
        throw this.classifyThrown(e, ctrl, external);
      }

      if (!res.ok) {
        let text = "";
        try {
          text = await res.text();
        } catch (e) {
          throw this.classifyThrown(e, ctrl, external);
        }
        throw this.httpFailure(res, text);
      }

      const ctype = res.headers.get("content-type") ?? "";
      try {
        if (req.stream && !ctype.includes("application/json")) {
          return await this.readStream(res, req, arm, state);
        }
        const text = await res.text();
        const reply = parseNonStream(text, req);
        // Server ignored stream:true and answered in one piece: still surface the text.
        if (req.stream && reply.content && req.onDelta) {
          state.emitted = true;
          req.onDelta(reply.content);
        }
        return reply;
      } catch (e) {
        if (e instanceof AttemptFailure || e instanceof CallbackError) throw e;
        throw this.classifyThrown(e, ctrl, external);
      }
    } finally {
      if (timer) clearTimeout(timer);
      external?.removeEventListener("abort", onExternalAbort);
      // Make sure nothing of this attempt keeps running (e.g. after a parse error).
      if (!ctrl.signal.aborted) ctrl.abort();
    }
  }

  private classifyThrown(e: unknown, ctrl: AbortController, external?: AbortSignal): Error {
    if (e instanceof AttemptFailure || e instanceof CallbackError) return e;
    if (external?.aborted) return makeAbortError(external.reason);
    if (ctrl.signal.aborted && ctrl.signal.reason === TIMEOUT) {
      return new AttemptFailure(
        new ModelError("model_timeout", `model request timed out after ${this.timeoutMs} ms`, { retryable: true, cause: e }),
      );
    }
    const msg = e instanceof Error ? e.message : String(e);
    return new AttemptFailure(
      new ModelError("model_unavailable", this.redact(`model request failed: ${msg}`), { retryable: true, cause: e }),
    );
  }

  private httpFailure(res: Response, text: string): AttemptFailure {
    const status = res.status;
    const providerMsg = this.redact(extractErrorMessage(text) || res.statusText || `HTTP ${status}`);
    if (status === 429) {
      return new AttemptFailure(
        new ModelError("model_rate_limited", `model rate limited (429): ${providerMsg}`, { status, retryable: true }),
        parseRetryAfter(res.headers.get("retry-after")),
      );
    }
    if (status >= 500) {
      return new AttemptFailure(
        new ModelError("model_unavailable", `model provider error (${status}): ${providerMsg}`, { status, retryable: true }),
      );
    }
    if (status === 401 || status === 403) {
      return new AttemptFailure(
        new ModelError("model_auth_failed", `model authentication failed (${status}): ${providerMsg}`, { status }),
      );
    }
    return new AttemptFailure(new ModelError("model_bad_request", providerMsg, { status }));
  }

  private async readStream(
    res: Response,
    req: CompleteRequest,
    arm: () => void,
    state: { emitted: boolean },
  ): Promise<ModelReply> {
    if (!res.body) {
      throw new AttemptFailure(new ModelError("model_invalid_response", "streaming response has no body"));
    }
    const acc = new StreamAccumulator();
    const parser = new SSEParser();
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let done = false;
    const handle = (data: string) => {
      if (done) return;
      if (data === "[DONE]") {
        done = true;
        return;
      }
      let chunk: unknown;
      try {
        chunk = JSON.parse(data);
      } catch {
        // Tolerate servers that omit the blank line between events (several data: lines in one event).
        if (data.includes("\n")) {
          for (const part of data.split("\n")) if (part.trim()) handle(part);
          return;
        }
        throw new AttemptFailure(
          new ModelError("model_invalid_response", `invalid JSON in stream: ${this.redact(data.slice(0, 200))}`),
        );
      }
      const err = (chunk as { error?: unknown }).error;
      if (err) {
        // Provider error reported mid-stream (e.g. overloaded): transient.
        throw new AttemptFailure(
          new ModelError("model_unavailable", this.redact(`model stream error: ${extractErrorMessage(JSON.stringify(chunk))}`), {
            retryable: true,
          }),
        );
      }
      const text = acc.add(chunk);
      if (text && req.onDelta) {
        state.emitted = true;
        try {
          req.onDelta(text);
        } catch (e) {
          throw new CallbackError(e);
        }
      }
    };
    try {
      while (!done) {
        const { value, done: eof } = await reader.read();
        if (eof) break;
        arm();
        for (const data of parser.push(decoder.decode(value, { stream: true }))) {
          handle(data);
          if (done) break;
        }
      }
      if (!done) for (const data of parser.push(decoder.decode() + "\n\n")) handle(data);
    } finally {
      // Anything still buffered after [DONE] is irrelevant; on errors the attempt's abort closes the body.
      if (done) reader.cancel().catch(() => {});
    }
    if (!done && !acc.finishReason) {
      throw new AttemptFailure(
        new ModelError("model_unavailable", "model stream ended prematurely", { retryable: true }),
      );
    }
    return acc.finish(req);
  }

  async complete(req: CompleteRequest): Promise<ModelReply> {
    const payload: Record<string, unknown> = { model: req.model, messages: req.messages };
    if (req.tools && req.tools.length > 0) payload.tools = req.tools;
    Object.assign(payload, req.params);
    if (req.stream) {
      payload.stream = true;
      payload.stream_options = { include_usage: true };
    }
    const body = JSON.stringify(payload);
    const state = { emitted: false };
    let last: ModelError | undefined;

    for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
      if (req.signal?.aborted) throw makeAbortError(req.signal.reason);
      try {
        return await this.attemptOnce(req, body, state);
      } catch (e) {
        if (e instanceof CallbackError) throw e.inner;
        if (!(e instanceof AttemptFailure)) throw e; // AbortError or programming error
        last = e.error;
        last.attempts = attempt + 1;
        // Once deltas reached the caller we cannot transparently replay the reply.
        if (!last.retryable || state.emitted || attempt === this.maxRetries) throw last;
        const delay =
          e.retryAfterMs !== undefined ? Math.min(e.retryAfterMs, this.maxBackoffMs) : this.backoffDelay(attempt);
        await sleep(delay, req.signal);
      }
    }
    throw last ?? new ModelError("model_unavailable", "model request failed");
  }
}

/** Wraps an exception thrown by the caller's onDelta so it is re-thrown as-is, not retried. */
class CallbackError extends Error {
  constructor(readonly inner: unknown) {
    super("onDelta threw");
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(makeAbortError(signal.reason));
    const onAbort = () => {
      clearTimeout(t);
      reject(makeAbortError(signal?.reason));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Retry-After: delta-seconds or an HTTP date. Returns ms, or undefined when absent/invalid. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(parseFloat(v) * 1000);
  const date = Date.parse(v);
  if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  return undefined;
}

function extractErrorMessage(text: string): string {
  if (!text) return "";
  try {
    const j = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown };
    const err = j.error;
    if (typeof err === "string") return err;
    if (err && typeof err === "object" && typeof (err as { message?: unknown }).message === "string") {
      return (err as { message: string }).message;
    }
    if (typeof j.message === "string") return j.message;
    if (typeof j.detail === "string") return j.detail;
  } catch {
    /* not JSON */
  }
  return text.slice(0, 500);
}

function parseNonStream(text: string, req: CompleteRequest): ModelReply {
  let j: any;
  try {
    j = JSON.parse(text);
  } catch {
    throw new AttemptFailure(new ModelError("model_invalid_response", "model response is not valid JSON"));
  }
  const choice = j?.choices?.[0];
  const message = choice?.message;
  if (!message || typeof message !== "object") {
    throw new AttemptFailure(new ModelError("model_invalid_response", "model response has no choices[0].message"));
  }
  const tool_calls: ToolCall[] = Array.isArray(message.tool_calls)
    ? message.tool_calls.map((tc: any, i: number) => ({
        id: typeof tc?.id === "string" && tc.id ? tc.id : `call_${i}`,
        type: "function" as const,
        function: { name: String(tc?.function?.name ?? ""), arguments: normaliseArgs(tc?.function?.arguments) },
      }))
    : [];
  const content = typeof message.content === "string" ? message.content : null;
  const finish_reason = String(choice.finish_reason ?? (tool_calls.length ? "tool_calls" : "stop"));
  const usage = normaliseUsage(j.usage) ?? estimateUsage(req, content, tool_calls);
  return { content, tool_calls, usage, finish_reason, model: String(j.model ?? req.model) };
}
