/**
 * A small Prometheus registry (text exposition format 0.0.4): counters, gauges and
 * histograms with labels. Hand-written because it is tiny and allocation-light on the
 * request hot path; collectors add process memory and event-loop lag at scrape time.
 */
type Labels = Record<string, string | number>;

const keyCache = new Map<string, string>();

/** Label sets repeat (route × method × status): their rendered keys are memoised. */
function labelKey(labels: Labels): string {
  let id = "";
  for (const k in labels) id += `${k}\u0000${labels[k]}\u0001`;
  let key = keyCache.get(id);
  if (key === undefined) {
    key = renderLabels(labels);
    if (keyCache.size < 10_000) keyCache.set(id, key);
  }
  return key;
}

function renderLabels(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return "";
  keys.sort();
  return keys.map((k) => `${k}="${String(labels[k]).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`).join(",");
}

interface Metric {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  render(): string[];
}

export class Counter implements Metric {
  readonly type = "counter";
  private values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1) {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  /** One label set's increment, resolved once (hot paths with fixed labels). */
  bind(labels: Labels): (by?: number) => void {
    const key = labelKey(labels);
    if (!this.values.has(key)) this.values.set(key, 0);
    return (by = 1) => void this.values.set(key, this.values.get(key)! + by);
  }
  get(labels: Labels = {}) {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render() {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${v}`);
  }
}

export class Gauge implements Metric {
  readonly type = "gauge";
  private values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string, private collect?: (g: Gauge) => void) {}
  set(value: number, labels: Labels = {}) {
    this.values.set(labelKey(labels), value);
  }
  inc(labels: Labels = {}, by = 1) {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  dec(labels: Labels = {}, by = 1) {
    this.inc(labels, -by);
  }
  render() {
    this.collect?.(this);
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${v}`);
  }
}

export class Histogram implements Metric {
  readonly type = "histogram";
  private series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {}
  observe(value: number, labels: Labels = {}) {
    this.record(this.seriesOf(labelKey(labels)), value);
  }
  /** One label set's observe, resolved once (hot paths with fixed labels). */
  bind(labels: Labels): (value: number) => void {
    const s = this.seriesOf(labelKey(labels));
    return (value) => this.record(s, value);
  }
  private seriesOf(key: string) {
    let s = this.series.get(key);
    if (!s) {
      s = { counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    return s;
  }
  private record(s: { counts: number[]; sum: number; count: number }, value: number) {
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }
  render() {
    const lines: string[] = [];
    for (const [key, s] of this.series) {
      const sep = key ? "," : "";
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{${key}${sep}le="${b}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${key}${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${key ? `{${key}}` : ""} ${s.sum}`);
      lines.push(`${this.name}_count${key ? `{${key}}` : ""} ${s.count}`);
    }
    return lines;
  }
}

export class Registry {
  private metrics = new Map<string, Metric>();

  private add<M extends Metric>(metric: M): M {
    const existing = this.metrics.get(metric.name);
    if (existing) return existing as M;
    this.metrics.set(metric.name, metric);
    return metric;
  }
  counter(name: string, help: string) {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string, collect?: (g: Gauge) => void) {
    return this.add(new Gauge(name, help, collect));
  }
  histogram(name: string, help: string, buckets = DEFAULT_BUCKETS) {
    return this.add(new Histogram(name, help, buckets));
  }
  render(): string {
    const out: string[] = [];
    for (const m of this.metrics.values()) {
      out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`, ...m.render());
    }
    return out.join("\n") + "\n";
  }
}

export const DEFAULT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The process-wide metrics of the AgentOS design (names fixed by SPEC §1). */
export function createMetrics() {
  const registry = new Registry();
  let lag = 0;
  let last = performance.now();
  const lagTimer = setInterval(() => {
    const now = performance.now();
    lag = Math.max(0, now - last - 500) / 1000;
    last = now;
  }, 500);
  lagTimer.unref?.();
  const metrics = {
    registry,
    httpDuration: registry.histogram("agentos_http_request_duration_seconds", "HTTP request duration by route, method and status"),
    httpRequests: registry.counter("agentos_http_requests_total", "HTTP requests by route, method and status"),
    httpFastAnswers: registry.counter("agentos_http_fast_path_total", "HTTP requests answered from memory before the framework, by route (also counted in agentos_http_requests_total)"),
    natsMessages: registry.counter("agentos_nats_messages_total", "Bus messages by direction and kind"),
    dbStatements: registry.counter("agentos_db_statements_total", "Database work sent, by kind: statement (a query; a transaction's BEGIN and COMMIT not included) and transaction"),
    rpcRefused: registry.counter("agentos_rpc_refused_total", "RPC requests refused by the serving role: unsigned, bad_signature, stale, replayed, malformed, unknown_method"),
    websocketConnections: registry.gauge("agentos_websocket_connections", "Open WebSocket connections"),
    runs: registry.counter("agentos_runs_total", "Runs that reached a status, by status"),
    runStepDuration: registry.histogram("agentos_run_step_duration_seconds", "Run step duration by kind (model, tool)"),
    memory: registry.gauge("agentos_process_resident_memory_bytes", "Process memory by kind (rss, heap_used, heap_total, external)", (g) => {
      const m = process.memoryUsage();
      g.set(m.rss, { kind: "rss" });
      g.set(m.heapUsed, { kind: "heap_used" });
      g.set(m.heapTotal, { kind: "heap_total" });
      g.set(m.external, { kind: "external" });
    }),
    eventLoopLag: registry.gauge("agentos_event_loop_lag_seconds", "Event-loop lag sampled every 500 ms", (g) => g.set(lag)),
    uptime: registry.gauge("agentos_process_start_time_seconds", "Start time of the process since the Unix epoch", (g) =>
      g.set(Math.floor(Date.now() / 1000 - process.uptime())),
    ),
    stop: () => clearInterval(lagTimer),
  };
  return metrics;
}
export type Metrics = ReturnType<typeof createMetrics>;
