/** The run inspector: GET /v1/runs/{id}/trace as a timeline (queue wait, each model and tool call, time in requires_action). */
import type { Ok } from "../sdk/client";
import { api, formatDate, unwrap, useLoad } from "./api";

type RunTrace = Ok<"/v1/runs/{id}/trace", "get">;
import { ErrorLine, Loading, Page, Table } from "./ui";

const ms = (n: number | string | null | undefined) => (n === null || n === undefined ? "—" : `${Number(n).toLocaleString()} ms`);
const cents = (n: number | null | undefined) => (n === null || n === undefined ? "—" : `${n.toFixed(4)} ¢`);

/** One lane per step on a shared time axis (inline SVG), plus the queue and approval waits. */
function Timeline({ trace }: { trace: RunTrace }) {
  const start = new Date(trace.created_at).getTime();
  const end = Math.max(start + 1, trace.completed_at ? new Date(trace.completed_at).getTime() : Date.now());
  const span = end - start;
  const lanes: { label: string; from: number; to: number; kind: string }[] = [];
  if (Number(trace.queued_ms) > 0) lanes.push({ label: "queued", from: start, to: start + Number(trace.queued_ms), kind: "queue" });
  for (const s of trace.steps) {
    const from = new Date(s.started_at).getTime();
    lanes.push({ label: `${s.kind === "model_call" ? "model" : "tool"}: ${s.name}`, from, to: s.completed_at ? new Date(s.completed_at).getTime() : end, kind: s.kind });
  }
  for (const w of trace.requires_action) {
    const from = new Date(w.from).getTime();
    lanes.push({ label: "waiting for approval / outputs", from, to: w.to ? new Date(w.to).getTime() : end, kind: "wait" });
  }
  lanes.sort((a, b) => a.from - b.from);
  const row = 26;
  const labelW = 210;
  const width = 640;
  const plot = width - labelW - 10;
  const x = (t: number) => labelW + ((t - start) / span) * plot;
  return (
    <figure class="card timeline">
      <figcaption>Timeline ({ms(trace.total_ms)} from creation to {trace.completed_at ? "the end" : "now"})</figcaption>
      <div class="timeline-scroll">
      <svg viewBox={`0 0 ${width} ${lanes.length * row + 24}`} role="img" aria-label={`Timeline: ${lanes.map((l) => `${l.label} ${Math.round(l.to - l.from)} ms`).join(", ")}`}>
        {lanes.map((l, i) => (
          <g>
            <text x={labelW - 8} y={i * row + 17} text-anchor="end" class="chart-label">{l.label.length > 30 ? `${l.label.slice(0, 29)}…` : l.label}</text>
            <rect x={x(l.from)} y={i * row + 5} width={Math.max(2, x(l.to) - x(l.from))} height={row - 10} rx="3" class={`lane lane-${l.kind}`} />
          </g>
        ))}
        <text x={labelW} y={lanes.length * row + 18} class="chart-value">0 ms</text>
        <text x={width - 10} y={lanes.length * row + 18} text-anchor="end" class="chart-value">{Math.round(span).toLocaleString()} ms</text>
      </svg>
      </div>
    </figure>
  );
}

export function RunPage({ id }: { id: string }) {
  const trace = useLoad(() => api.GET("/v1/runs/{id}/trace", { params: { path: { id } } }).then(unwrap), [id]);
  const t = trace.data;
  return (
    <Page title={`Run ${id}`} actions={<button type="button" class="secondary" onClick={trace.reload}>Refresh</button>}>
      <ErrorLine error={trace.error} />
      {!t ? (
        <Loading />
      ) : (
        <>
          <dl class="facts card">
            <div><dt>Status</dt><dd><span class={`badge status-${t.status}`}>{t.status}</span></dd></div>
            <div><dt>Model</dt><dd>{t.model}</dd></div>
            <div><dt>Total</dt><dd>{ms(t.total_ms)}</dd></div>
            <div><dt>Queued</dt><dd>{ms(t.queued_ms)}</dd></div>
            <div><dt>Waiting (requires_action)</dt><dd>{ms(t.requires_action_ms)}</dd></div>
            <div><dt>Attempts</dt><dd>{t.attempts}</dd></div>
            <div><dt>Tokens</dt><dd>{Number(t.usage.total_tokens).toLocaleString()} ({t.usage.prompt_tokens} in, {t.usage.completion_tokens} out)</dd></div>
            <div><dt>Cost</dt><dd>{cents(t.cost_cents)}</dd></div>
          </dl>
          <Timeline trace={t} />
          <h2>Steps</h2>
          <Table
            caption="Steps of the run"
            rows={t.steps}
            empty="No steps yet."
            columns={[
              ["Kind", (s) => (s.kind === "model_call" ? "model call" : "tool call")],
              ["Name", (s) => s.name],
              ["Status", (s) => <span class={`badge status-${s.status}`}>{s.status}</span>],
              ["Started", (s) => formatDate(s.started_at)],
              ["Latency", (s) => ms(s.duration_ms)],
              ["Tokens", (s) => (s.usage ? s.usage.total_tokens : "—")],
              ["Cost", (s) => cents(s.cost_cents)],
              ["Error", (s) => (s.error ? `${s.error.code}: ${s.error.message}` : "")],
            ]}
          />
        </>
      )}
    </Page>
  );
}
