/**
 * Typed clients between roles. A role's service is a plain object of async methods taking
 * and returning JSON. In the process that runs the role, the client IS the service (a
 * direct call); elsewhere it is a Proxy that sends `agentos.rpc.<role>.<method>` over the
 * bus (queue group = role) and rethrows the AppError the remote side raised.
 *
 * Over the bus only the methods of the role's contract are served, and only to callers
 * holding the internal key: requests and replies travel sealed (src/platform/rpc-seal.ts).
 */
import type { Bus, Headers } from "./bus";
import { NoRespondersError, BusTimeoutError } from "./bus";
import { currentContext, requestContext } from "./context";
import { AppError } from "./errors";
import type { Logger } from "./logging";
import { backendUnavailable, outageOf } from "./outage";
import { RpcRefused, RpcSeal, type RefusalReason } from "./rpc-seal";
import { NO_TRACING, type Tracing } from "./tracing";

type RpcReply = { ok: true; result: unknown } | { ok: false; error: ReturnType<AppError["toJSON"]> };
/** What an unsealed refusal looks like: the only reply a caller without the key gets. */
type Refusal = { ok: false; refused: RefusalReason | "unknown_method"; error: ReturnType<AppError["toJSON"]> };

export interface RpcServeOptions {
  role: string;
  service: object;
  /** The role contract's methods: nothing else is served. */
  methods: readonly string[];
  seal: RpcSeal;
  log: Logger;
  /** Counts refused requests by reason (metric agentos_rpc_refused_total). */
  onRefused?: (reason: string) => void;
  tracing?: Tracing;
}

const refusal = (reason: Refusal["refused"], message: string): Refusal => ({
  ok: false,
  refused: reason,
  error: new AppError(reason === "unknown_method" ? 404 : 401, reason === "unknown_method" ? "unknown_rpc_method" : "rpc_refused", message).toJSON(),
});

export function serveRpc(bus: Bus, opts: RpcServeOptions) {
  const { role, service, seal, log } = opts;
  const tracing = opts.tracing ?? NO_TRACING;
  const served = new Set(opts.methods);
  return bus.reply<unknown, unknown>(bus.subject(`rpc.${role}.*`), async (msg) => {
    const method = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
    let request: { args?: unknown[] };
    try {
      request = seal.open(msg.subject, msg.data, { fresh: true });
    } catch (err) {
      const reason = err instanceof RpcRefused ? err.reason : "malformed";
      opts.onRefused?.(reason);
      log.warn("rpc request refused", { role, method, reason });
      return refusal(reason, `RPC requests must be sealed with the deployment's internal key (${reason}).`);
    }
    const replyTo = RpcSeal.replySubject(msg.subject, (msg.data as { nonce: string }).nonce);
    if (!served.has(method)) {
      opts.onRefused?.("unknown_method");
      return seal.seal(replyTo, refusal("unknown_method", `${role} serves no method ${method} over RPC.`));
    }
    const span = tracing.enabled ? tracing.start(`rpc ${role}.${method}`, { parent: msg.headers.traceparent ?? null, kind: "server", attributes: { "rpc.system": "agentos", "rpc.service": role, "rpc.method": method } }) : undefined;
    const ctx = { requestId: msg.headers["x-request-id"] ?? "rpc", traceparent: span?.traceparent ?? msg.headers.traceparent };
    const fn = (service as Record<string, (...a: unknown[]) => Promise<unknown>>)[method];
    let reply: RpcReply;
    try {
      const result = await requestContext.run(ctx, () => fn.apply(service, Array.isArray(request?.args) ? request.args : []));
      reply = { ok: true, result: result ?? null };
    } catch (err) {
      const outage = err instanceof AppError ? null : outageOf(err);
      if (err instanceof AppError) reply = { ok: false, error: err.toJSON() };
      else if (outage) reply = { ok: false, error: outage.toJSON() };
      else {
        log.error("rpc method failed", { role, method, error: err, request_id: ctx.requestId });
        reply = { ok: false, error: new AppError(500, "internal_error", `${role}.${method} failed`).toJSON() };
      }
      if (span && (!(err instanceof AppError) || err.status >= 500)) span.fail(err);
    }
    span?.end();
    return seal.seal(replyTo, reply);
  }, { queue: role });
}

export function rpcClient<S extends object>(bus: Bus, role: string, seal: RpcSeal, tracing: Tracing = NO_TRACING, timeoutMs = 15_000): S {
  return new Proxy({} as S, {
    get(_target, method) {
      if (typeof method !== "string" || method === "then") return undefined;
      return async (...args: unknown[]) => {
        const ctx = currentContext();
        // While NATS is down a request would wait for its timeout: fail now.
        const busDown = bus.problem();
        if (busDown) throw backendUnavailable("bus", busDown);
        const span = tracing.enabled ? tracing.start(`rpc ${role}.${method}`, { kind: "client", attributes: { "rpc.system": "agentos", "rpc.service": role, "rpc.method": method } }) : undefined;
        const headers: Headers = {};
        if (ctx?.requestId) headers["x-request-id"] = ctx.requestId;
        const traceparent = span?.traceparent ?? ctx?.traceparent;
        if (traceparent) headers.traceparent = traceparent;
        const subject = bus.subject(`rpc.${role}.${method}`);
        const sealed = seal.seal(subject, { args });
        try {
          let raw: unknown;
          try {
            raw = await bus.request<unknown>(subject, sealed, { timeoutMs, headers });
          } catch (err) {
            if (err instanceof NoRespondersError) throw new AppError(503, "service_unavailable", `The ${role} service is not running. Start a process with --role=${role}.`);
            if (err instanceof BusTimeoutError) throw new AppError(504, "upstream_timeout", `The ${role} service did not answer in time.`);
            throw err;
          }
          return unwrapReply(seal, RpcSeal.replySubject(subject, sealed.nonce), role, raw);
        } catch (err) {
          if (span && (!(err instanceof AppError) || err.status >= 500)) span.fail(err);
          throw err;
        } finally {
          span?.end();
        }
      };
    },
  });
}

function unwrapReply(seal: RpcSeal, replyTo: string, role: string, raw: unknown): unknown {
  let reply: RpcReply | Refusal;
  try {
    reply = seal.open(replyTo, raw, { fresh: false });
  } catch {
    // An unsealed refusal: the other side does not share our internal key (or clock).
    const r = raw as Partial<Refusal>;
    const why = r && typeof r === "object" && typeof r.refused === "string" ? r.refused : "an unsealed or forged reply";
    throw new AppError(503, "service_unavailable", `The ${role} service refused this process's RPC (${why}): every process must share AGENTOS_INTERNAL_KEY and a synchronised clock.`);
  }
  if (!reply.ok) throw AppError.fromJSON(reply.error);
  return reply.result;
}
