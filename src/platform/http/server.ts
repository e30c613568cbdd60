/**
 * The process's HTTP listener: Bun.serve in front of the Elysia app. It runs each request
 * inside the request context (request id, traceparent), counts in-flight requests so a
 * shutdown can drain them, and upgrades WebSocket routes.
 */
import { readCapped } from "../streams";
import type { Server } from "bun";
import { requestContext, requestIdOf } from "../context";
import { newId } from "../ids";
import type { WebSocketRoute } from "../platform";
import { errorResponse } from "./errors";

export interface HttpServer {
  port: number;
  inFlight(): number;
  /** Stops accepting, waits for in-flight requests up to `timeoutMs`, then closes. */
  stop(timeoutMs: number): Promise<void>;
}

/**
 * Elysia finds the path by searching for "/" from a fixed offset (11, the length of
 * "http://a.bc"), so a Host shorter than 4 characters (`Host: api`, a Kubernetes Service
 * name) routes every request to 404. Such a request is re-addressed to localhost.
 */
export function withRoutableUrl(request: Request): Request {
  const url = request.url;
  const pathStart = url.indexOf("/", url.indexOf("//") + 2);
  if (pathStart >= 11 || pathStart < 0) return request;
  return new Request(`http://localhost${url.slice(pathStart)}`, request);
}

/**
 * The request with its body read into memory, within `timeoutMs` from the headers (else a 408
 * that closes the connection: a client sending a byte every few seconds holds no connection
 * for long) and under `max` bytes when it has no length to check up front (else a 413).
 */
async function bufferBody(request: Request, max: number, timeoutMs: number): Promise<Request | Response> {
  const declared = request.headers.get("content-length");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"timeout">((resolve) => (timer = setTimeout(resolve, timeoutMs, "timeout")));
  try {
    // A declared length is capped by the caller: read it natively. Chunked: count while reading.
    const body = await Promise.race([declared !== null ? request.arrayBuffer() : readCapped(request.body!, max), deadline]);
    if (body === "timeout") {
      request.body?.cancel().catch(() => {});
      return errorResponse(408, "request_timeout", `The request body did not arrive within ${timeoutMs} ms.`, newId("req"), undefined, { connection: "close" });
    }
    if (body === null) return errorResponse(413, "payload_too_large", `The body is over the limit of ${max} bytes.`, newId("req"));
    let headers = request.headers;
    if (declared === null) {
      headers = new Headers(headers);
      headers.delete("transfer-encoding");
      headers.set("content-length", String(body.byteLength));
    }
    return new Request(request.url, { method: request.method, headers, body });
  } finally {
    clearTimeout(timer);
  }
}

export function startHttpServer(opts: {
  fetch: (request: Request) => Response | Promise<Response>;
  /** Tried first: a Response answers the request without the framework (see fast-path.ts). */
  fastPath?: (request: Request) => Response | undefined;
  port: number;
  hostname: string;
  maxBodyBytes: number;
  /** Bound of a body's arrival (see bufferBody). */
  bodyTimeoutMs: number;
  websockets: WebSocketRoute[];
}): HttpServer {
  let inFlight = 0;
  const routes = new Map(opts.websockets.map((w) => [w.path, w]));
  /** The ordinary path: the body read under its deadline, WebSocket upgrades, the request context, the app. */
  async function handle(request: Request, srv: Server<any>): Promise<Response> {
    // Bun knows the peer only of the request it handed us, not of the copies made below.
    const received = request;
    request = withRoutableUrl(request);
    if (request.body && Number(request.headers.get("content-length") ?? 0) <= opts.maxBodyBytes) {
      // Read here under a deadline (a declared length over the cap is left to the app's 413, unread).
      const buffered = await bufferBody(request, opts.maxBodyBytes, opts.bodyTimeoutMs);
      if (buffered instanceof Response) return buffered;
      request = buffered;
    }
    const requestId = requestIdOf(request);
    const traceparent = request.headers.get("traceparent") ?? undefined;
    if (routes.size && request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      const route = routes.get(new URL(request.url).pathname);
      if (route) {
        const data = await route.upgrade(request);
        if (data instanceof Response) return data;
        if ((srv.upgrade as (r: Request, o: object) => boolean)(request, { data: { ...data, route: route.path }, headers: { "x-request-id": requestId } })) return undefined as unknown as Response;
        return errorResponse(400, "websocket_upgrade_failed", "The WebSocket upgrade failed.", requestId);
      }
    }
    inFlight++;
    try {
      const context = {
        requestId,
        traceparent,
        // Looked up only by the routes that need it (rate limits of unauthenticated routes).
        get clientIp() {
          return srv.requestIP(received)?.address;
        },
      };
      return await requestContext.run(context, () => opts.fetch(request));
    } finally {
      inFlight--;
    }
  }
  const server: Server<any> = Bun.serve<any>({
    port: opts.port,
    hostname: opts.hostname,
    // Far above the API limit: the app reads bodies with its own cap and answers 413 in the
    // error shape (chunked bodies too); Bun's own cap is only the last line of defence.
    maxRequestBodySize: Math.max(16 * opts.maxBodyBytes, 64 * 1024 * 1024),
    idleTimeout: 120,
    fetch(request, srv) {
      return opts.fastPath?.(request) ?? handle(request, srv);
    },
    websocket: {
      open: (ws) => routes.get(ws.data.route)?.open(ws),
      message: (ws, m) => routes.get(ws.data.route)?.message(ws, m),
      close: (ws, code, reason) => routes.get(ws.data.route)?.close(ws, code, reason),
      drain: (ws) => routes.get(ws.data.route)?.drain?.(ws),
      maxPayloadLength: 64 * 1024,
      backpressureLimit: 1024 * 1024,
      closeOnBackpressureLimit: true,
      idleTimeout: 120,
      sendPings: true,
    },
  });
  return {
    port: server.port!,
    inFlight: () => inFlight,
    async stop(timeoutMs) {
      // stop(false) closes the listener and idle connections but lets requests finish.
      const graceful = server.stop(false);
      const deadline = Date.now() + timeoutMs;
      while (inFlight > 0 && Date.now() < deadline) await Bun.sleep(20);
      await Promise.race([graceful, Bun.sleep(Math.max(0, deadline - Date.now()))]);
      await server.stop(true);
    },
  };
}
