/**
 * Cursor pagination over time-sortable ids: `?limit=&after=<id>&before=<id>&order=` → {data,
 * has_more, next_cursor}. Ids sort by creation time, so the id is the cursor; one extra row
 * tells whether there is a next page. `after` pages forward in the list's order; `before`
 * gives the page just before the cursor (still in the list's order) and then `has_more` /
 * `next_cursor` continue backwards (pass `next_cursor` as `before` again). Both: the window
 * between them.
 */
import { and, asc, desc, gt, lt, type Column, type SQL } from "drizzle-orm";

export interface PageRequest {
  limit?: number;
  after?: string;
  before?: string;
  order?: "asc" | "desc";
}

export interface PageOf<T> {
  data: T[];
  has_more: boolean;
  next_cursor: string | null;
}

/** WHERE and ORDER BY for one page; pass the result's rows to `toPage`. */
export function pageQuery(idColumn: Column, req: PageRequest, where?: SQL) {
  const limit = Math.min(Math.max(req.limit ?? 20, 1), 100);
  const ascending = (req.order ?? "asc") === "asc";
  const afterCursor = req.after ? (ascending ? gt(idColumn, req.after) : lt(idColumn, req.after)) : undefined;
  const beforeCursor = req.before ? (ascending ? lt(idColumn, req.before) : gt(idColumn, req.before)) : undefined;
  // Before a cursor: read backwards from it (the rows nearest to it), toPage turns them round.
  const backwards = req.before !== undefined;
  return {
    where: and(where, afterCursor, beforeCursor),
    orderBy: ascending !== backwards ? asc(idColumn) : desc(idColumn),
    limit: limit + 1,
    pageSize: limit,
    backwards,
  };
}

/** The page of `rows` read with `pageQuery` (or a plain page size: forwards). */
export function toPage<R extends { id: string }, T>(rows: R[], page: number | { pageSize: number; backwards: boolean }, map: (row: R) => T): PageOf<T> {
  const { pageSize, backwards } = typeof page === "number" ? { pageSize: page, backwards: false } : page;
  const hasMore = rows.length > pageSize;
  const kept = hasMore ? rows.slice(0, pageSize) : rows;
  const last = kept[kept.length - 1];
  if (backwards) kept.reverse();
  return { data: kept.map(map), has_more: hasMore, next_cursor: hasMore ? last.id : null };
}

export const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
