/**
 * A real browser on /swagger of the compiled binary: Debian's headless Chromium driven by
 * playwright-core (which never downloads a browser here), every request that would leave
 * loopback aborted and recorded. It must list the operations, and "Try it out" → "Execute" on
 * GET /healthz must show a 200 with "ok" — the page works offline, from the binary alone.
 *
 * Without /usr/bin/chromium the suite skips with a message, except under CI=true where a
 * missing browser is a failure (.ci/run installs the `chromium` package).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { ensureBinary, startChild, type ChildProcess } from "./support/binary";
import { chromiumAvailable, isLoopback, launchChromium } from "./support/browser";

const haveChromium = chromiumAvailable("swagger-browser");

describe.skipIf(!haveChromium)("Swagger UI in headless Chromium (compiled binary)", () => {
  let child: ChildProcess;
  let browser: Browser;
  let dataDir: string;
  const external: string[] = [];
  const requested: string[] = [];

  beforeAll(async () => {
    ensureBinary();
    dataDir = mkdtempSync(join(tmpdir(), "agentos-swagger-"));
    child = await startChild([`--data-dir=${dataDir}`]);
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await child?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("lists the operations and runs Try it out on GET /healthz", async () => {
    const context = await browser.newContext({ serviceWorkers: "block" });
    await context.route("**/*", (route) => {
      const url = route.request().url();
      requested.push(url);
      if (isLoopback(url)) return route.continue();
      external.push(url);
      return route.abort("blockedbyclient");
    });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(err.message));

    const res = await page.goto(`${child.url}/swagger`, { waitUntil: "domcontentloaded" });
    expect(res?.status()).toBe(200);

    // The operations are rendered from /swagger/json.
    await page.locator(".opblock").first().waitFor({ state: "visible", timeout: 30_000 });
    const paths = await page.locator(".opblock .opblock-summary-path").allInnerTexts();
    const normalized = paths.map((p) => p.replace(/\u200b/g, "").trim());
    for (const expected of ["/healthz", "/readyz", "/v1/auth/signup", "/v1/auth/login", "/v1/auth/me", "/v1/api-keys"]) {
      expect(normalized).toContain(expected);
    }
    expect(normalized.length).toBeGreaterThan(10);

    // Expand GET /healthz → Try it out → Execute → a live 200 response with {"status":"ok"}.
    const healthz = page.locator(".opblock.opblock-get").filter({ has: page.locator(".opblock-summary-path", { hasText: /^\/healthz$/ }) });
    expect(await healthz.count()).toBe(1);
    await healthz.locator(".opblock-summary").click();
    await healthz.locator("button.try-out__btn").click();
    const executed = page.waitForResponse((r) => new URL(r.url()).pathname === "/healthz", { timeout: 15_000 });
    await healthz.locator("button.execute").click();
    // The browser really sent it and got {"status":"ok"} …
    const reply = await executed;
    expect(reply.status()).toBe(200);
    expect(await reply.text()).toContain('"ok"');
    // … and Swagger UI shows it. (It renders a live response only for operations whose
    // responses are documented: /healthz must declare its 200 in the route schema.)
    const live = healthz.locator(".live-responses-table .response");
    await live.first().waitFor({ state: "visible", timeout: 5_000 }).catch(() => {});
    const shot = join(tmpdir(), `agentos-swagger-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: false });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    console.log(`swagger-browser: ${normalized.length} operations listed, ${requested.length} requests (all loopback), screenshot ${shot}`);
    if ((await live.count()) === 0) {
      throw new Error("Swagger UI sent GET /healthz and got 200 {\"status\":\"ok\"} but shows no response: the OpenAPI document has no `responses` for GET /healthz (declare `response: { 200: … }` on the route in src/platform/http/app.ts)");
    }
    expect((await live.locator(".response-col_status").first().innerText()).trim()).toBe("200");
    const body = await live.locator(".response-col_description .microlight").first().innerText();
    expect(body).toContain('"ok"');

    expect(pageErrors).toEqual([]);
    expect(external).toEqual([]);
    expect(requested.some((u) => u.includes("/swagger/json"))).toBe(true);
    await context.close();
  }, 120_000);
});
