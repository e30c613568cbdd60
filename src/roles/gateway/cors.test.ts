/** Browsers may call the API: CORS preflight and the headers a client needs to read are exposed. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestProcess, type TestProcess } from "../../../test/support/harness";

describe("CORS at the gateway", () => {
  let t: TestProcess;
  beforeAll(async () => {
    t = await startTestProcess();
  });
  afterAll(() => t?.stop());

  test("a preflight is answered and the request id and rate-limit headers are readable", async () => {
    const preflight = await fetch(`${t.url}/v1/agents`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const user = await t.signup();
    const res = await fetch(`${t.url}/v1/auth/me`, { headers: { origin: "https://app.example.com", authorization: `Bearer ${user.token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-expose-headers")?.toLowerCase()).toContain("x-ratelimit-remaining");
  });
});
