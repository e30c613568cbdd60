/**
 * What the run loop and prompt budgeting know of a model, whatever its provider: chat
 * messages, tool calls and specs, the reply, the error classes, and aborts.
 */
export type ChatMessage = {
  role: "system" | "user" | "assistant" | "tool";
  content: string | null;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  name?: string;
};
export type ToolCall = { id: string; type: "function"; function: { name: string; arguments: string } };
export type ToolSpec = { type: "function"; function: { name: string; description?: string; parameters: object } };
export type ModelUsage = { prompt_tokens: number; completion_tokens: number; total_tokens: number };
export type ModelReply = {
  content: string | null;
  tool_calls: ToolCall[];
  usage: ModelUsage;
  finish_reason: string;
  model: string;
};

export type ModelErrorCode =
  | "model_rate_limited"
  | "model_unavailable"
  | "model_timeout"
  | "model_bad_request"
  | "model_auth_failed"
  | "model_invalid_response";

export class ModelError extends Error {
  override name = "ModelError";
  code: ModelErrorCode;
  status?: number;
  /** Whether the failure is transient (retrying later may succeed). Set after our own retries are exhausted too. */
  retryable: boolean;
  /** Number of HTTP attempts made before giving up. */
  attempts?: number;
  constructor(
    code: ModelErrorCode,
    message: string,
    opts: { status?: number; retryable?: boolean; cause?: unknown; attempts?: number } = {},
  ) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.code = code;
    this.status = opts.status;
    this.retryable = opts.retryable ?? false;
    this.attempts = opts.attempts;
  }
}

/** Request fields of chat completions the caller may set (OpenAI's names and shapes); absent = the server's default. */
export type ModelParams = {
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  tool_choice?: "auto" | "none" | "required" | { type: "function"; function: { name: string } };
  parallel_tool_calls?: boolean;
  response_format?: { type: "text" } | { type: "json_object" } | { type: "json_schema"; json_schema: { name: string; description?: string; schema: Record<string, unknown>; strict?: boolean } };
};

export type CompleteRequest = {
  model: string;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  params?: ModelParams;
  stream?: boolean;
  signal?: AbortSignal;
  onDelta?: (text: string) => void;
};

export interface ModelProvider {
  complete(req: CompleteRequest): Promise<ModelReply>;
}

/** Error with name "AbortError" (a DOMException, like fetch's own). */
export function makeAbortError(reason?: unknown): Error {
  const err = new DOMException("The operation was aborted.", "AbortError") as DOMException & { cause?: unknown };
  if (reason !== undefined) {
    try {
      err.cause = reason;
    } catch {
      /* ignore */
    }
  }
  return err;
}

export function isAbortError(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { name?: unknown }).name === "AbortError";
}
