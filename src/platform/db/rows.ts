/** Rows of a raw `db.execute` result, whichever driver returned them (postgres.js: array; PGlite: {rows}). */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
