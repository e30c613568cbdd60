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
