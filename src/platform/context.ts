/**
 * Request context carried through async calls (AsyncLocalStorage): the request id and the
 * W3C traceparent reach logs, RPC headers and bus messages without threading arguments.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { newId } from "./ids";

export interface RequestContext {
  requestId: string;
  traceparent?: string;
  /** The peer address as the listener saw it (rate limits of unauthenticated routes). */
  clientIp?: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

export function currentContext(): RequestContext | undefined {
  return requestContext.getStore();
}

/** The trace id of a W3C traceparent (`00-<trace id>-<span id>-<flags>`), if valid. */
export function traceIdOf(traceparent?: string): string | undefined {
  const m = traceparent ? /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(traceparent) : null;
  return m && !/^0+$/.test(m[1]) ? m[1] : undefined;
}

const CLIENT_REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The request's id: the client's `X-Request-Id` when it is a short safe token, else a new one. */
export function requestIdOf(request: Request): string {
  const incoming = request.headers.get("x-request-id");
  return incoming && CLIENT_REQUEST_ID.test(incoming) ? incoming : newId("req");
}
