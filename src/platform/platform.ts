/**
 * What a role's init receives: configuration, logs, metrics, the backends this process
 * opened, and the typed clients of every role (direct calls for roles in this process,
 * NATS request/reply for the others).
 */
import type { Bus } from "./bus";
import type { Cache } from "./cache";
import type { Config } from "./config";
import type { Database, Db } from "./db";
import type { Logger } from "./logging";
import type { Metrics } from "./metrics";
import type { RpcSeal } from "./rpc-seal";
import type { SecretBox } from "./secrets";
import type { Tracing } from "./tracing";

export interface Platform<Clients = Record<string, object>> {
  config: Config;
  log: Logger;
  metrics: Metrics;
  /** Spans over OTLP, or NO_TRACING (check `enabled` on hot paths). */
  tracing: Tracing;
  /** Set once the `database` module has started; roles that declare it can rely on it. */
  database: Database;
  db: Db;
  cache: Cache;
  bus: Bus;
  /** Seals RPC between processes; set when the internal key is configured (always for split roles). */
  rpcSeal?: RpcSeal;
  clients: Clients;
  /** Encrypts secrets at rest (AGENTOS_SECRET_KEY, previous keys for rotation). */
  secrets: SecretBox;
  /** Services of the roles that run in this process, by role name (the direct-call side of the clients). */
  local: Map<string, object>;
  /** True from the moment shutdown begins: /readyz turns 503, workers stop taking jobs. */
  draining: boolean;
  /** Elysia controllers mounted under /v1 on the gateway. */
  controllers: unknown[];
  /** Hot reads answered from memory before the framework (http/fast-path.ts), in order. */
  fastRoutes: import("./http/fast-path").FastRoute[];
  /** WebSocket routes: the first whose `match` accepts the request upgrades it. */
  websockets: WebSocketRoute[];
}

export interface WebSocketRoute {
  path: string;
  /** Returns the data attached to the socket, or a Response to refuse the upgrade. */
  upgrade(request: Request): Promise<Record<string, unknown> | Response>;
  open(ws: import("bun").ServerWebSocket<any>): void;
  message(ws: import("bun").ServerWebSocket<any>, message: string | Buffer): void;
  close(ws: import("bun").ServerWebSocket<any>, code: number, reason: string): void;
  drain?(ws: import("bun").ServerWebSocket<any>): void;
}
