/**
 * Cursor pagination over time-sortable ids: `?limit=&after=<id>&order=` → {data, has_more,
 * next_cursor}. Ids sort by creation time, so the id is the cursor; one extra row tells
 * whether there is a next page.
 */
import { and, asc, desc, gt, lt, type Column, type SQL } from "drizzle-orm";

export interface PageRequest {
  limit?: number;
  after?: string;
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
  const order = req.order ?? "asc";
  const cursor = req.after ? (order === "asc" ? gt(idColumn, req.after) : lt(idColumn, req.after)) : undefined;
  return {
    where: cursor ? and(where, cursor) : where,
    orderBy: order === "asc" ? asc(idColumn) : desc(idColumn),
    limit: limit + 1,
    pageSize: limit,
  };
}

export function toPage<R extends { id: string }, T>(rows: R[], pageSize: number, map: (row: R) => T): PageOf<T> {
  const hasMore = rows.length > pageSize;
  const kept = hasMore ? rows.slice(0, pageSize) : rows;
  return { data: kept.map(map), has_more: hasMore, next_cursor: hasMore ? kept[kept.length - 1].id : null };
}

export const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
