/**
 * Traces (SPEC §1): spans exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set,
 * with the maintained OpenTelemetry JS SDK (BatchSpanProcessor: batching, a bounded queue
 * that drops rather than grows, export off the request path). Without an endpoint nothing is
 * loaded and `NO_TRACING` is a constant whose methods allocate nothing: hot paths check
 * `tracing.enabled` first.
 *
 * Spans are joined by W3C trace context. The current span of a request lives in the request
 * context's `traceparent` (AsyncLocalStorage), which RPC headers, outbox rows and run rows
 * carry across processes; `inSpan` makes a child of it and sets it for the callee.
 */
import type { Attributes } from "@opentelemetry/api";
import type { Sampler } from "@opentelemetry/sdk-trace-base";
import { currentContext, requestContext, type RequestContext } from "./context";
import type { Logger } from "./logging";

export type SpanKindName = "internal" | "server" | "client" | "producer" | "consumer";

export interface SpanHandle {
  /** This span as a W3C traceparent, for children in other processes. */
  readonly traceparent: string | undefined;
  set(attributes: Attributes): void;
  rename(name: string): void;
  /** Marks the span failed (status ERROR) with the error's message. */
  fail(error: unknown): void;
  end(): void;
}

export interface StartOptions {
  /** The parent as a traceparent; default the current context's. */
  parent?: string | null;
  kind?: SpanKindName;
  attributes?: Attributes;
}

export interface Tracing {
  readonly enabled: boolean;
  start(name: string, opts?: StartOptions): SpanHandle;
  /** Runs `fn` in a child span of the current context; `fn`'s context carries the span. */
  inSpan<T>(name: string, opts: StartOptions, fn: (span: SpanHandle) => Promise<T>): Promise<T>;
  /** Exports what is queued (bounded by the caller's shutdown timeout). */
  shutdown(): Promise<void>;
}

const NOOP_SPAN: SpanHandle = { traceparent: undefined, set() {}, rename() {}, fail() {}, end() {} };

export const NO_TRACING: Tracing = {
  enabled: false,
  start: () => NOOP_SPAN,
  inSpan: (_name, _opts, fn) => fn(NOOP_SPAN),
  shutdown: async () => {},
};

export interface TracingConfig {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: base URL; traces go to `<endpoint>/v1/traces`. */
  endpoint?: string;
  /** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: the full traces URL (wins over `endpoint`). */
  tracesEndpoint?: string;
  /** OTEL_EXPORTER_OTLP_HEADERS: `k=v,k2=v2` sent with every export (e.g. an API key). */
  headers?: string;
  serviceName: string;
  /** OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG. */
  sampler: string;
  samplerArg?: string;
  attributes?: Attributes;
}

const TRACEPARENT = /^00-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/;

function parseHeaders(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (raw ?? "").split(",")) {
    const i = pair.indexOf("=");
    if (i > 0) out[decodeURIComponent(pair.slice(0, i).trim())] = decodeURIComponent(pair.slice(i + 1).trim());
  }
  return out;
}

export async function openTracing(config: TracingConfig, log: Logger): Promise<Tracing> {
  const url = config.tracesEndpoint ?? (config.endpoint ? `${config.endpoint.replace(/\/+$/, "")}/v1/traces` : undefined);
  if (!url) return NO_TRACING;
  const [api, sdk, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import("@opentelemetry/api"),
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  const ratio = Number(config.samplerArg ?? "1");
  const root: Record<string, () => Sampler> = {
    always_on: () => new sdk.AlwaysOnSampler(),
    always_off: () => new sdk.AlwaysOffSampler(),
    traceidratio: () => new sdk.TraceIdRatioBasedSampler(Number.isFinite(ratio) ? ratio : 1),
  };
  const samplers: Record<string, () => Sampler> = {
    ...root,
    parentbased_always_on: () => new sdk.ParentBasedSampler({ root: root.always_on() }),
    parentbased_always_off: () => new sdk.ParentBasedSampler({ root: root.always_off() }),
    parentbased_traceidratio: () => new sdk.ParentBasedSampler({ root: root.traceidratio() }),
  };
  const exporter = new OTLPTraceExporter({ url, headers: parseHeaders(config.headers), timeoutMillis: 5000 });
  const provider = new sdk.BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": config.serviceName, ...config.attributes }),
    sampler: (samplers[config.sampler] ?? samplers.parentbased_always_on)(),
    spanProcessors: [new sdk.BatchSpanProcessor(exporter, { maxQueueSize: 4096, maxExportBatchSize: 512, scheduledDelayMillis: 1000, exportTimeoutMillis: 5000 })],
  });
  const tracer = provider.getTracer("agentos");
  const kinds: Record<SpanKindName, number> = {
    internal: api.SpanKind.INTERNAL, server: api.SpanKind.SERVER, client: api.SpanKind.CLIENT, producer: api.SpanKind.PRODUCER, consumer: api.SpanKind.CONSUMER,
  };

  const parentContext = (traceparent: string | null | undefined) => {
    const m = traceparent ? TRACEPARENT.exec(traceparent) : null;
    if (!m || /^0+$/.test(m[1])) return api.ROOT_CONTEXT;
    return api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: m[1], spanId: m[2], traceFlags: Number.parseInt(m[3], 16), isRemote: true });
  };

  const start = (name: string, opts: StartOptions = {}): SpanHandle => {
    const parent = opts.parent === undefined ? currentContext()?.traceparent : opts.parent;
    const span = tracer.startSpan(name, { kind: kinds[opts.kind ?? "internal"], attributes: opts.attributes }, parentContext(parent));
    const sc = span.spanContext();
    return {
      traceparent: `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1) === 1 ? "01" : "00"}`,
      set: (attributes) => void span.setAttributes(attributes),
      rename: (n) => void span.updateName(n),
      fail: (error) => {
        const message = (error as Error)?.message ?? String(error);
        span.setStatus({ code: api.SpanStatusCode.ERROR, message });
        span.setAttribute("error.type", (error as { code?: string })?.code ?? (error as Error)?.name ?? "error");
      },
      end: () => span.end(),
    };
  };

  log.info("tracing: exporting spans over OTLP/HTTP", { endpoint: url, service: config.serviceName, sampler: config.sampler });
  return {
    enabled: true,
    start,
    async inSpan(name, opts, fn) {
      const span = start(name, opts);
      const ctx: RequestContext = { ...(currentContext() ?? { requestId: "internal" }), traceparent: span.traceparent };
      try {
        return await requestContext.run(ctx, () => fn(span));
      } catch (err) {
        span.fail(err);
        throw err;
      } finally {
        span.end();
      }
    },
    async shutdown() {
      await provider.shutdown().catch((err) => log.warn("tracing: final export failed", { error: (err as Error).message }));
    },
  };
}
