/** Route models shared by every controller: pagination, ids, the error shape. */
import { t, type TSchema } from "elysia";
import { ID_BODY_PATTERN, type IdPrefix } from "../ids";
import { MAX_BYTES, MAX_KEY_LENGTH } from "./contract";

/**
 * `t.UnionEnum` without its built-in `default: values[0]`: Elysia fills a missing REQUIRED
 * field with that default (`PUT /billing/plan {}` became `{plan: "free"}`). A default is kept
 * only when the model gives one explicitly.
 */
export function Enum<const V extends readonly string[]>(values: V, options: { default?: V[number]; description?: string } = {}) {
  const schema = t.UnionEnum(values as unknown as [V[number], ...V[number][]], options);
  if (!("default" in options)) delete (schema as { default?: unknown }).default;
  return schema;
}

export const PageQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20, description: "Page size (1-100)" })),
  after: t.Optional(t.String({ maxLength: 64, description: "Cursor: the `next_cursor` of the previous page" })),
  order: t.Optional(Enum(["asc", "desc"], { default: "asc", description: "By creation time" })),
});
export type PageQuery = typeof PageQuery.static;

export const Page = <T extends TSchema>(item: T) =>
  t.Object({ data: t.Array(item), has_more: t.Boolean(), next_cursor: t.Nullable(t.String()) });

export const ErrorResponse = t.Object(
  {
    error: t.Object({
      code: t.String({ description: "snake_case machine-readable code" }),
      message: t.String({ description: "what went wrong and how to fix it" }),
      details: t.Optional(t.Any()),
      request_id: t.String(),
    }),
  },
  { description: "Error" },
);

/** Response schemas for the error statuses a route can answer; 400 always (unknown query parameters). */
export const errors = (...statuses: number[]) => Object.fromEntries([...new Set([400, ...statuses])].sort().map((s) => [s, ErrorResponse]));

/** What a DELETE answers. */
export const Deleted = t.Object({ id: t.String(), deleted: t.Literal(true) });

/** An id of one type (`agt_…`), as a path parameter: any other shape is a 404 (SPEC §4). */
export const IdOf = (prefix: IdPrefix, description?: string) =>
  t.String({ pattern: `^${prefix}_${ID_BODY_PATTERN}$`, ...(description ? { description } : {}) });
export const IdParam = (prefix: IdPrefix, description?: string) => t.Object({ id: IdOf(prefix, description) });

export const METADATA_MAX_KEYS = 50;
export const METADATA_MAX_KEY_LENGTH = 64;
export const METADATA_MAX_BYTES = 16 * 1024;
/** Free-form, but bounded: at most 50 keys of at most 64 characters, 16 KiB as JSON. */
export const Metadata = t.Record(t.String({ maxLength: METADATA_MAX_KEY_LENGTH }), t.Any(), {
  description: `Free-form key/value pairs: at most ${METADATA_MAX_KEYS} keys of at most ${METADATA_MAX_KEY_LENGTH} characters, ${METADATA_MAX_BYTES / 1024} KiB as JSON`,
  default: {},
  maxProperties: METADATA_MAX_KEYS,
  [MAX_KEY_LENGTH]: METADATA_MAX_KEY_LENGTH,
  [MAX_BYTES]: METADATA_MAX_BYTES,
});
export const Timestamp = t.String({ format: "date-time" });
