/**
 * What PostgreSQL (and PGlite) cannot store: a NUL character in text or jsonb, an unpaired
 * UTF-16 surrogate in jsonb, and jsonb nested deep enough to stall it. Requests that carry
 * them are refused (findUnstorable, checked by http/app.ts). What the platform did not choose to receive
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

/**
 * What PostgreSQL cannot store or should not be asked to: NUL characters and lone
 * surrogates in strings or keys (text and jsonb reject them), and nesting past MAX_JSON_DEPTH.
 */
export function findUnstorable(value: unknown, depth = 0): string | null {
  if (typeof value === "string") return value.includes("\u0000") ? "a NUL character (\\u0000)" : value.isWellFormed() ? null : "an unpaired UTF-16 surrogate";
  if (value === null || typeof value !== "object") return null;
  if (depth >= MAX_JSON_DEPTH) return `nesting deeper than ${MAX_JSON_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (const v of value) {
      const problem = findUnstorable(v, depth + 1);
      if (problem) return problem;
    }
    return null;
  }
  for (const [k, v] of Object.entries(value)) {
    const problem = findUnstorable(k) ?? findUnstorable(v, depth + 1);
    if (problem) return problem;
  }
  return null;
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
  return (findUnstorable(value) === null ? value : rebuilt(value, 0)) as T;
}
