/** Renders every failure as SPEC §2's error shape: {"error": {code, message, details, request_id}}. */
import { AppError } from "../errors";

export function errorBody(code: string, message: string, requestId: string, details?: unknown) {
  return { error: { code, message, ...(details === undefined ? {} : { details }), request_id: requestId } };
}

export function errorResponse(status: number, code: string, message: string, requestId: string, details?: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(errorBody(code, message, requestId, details)), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "x-request-id": requestId, ...headers },
  });
}

export function appErrorResponse(err: AppError, requestId: string) {
  return errorResponse(err.status, err.code, err.message, requestId, err.details, err.headers);
}

interface ValidationIssue {
  path?: string;
  message?: string;
  summary?: string;
  value?: unknown;
}

/** Elysia/TypeBox validation errors → the failing fields, without echoing huge values back. */
export function validationDetails(error: { all?: ValidationIssue[]; type?: string }) {
  const issues = (() => {
    try {
      return error.all ?? [];
    } catch {
      return [];
    }
  })();
  const seen = new Set<string>();
  const fields: { field: string; message: string }[] = [];
  for (const issue of issues) {
    const field = (issue.path ?? "").replace(/^\//, "").replace(/\//g, ".") || "(root)";
    const message = issue.summary ?? issue.message ?? "is invalid";
    const key = `${field}:${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    fields.push({ field, message });
    if (fields.length >= 20) break;
  }
  return { in: error.type ?? "body", fields };
}
