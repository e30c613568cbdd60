/**
 * The one error type services throw. The HTTP layer renders it as SPEC §2's
 * `{"error": {code, message, details, request_id}}`; RPC carries it across NATS.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = "AppError";
  }

  toJSON() {
    return { status: this.status, code: this.code, message: this.message, details: this.details, headers: this.headers };
  }

  static fromJSON(v: { status: number; code: string; message: string; details?: unknown; headers?: Record<string, string> }) {
    return new AppError(v.status, v.code, v.message, v.details, v.headers);
  }
}

export const badRequest = (code: string, message: string, details?: unknown) => new AppError(400, code, message, details);
export const unauthorized = (message = "Missing or invalid credentials. Send `Authorization: Bearer <access token or API key>`.") =>
  new AppError(401, "unauthorized", message);
export const forbidden = (message: string) => new AppError(403, "forbidden", message);
export const notFound = (what: string, id?: string) =>
  new AppError(404, "not_found", id ? `No ${what} with id '${id}' in this organization.` : `${what} not found.`);
export const conflict = (code: string, message: string, details?: unknown) => new AppError(409, code, message, details);
export const unprocessable = (code: string, message: string, details?: unknown) => new AppError(422, code, message, details);

/** Errors raised at start-up that end the process with one line on stderr. */
export class FatalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FatalError";
  }
}
