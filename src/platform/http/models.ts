/** Route models shared by every controller: pagination, ids, the error shape. */
import { t, type TSchema } from "elysia";

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

/** Response schemas for the error statuses a route can answer. */
export const errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, ErrorResponse]));

export const IdParam = t.Object({ id: t.String({ maxLength: 64 }) });
export const Metadata = t.Record(t.String({ maxLength: 64 }), t.Any(), { description: "Free-form key/value pairs", default: {} });
export const Timestamp = t.String({ format: "date-time" });
