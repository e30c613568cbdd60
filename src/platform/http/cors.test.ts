/** CORS headers from the one table of cors.ts: reflected for allowed origins, none for others or without Origin. */
import { describe, expect, test } from "bun:test";
import { createCors, EXPOSED_HEADERS } from "./cors";

describe("cors", () => {
  test("any origin (*): reflected with Vary: Origin and the exposed headers; no Origin, no CORS headers", () => {
    const cors = createCors(["*"]);
    expect(cors.headersFor("https://app.example")).toEqual({ "access-control-allow-origin": "https://app.example", "access-control-expose-headers": EXPOSED_HEADERS, vary: "Origin" });
    expect(cors.headersFor(null)).toBeUndefined();
  });

  test("a list: only its origins", () => {
    const cors = createCors(["https://a.example", "https://b.example"]);
    expect(cors.headersFor("https://b.example")?.["access-control-allow-origin"]).toBe("https://b.example");
    expect(cors.headersFor("https://evil.example")).toBeUndefined();
    expect(cors.headersFor("https://a.example.evil")).toBeUndefined();
  });

  test("preflight: 204 with methods, the requested headers and max-age; refused origins get no allow-origin", () => {
    const cors = createCors(["https://a.example"]);
    const ask = (origin: string) =>
      cors.preflight(new Request("http://x/v1/agents", { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" } }))!;
    const ok = ask("https://a.example");
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://a.example");
    expect(ok.headers.get("access-control-allow-methods")).toContain("POST");
    expect(ok.headers.get("access-control-allow-headers")).toBe("authorization, content-type");
    expect(ok.headers.get("access-control-max-age")).toBe("600");
    const refused = ask("https://evil.example");
    expect(refused.status).toBe(204);
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    // Not a preflight: a plain OPTIONS goes on to the routes.
    expect(cors.preflight(new Request("http://x/v1/agents", { method: "OPTIONS" }))).toBeUndefined();
  });
});
