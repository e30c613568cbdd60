/**
 * Idempotency-Key on every create, one way (Stripe's semantics, src/platform/idempotency.ts):
 * a route with `idempotent: true` documents the header and resolves `idempotency` — the key and
 * the canonical route (`POST /v1/threads/:id/runs`) — which the route passes to its service.
 */
import { Elysia, t } from "elysia";
import { badRequest } from "../errors";
import type { IdempotencyScope } from "../idempotency";

export const IdempotencyHeader = t.Object({
  "idempotency-key": t.Optional(t.String({ minLength: 1, maxLength: 255, description: "Replays the first result of the same request for 24 h; the same key with another body → 409" })),
});

export const idempotencyKeys = new Elysia({ name: "idempotency-keys" }).macro({
  idempotent: {
    headers: IdempotencyHeader,
    resolve({ request, route }): { idempotency: IdempotencyScope | null } {
      const key = request.headers.get("idempotency-key");
      if (key === null) return { idempotency: null };
      if (key.length === 0 || key.length > 255) throw badRequest("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters.");
      return { idempotency: { key, route: `${request.method} ${route}` } };
    },
  },
});
