/** Small shared pieces: page frame, form fields, error line, tables, bar charts (inline SVG). */
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { errorText } from "./api";

export function Page({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-head">
        <h1 id="page-title" tabIndex={-1}>{title}</h1>
        {actions}
      </header>
      {children}
    </section>
  );
}

export function Field({ label, hint, children }: { label: string; hint?: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span class="field-label">{label}</span>
      {children}
      {hint && <span class="hint">{hint}</span>}
    </label>
  );
}

export function ErrorLine({ error }: { error?: string | null }) {
  return error ? <p class="error" role="alert">{error}</p> : null;
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return <p class="muted" aria-live="polite">{what}…</p>;
}

/** A form whose submit runs `action`, shows its error and disables itself while busy. */
export function ActionForm({ action, submit, children, class: cls, label }: { action: () => Promise<unknown>; submit: string; children?: ComponentChildren; class?: string; label?: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const onSubmit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class={cls ?? "card form"} onSubmit={onSubmit} aria-label={label}>
      {children}
      <ErrorLine error={error} />
      <button type="submit" disabled={busy}>{busy ? "Working…" : submit}</button>
    </form>
  );
}

export function Table<T>({ rows, columns, empty, caption }: { rows: T[]; columns: [string, (row: T) => ComponentChildren][]; empty: string; caption: string }) {
  if (rows.length === 0) return <p class="muted">{empty}</p>;
  return (
    <div class="table-wrap">
      <table>
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>{columns.map(([h]) => <th scope="col">{h}</th>)}</tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr>{columns.map(([h, cell]) => <td data-label={h}>{cell(row)}</td>)}</tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Horizontal bars as inline SVG: one row per item, value labels, a text table for screen readers. */
export function BarChart({ title, items, unit }: { title: string; items: { label: string; value: number }[]; unit: string }) {
  const max = Math.max(1, ...items.map((i) => i.value));
  // Drawn at about the size it is shown (a card is 340–420 px wide), so the text stays legible.
  const row = 28;
  const labelWidth = 120;
  const width = 400;
  const barSpace = width - labelWidth - 100;
  const height = Math.max(row, items.length * row) + 8;
  return (
    <figure class="chart card">
      <figcaption>{title}</figcaption>
      {items.length === 0 ? (
        <p class="muted">No usage in this period yet.</p>
      ) : (
        <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${title}: ${items.map((i) => `${i.label} ${i.value} ${unit}`).join(", ")}`}>
          {items.map((item, i) => {
            const y = 4 + i * row;
            const w = Math.max(2, (item.value / max) * barSpace);
            return (
              <g>
                <text x={labelWidth - 8} y={y + row / 2 + 4} text-anchor="end" class="chart-label">{item.label.length > 16 ? `${item.label.slice(0, 15)}…` : item.label}</text>
                <rect x={labelWidth} y={y + 4} width={w} height={row - 10} rx="3" class="chart-bar" />
                <text x={labelWidth + w + 6} y={y + row / 2 + 4} class="chart-value">{item.value.toLocaleString()} {unit}</text>
              </g>
            );
          })}
        </svg>
      )}
    </figure>
  );
}

export function Json({ value }: { value: unknown }) {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  return <pre class="json">{text}</pre>;
}
