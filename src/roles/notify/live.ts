/**
 * GET /v1/ws — the organization's events pushed live. Served by GATEWAY processes (the
 * public edge with the auth guard; a notify process need not face clients): the outbox relay
 * publishes every event on `live.<org id>`, and each gateway subscribes once per organization
 * that has sockets on it, so any number of gateways fan out over the bus (NATS core).
 *
 * Frames (JSON): `{"type":"connected","organization_id":…}` once, `{"type":"event","event":
 * DomainEvent}` per event, `{"type":"pong"}` for a `ping` (text or `{"type":"ping"}`);
 * protocol-level pings come from the server too. A client whose unsent buffer passes
 * MAX_BUFFERED_BYTES is closed (1013) rather than letting memory grow.
 */
import type { ServerWebSocket } from "bun";
import type { Bus, Unsubscribe } from "../../platform/bus";
import { currentContext } from "../../platform/context";
import { AppError } from "../../platform/errors";
import type { Principal } from "../../platform/http/auth-guard";
import { errorResponse } from "../../platform/http/errors";
import { newId } from "../../platform/ids";
import type { Logger } from "../../platform/logging";
import type { Gauge } from "../../platform/metrics";
import type { DomainEvent } from "../../platform/outbox";
import type { WebSocketRoute } from "../../platform/platform";

export const LIVE_PATH = "/v1/ws";
export const MAX_BUFFERED_BYTES = 256 * 1024;
export const SLOW_CLIENT_CLOSE_CODE = 1013;

export interface LiveSocketData {
  orgId: string;
  userId: string;
}

/** The part of Bun's ServerWebSocket the hub uses (tests pass fakes). */
export type LiveSocket = Pick<ServerWebSocket<LiveSocketData>, "data" | "send" | "close" | "getBufferedAmount">;

export class LiveHub {
  private orgs = new Map<string, { sockets: Set<LiveSocket>; unsubscribe: Unsubscribe }>();

  constructor(private bus: Bus, private gauge: Gauge, private log: Logger, private maxBuffered = MAX_BUFFERED_BYTES) {}

  add(ws: LiveSocket) {
    const orgId = ws.data.orgId;
    let entry = this.orgs.get(orgId);
    if (!entry) {
      const sockets = new Set<LiveSocket>();
      const unsubscribe = this.bus.subscribe<DomainEvent>(this.bus.subject(`live.${orgId}`), (msg) => this.broadcast(orgId, msg.data));
      entry = { sockets, unsubscribe };
      this.orgs.set(orgId, entry);
    }
    entry.sockets.add(ws);
    this.gauge.inc();
    this.send(ws, JSON.stringify({ type: "connected", organization_id: orgId }));
  }

  remove(ws: LiveSocket) {
    const entry = this.orgs.get(ws.data.orgId);
    if (!entry?.sockets.delete(ws)) return;
    this.gauge.dec();
    if (entry.sockets.size === 0) {
      entry.unsubscribe();
      this.orgs.delete(ws.data.orgId);
    }
  }

  /** Events of `orgId` go to that organization's sockets only (a stray org_id is dropped). */
  broadcast(orgId: string, event: DomainEvent) {
    if (!event || event.org_id !== orgId) return;
    const entry = this.orgs.get(orgId);
    if (!entry) return;
    const frame = JSON.stringify({ type: "event", event });
    for (const ws of entry.sockets) this.send(ws, frame);
  }

  /** Sends, or closes a client that cannot keep up: the buffer per client is bounded. */
  send(ws: LiveSocket, frame: string) {
    if (ws.getBufferedAmount() + frame.length > this.maxBuffered) {
      this.log.warn("websocket client too slow; disconnecting", { org_id: ws.data.orgId, buffered: ws.getBufferedAmount() });
      this.remove(ws);
      ws.close(SLOW_CLIENT_CLOSE_CODE, "send buffer full: client too slow");
      return;
    }
    // 0 = dropped by the server (connection closing or over its own limit).
    if (ws.send(frame) === 0) {
      this.remove(ws);
      ws.close(SLOW_CLIENT_CLOSE_CODE, "send buffer full: client too slow");
    }
  }

  onMessage(ws: LiveSocket, message: string | Buffer) {
    const text = typeof message === "string" ? message : message.toString("utf8");
    if (text === "ping" || /^\s*\{\s*"type"\s*:\s*"ping"\s*\}\s*$/.test(text)) this.send(ws, JSON.stringify({ type: "pong" }));
  }

  connections() {
    let n = 0;
    for (const e of this.orgs.values()) n += e.sockets.size;
    return n;
  }

  stop() {
    for (const entry of this.orgs.values()) {
      entry.unsubscribe();
      for (const ws of entry.sockets) {
        this.gauge.dec();
        ws.close(1001, "server shutting down");
      }
    }
    this.orgs.clear();
  }
}

/** The WebSocket route the gateway registers: authenticates the upgrade like any API call. */
export function liveEventsRoute(hub: LiveHub, authenticate: (header: string | null) => Promise<Principal>): WebSocketRoute {
  return {
    path: LIVE_PATH,
    async upgrade(request) {
      const token = new URL(request.url).searchParams.get("token");
      const header = request.headers.get("authorization") ?? (token ? `Bearer ${token}` : null);
      try {
        const principal = await authenticate(header);
        return { orgId: principal.orgId, userId: principal.userId } satisfies LiveSocketData;
      } catch (err) {
        const requestId = currentContext()?.requestId ?? newId("req");
        if (err instanceof AppError) return errorResponse(err.status, err.code, err.message, requestId, err.details, err.headers);
        return errorResponse(503, "service_unavailable", "Could not authenticate the connection; retry.", requestId);
      }
    },
    open: (ws) => hub.add(ws as ServerWebSocket<LiveSocketData>),
    message: (ws, message) => hub.onMessage(ws as ServerWebSocket<LiveSocketData>, message),
    close: (ws) => hub.remove(ws as ServerWebSocket<LiveSocketData>),
  };
}
