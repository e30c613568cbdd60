/**
 * The regression corpus: every input that ever broke the server, kept as a file in
 * test/fuzz/corpus/ and replayed on every run (so CI does not depend on a seed finding it
 * again). A file: {description, method, path, auth?, headers?, body? (the raw text),
 * expect: {status: 400 | "4xx" | "any", code?}}; `{agent}`, `{thread}`, `{tool}` and
 * `{webhook}` in the path or body become ids of the first user's resources.
 * `FUZZ_SAVE=<dir>` writes what a fuzz run found into <dir> in this format, to be reviewed
 * and moved into the corpus.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Expectation, FuzzRequest } from "./oracle";

export const CORPUS_DIR = join(import.meta.dir, "../../fuzz/corpus");
const PLACEHOLDER = /\{(agent|thread|tool|webhook)\}/g;

export interface CorpusEntry {
  file: string;
  description: string;
  method: string;
  path: string;
  auth?: boolean;
  headers?: Record<string, string>;
  body?: string;
  expect: { status: number | "4xx" | "any"; code?: string };
}

export function loadCorpus(dir = CORPUS_DIR): CorpusEntry[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ file, ...(JSON.parse(readFileSync(join(dir, file), "utf8")) as Omit<CorpusEntry, "file">) }));
}

/** The entry as a request of `token`'s user; `ids` gives the id of each placeholder. */
export function corpusRequest(entry: CorpusEntry, ids: Record<string, string | undefined>, token: string): FuzzRequest {
  const fill = (text: string) => text.replace(PLACEHOLDER, (whole, name: string) => ids[name] ?? whole);
  const headers: Record<string, string> = { ...(entry.auth === false ? {} : { authorization: `Bearer ${token}` }), ...(entry.body !== undefined ? { "content-type": "application/json" } : {}), ...entry.headers };
  const status = entry.expect.status;
  return {
    method: entry.method,
    path: fill(entry.path),
    headers,
    body: entry.body === undefined ? undefined : fill(entry.body),
    expect: (typeof status === "number" ? String(status) : status) as Expectation,
    expectCode: entry.expect.code,
    label: `corpus ${entry.file}`,
  };
}

/** Writes a finding as a corpus file (text bodies only), named by its content. */
export function saveFinding(dir: string, check: string, r: FuzzRequest) {
  if (r.body !== undefined && typeof r.body !== "string") return;
  const { authorization: _token, ...headers } = r.headers ?? {};
  const entry = {
    description: `found by the fuzz: ${check} (${r.label})`,
    method: r.method,
    path: r.path,
    auth: !!r.headers?.authorization,
    ...(Object.keys(headers).length ? { headers } : {}),
    ...(r.body !== undefined ? { body: r.body } : {}),
    expect: { status: r.expect === "2xx" || r.expect === "any" ? "any" : /^\d+$/.test(r.expect) ? Number(r.expect) : "4xx", ...(r.expectCode ? { code: r.expectCode } : {}) },
  };
  const text = `${JSON.stringify(entry, null, 2)}\n`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `found-${createHash("sha256").update(text).digest("hex").slice(0, 12)}.json`), text);
}
