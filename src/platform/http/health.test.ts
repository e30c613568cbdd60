/**
 * The health routes of a process without the gateway answer exactly like httpPlatform's
 * /healthz, /readyz and /metrics (status, content type, body; request ids aside), and the
 * start-up path imports neither Elysia nor a role's code (they are chunks loaded on import()).
 */
import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { requestContext } from "../context";
import { silentLogger } from "../logging";
import { createMetrics } from "../metrics";
import { httpPlatform } from "./app";
import { healthRoutes } from "./health";

const readiness = (ready: boolean) => async () => ({ ready, checks: { database: ready ? "ok" : "connection refused", bus: "ok" } });

function both(ready: boolean) {
  const elysia = new Elysia().use(httpPlatform({ log: silentLogger, metrics: createMetrics(), maxBodyBytes: 1024, readiness: readiness(ready) }));
  const health = healthRoutes({ log: silentLogger, metrics: createMetrics(), readiness: readiness(ready) });
  return { elysia: (r: Request) => elysia.handle(r), health };
}

/** Status, content type and body with the request id blanked (each answer has its own). */
async function shape(response: Response) {
  const body = (await response.text()).replace(/req_[0-9A-Za-z]+/g, "req_*");
  return { status: response.status, type: response.headers.get("content-type"), requestId: /^req_|^probe-1$/.test(response.headers.get("x-request-id") ?? ""), body };
}

describe("health routes without Elysia", () => {
  for (const [path, method] of [["/healthz", "GET"], ["/readyz", "GET"], ["/nope", "GET"], ["/healthz", "DELETE"], ["/healthz%00", "GET"]] as const) {
    for (const ready of [true, false]) {
      test(`${method} ${path} (${ready ? "ready" : "not ready"}) answers as httpPlatform does`, async () => {
        const { elysia, health } = both(ready);
        const request = () => new Request(`http://local${path}`, { method });
        expect(await shape(await health(request()))).toEqual(await shape(await elysia(request())));
      });
    }
  }

  test("/metrics: the same content type, request counts by route and status, the id of the request context", async () => {
    const { elysia, health } = both(true);
    for (const handle of [elysia, health]) {
      await handle(new Request("http://local/healthz"));
      await handle(new Request("http://local/nope"));
    }
    const [a, b] = [await elysia(new Request("http://local/metrics")), await requestContext.run({ requestId: "probe-1" }, () => health(new Request("http://local/metrics")))];
    expect(b.headers.get("content-type")).toBe(a.headers.get("content-type")!);
    expect(b.headers.get("x-request-id")).toBe("probe-1");
    const text = await b.text();
    expect(text).toMatch(/agentos_http_requests_total\{[^}]*route="\/healthz"[^}]*\} 1/);
    expect(text).toMatch(/agentos_http_requests_total\{[^}]*route="unmatched"[^}]*status="404"[^}]*\} 1/);
  });

  test("start-up imports stay lazy: no value import of Elysia or of a role's code before a role needs it", async () => {
    const root = `${import.meta.dir}/../..`;
    for (const file of ["main.ts", "server.ts", "roles/modules.ts", "platform/http/health.ts", "platform/http/server.ts"]) {
      const source = await Bun.file(`${root}/${file}`).text();
      const valueImports = [...source.matchAll(/^import (?!type )[^;]* from "([^"]+)";$/gm)].map((m) => m[1]!);
      expect([file, valueImports.filter((i) => i === "elysia" || i.startsWith("@elysiajs/") || i.endsWith("/http/app") || /\/role$/.test(i) || i.endsWith("/platform/db"))]).toEqual([file, []]);
    }
  });
});
