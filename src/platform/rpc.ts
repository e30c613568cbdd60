/**
 * Typed clients between roles. A role's service is a plain object of async methods taking
 * and returning JSON. In the process that runs the role, the client IS the service (a
 * direct call); elsewhere it is a Proxy that sends `agentos.rpc.<role>.<method>` over the
 * bus (queue group = role) and rethrows the AppError the remote side raised.
 */
import type { Bus, Headers } from "./bus";
import { NoRespondersError, BusTimeoutError } from "./bus";
import { currentContext, requestContext } from "./context";
import { AppError } from "./errors";
import type { Logger } from "./logging";
import { backendUnavailable, outageOf } from "./outage";

// biome-ignore lint: service methods have arbitrary signatures
export type ServiceMethods = { [method: string]: (...args: any[]) => Promise<any> };

type RpcReply = { ok: true; result: unknown } | { ok: false; error: ReturnType<AppError["toJSON"]> };

export function serveRpc(bus: Bus, role: string, service: object, log: Logger) {
  return bus.reply<{ args: unknown[] }, RpcReply>(bus.subject(`rpc.${role}.*`), async (msg) => {
    const method = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
    const fn = (service as Record<string, unknown>)[method];
    if (typeof fn !== "function" || method.startsWith("_") || method === "constructor") {
      return { ok: false, error: new AppError(501, "unknown_rpc_method", `${role} has no method ${method}`).toJSON() };
    }
    const ctx = { requestId: msg.headers["x-request-id"] ?? "rpc", traceparent: msg.headers.traceparent };
    try {
      const result = await requestContext.run(ctx, () => fn.apply(service, msg.data?.args ?? []));
      return { ok: true, result: result ?? null };
    } catch (err) {
      if (err instanceof AppError) return { ok: false, error: err.toJSON() };
      const outage = outageOf(err);
      if (outage) return { ok: false, error: outage.toJSON() };
      log.error("rpc method failed", { role, method, error: err, request_id: ctx.requestId });
      return { ok: false, error: new AppError(500, "internal_error", `${role}.${method} failed`).toJSON() };
    }
  }, { queue: role });
}

export function rpcClient<S extends object>(bus: Bus, role: string, timeoutMs = 15_000): S {
  return new Proxy({} as S, {
    get(_target, method) {
      if (typeof method !== "string" || method === "then") return undefined;
      return async (...args: unknown[]) => {
        const ctx = currentContext();
        const headers: Headers = {};
        if (ctx?.requestId) headers["x-request-id"] = ctx.requestId;
        if (ctx?.traceparent) headers.traceparent = ctx.traceparent;
        // While NATS is down a request would wait for its timeout: fail now.
        const busDown = bus.problem();
        if (busDown) throw backendUnavailable("bus", busDown);
        let reply: RpcReply;
        try {
          reply = await bus.request<RpcReply>(bus.subject(`rpc.${role}.${method}`), { args }, { timeoutMs, headers });
        } catch (err) {
          if (err instanceof NoRespondersError) throw new AppError(503, "service_unavailable", `The ${role} service is not running. Start a process with --role=${role}.`);
          if (err instanceof BusTimeoutError) throw new AppError(504, "upstream_timeout", `The ${role} service did not answer in time.`);
          throw err;
        }
        if (!reply.ok) throw AppError.fromJSON(reply.error);
        return reply.result;
      };
    },
  });
}
