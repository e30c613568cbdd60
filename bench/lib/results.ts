/** Results files: bench/results/<scenario>.json, plus a readable table on stdout. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const RESULTS_DIR = new URL("../results", import.meta.url).pathname;

export function writeResults(scenario: string, data: object): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${scenario}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2) + "\n");
  return file;
}

/** Prints rows as an aligned text table. */
export function printTable(rows: Record<string, unknown>[]) {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]);
  const cell = (v: unknown) => (v === undefined || v === null ? "" : String(v));
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(width[i])).join("  ");
  console.log(line(cols));
  console.log(line(width.map((w) => "-".repeat(w))));
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))));
}
