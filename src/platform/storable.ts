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

const isStorableText = (s: string) => !s.includes("\u0000") && s.isWellFormed();

function isStorable(value: unknown, depth: number): boolean {
  if (typeof value === "string") return isStorableText(value);
  if (value === null || typeof value !== "object") return true;
  if (depth >= MAX_JSON_DEPTH) return false;
  if (Array.isArray(value)) return value.every((v) => isStorable(v, depth + 1));
  for (const [k, v] of Object.entries(value)) if (!isStorableText(k) || !isStorable(v, depth + 1)) return false;
  return true;
}

function rebuilt(value: unknown, depth: number): unknown {
  if (typeof value === "string") return storableText(value);
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_JSON_DEPTH) return deepAsText(value);
  if (Array.isArray(value)) return value.map((v) => rebuilt(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[storableText(k)] = rebuilt(v, depth + 1);
  return out;
}

/**
 * A JSON value made storable: every string and key by storableText, a value nested past
 * MAX_JSON_DEPTH kept as its JSON text. A value with nothing to change is returned as it is
 * (a large tool result is not copied).
 */
export function storableJson<T>(value: T): T {
  return (isStorable(value, 0) ? value : rebuilt(value, 0)) as T;
}
