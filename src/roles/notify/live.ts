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
 *
 * A socket lives no longer than the credential it was opened with: it is closed with 4001
 * when its access token (or API key) expires, and when its API key is deleted (the auth
 * role's API_KEYS_CHANGED announcement names the key). Clients reconnect with a fresh token.
 */
import type { ServerWebSocket } from "bun";
import type { Bus, Unsubscribe } from "../../platform/bus";
import { currentContext } from "../../platform/context";
import { AppError } from "../../platform/errors";
import type { Principal } from "../../platform/principal";
import { errorResponse } from "../../platform/http/errors";
import { newId } from "../../platform/ids";
import type { Logger } from "../../platform/logging";
import type { Gauge } from "../../platform/metrics";
import type { DomainEvent } from "../../platform/outbox";
import type { WebSocketRoute } from "../../platform/platform";

export const LIVE_PATH = "/v1/ws";
export const MAX_BUFFERED_BYTES = 256 * 1024;
export const SLOW_CLIENT_CLOSE_CODE = 1013;
/** Application close code (4000-4999) for "your credential is no longer valid", like HTTP 401. */
export const CREDENTIALS_GONE_CLOSE_CODE = 4001;
/** Deleted keys remembered this long, for sockets whose upgrade raced the deletion. */
const REVOKED_MEMORY_MS = 60_000;
/** setTimeout's ceiling (~24.8 days): longer expiries are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LiveSocketData {
  orgId: string;
  userId: string;
  /** The API key the socket was opened with, if any. */
  keyId?: string;
  /** Unix seconds at which the socket's credential expires, if it does. */
  expiresAt?: number;
}

/** The part of Bun's ServerWebSocket the hub uses (tests pass fakes). */
export type LiveSocket = Pick<ServerWebSocket<LiveSocketData>, "data" | "send" | "close" | "getBufferedAmount">;

export class LiveHub {
  private orgs = new Map<string, { sockets: Set<LiveSocket>; unsubscribe: Unsubscribe }>();
  private expiryTimers = new Map<LiveSocket, ReturnType<typeof setTimeout>>();
  private revokedKeys = new Map<string, number>();

  constructor(private bus: Bus, private gauge: Gauge, private log: Logger, private maxBuffered = MAX_BUFFERED_BYTES) {}

  add(ws: LiveSocket) {
    const orgId = ws.data.orgId;
    if (ws.data.keyId && this.revokedKeys.has(ws.data.keyId)) {
      ws.close(CREDENTIALS_GONE_CLOSE_CODE, "API key deleted");
      return;
    }
    let entry = this.orgs.get(orgId);
    if (!entry) {
      const sockets = new Set<LiveSocket>();
      const unsubscribe = this.bus.subscribe<DomainEvent>(this.bus.subject(`live.${orgId}`), (msg) => this.broadcast(orgId, msg.data));
      entry = { sockets, unsubscribe };
      this.orgs.set(orgId, entry);
    }
    entry.sockets.add(ws);
    this.gauge.inc();
    this.armExpiry(ws);
    this.send(ws, JSON.stringify({ type: "connected", organization_id: orgId }));
  }

  private armExpiry(ws: LiveSocket) {
    if (ws.data.expiresAt === undefined) return;
    const left = ws.data.expiresAt * 1000 - Date.now();
    if (left <= 0) {
      this.closeForCredentials(ws, ws.data.keyId ? "API key expired" : "access token expired");
      return;
    }
    this.expiryTimers.set(ws, setTimeout(() => this.armExpiry(ws), Math.min(left, MAX_TIMER_MS)));
  }

  private closeForCredentials(ws: LiveSocket, reason: string) {
    this.remove(ws);
    ws.close(CREDENTIALS_GONE_CLOSE_CODE, reason);
  }

  /** An API key was deleted: its sockets are closed (and late upgrades with it refused for a while). */
  keyDeleted(keyId: string) {
    const now = Date.now();
    for (const [id, at] of this.revokedKeys) if (now - at > REVOKED_MEMORY_MS) this.revokedKeys.delete(id);
    this.revokedKeys.set(keyId, now);
    for (const entry of [...this.orgs.values()]) {
      for (const ws of [...entry.sockets]) if (ws.data.keyId === keyId) this.closeForCredentials(ws, "API key deleted");
    }
  }

  remove(ws: LiveSocket) {
    const timer = this.expiryTimers.get(ws);
    if (timer) {
      clearTimeout(timer);
      this.expiryTimers.delete(ws);
    }
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
    for (const timer of this.expiryTimers.values()) clearTimeout(timer);
    this.expiryTimers.clear();
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
        return { orgId: principal.orgId, userId: principal.userId, keyId: principal.keyId, expiresAt: principal.expiresAt } satisfies LiveSocketData;
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
