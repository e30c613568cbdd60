/**
 * What PostgreSQL (and PGlite) cannot store: a NUL character in text or jsonb, an unpaired
 * UTF-16 surrogate in jsonb, and jsonb nested deep enough to stall it. Requests that carry
 * them are refused (http/app.ts, findUnstorable). What the platform did not choose to receive
 * — a model's reply, a tool's result — is made storable instead: a write that fails on it
 * would fail again at every retry of the run, calling the model each time.
 */

/** Deeper JSON is refused in requests and flattened in what is stored: no API body nests this far. */
export const MAX_JSON_DEPTH = 64;

/** The string with NUL characters and unpaired surrogates replaced by U+FFFD. */
export function storableText(s: string): string {
  const clean = s.includes("\u0000") ? s.replaceAll("\u0000", "\uFFFD") : s;
  return clean.isWellFormed() ? clean : clean.toWellFormed();
}

function deepAsText(value: unknown): string {
  try {
    return storableText(JSON.stringify(value));
  } catch {
    return "[a value nested too deep to keep]"; // JSON.stringify ran out of stack
  }
}

/** A JSON value made storable: every string and key by storableText, a value nested past MAX_JSON_DEPTH kept as its JSON text. */
export function storableJson<T>(value: T, depth = 0): T {
  if (typeof value === "string") return storableText(value) as T;
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_JSON_DEPTH) return deepAsText(value) as T;
  if (Array.isArray(value)) return value.map((v) => storableJson(v, depth + 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[storableText(k)] = storableJson(v, depth + 1);
  return out as T;
}
