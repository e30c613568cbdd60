/**
 * The web console end to end in a real browser: Debian's headless Chromium driven by
 * playwright-core against the COMPILED BINARY on the embedded default, with the fake model and
 * a loopback HTTP server standing in for a tool and a webhook receiver. Every request that
 * would leave loopback is aborted and recorded (the console must work offline).
 *
 * The journey: sign up → create an approval-required HTTP tool and a webhook → create an agent
 * with the tool → chat: a streamed answer appears delta by delta → a second message makes the
 * model call the tool → approve it on the page (from the keyboard) → the final answer; a third
 * call rejected with a reason → the run inspector shows the timeline → usage shows the charts;
 * then the webhook's deliveries, API keys, members; a fourth call left waiting when the tab
 * closes is approved from the thread's history on a phone-sized viewport (log in, keyboard
 * focus, menu).
 *
 * Screenshots of each page go to a temp dir; `CONSOLE_SCREENSHOTS=docs/console bun test
 * test/console-browser.test.ts` regenerates the committed ones in docs/console/.
 *
 * Without /usr/bin/chromium the suite skips with a message, except under CI=true where a
 * missing browser is a failure.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { REPO, ensureBinary, startChild, type ChildProcess } from "./support/binary";
import { chromiumAvailable, isLoopback, launchChromium } from "./support/browser";
import { startFakeModel, type FakeModel } from "./support/fake-model";

const EMAIL = "ada@example.com";
const PASSWORD = "correct horse battery";
const FIRST_ANSWER = "Hello Ada! I am your console test agent, streaming this answer in small pieces.";
const FINAL_ANSWER = "Done: 100 units transferred after your approval.";
const REJECTED_ANSWER = "Understood, I did not transfer the million.";
const FOURTH_ANSWER = "Sent 5 more units.";

const haveChromium = chromiumAvailable("console-browser");

describe.skipIf(!haveChromium)("web console in headless Chromium (compiled binary)", () => {
  let child: ChildProcess;
  let browser: Browser;
  let fake: FakeModel;
  let target: ReturnType<typeof Bun.serve>;
  let dataDir: string;
  const shots = process.env.CONSOLE_SCREENSHOTS ? resolve(REPO, process.env.CONSOLE_SCREENSHOTS) : mkdtempSync(join(tmpdir(), "agentos-console-shots-"));
  const toolCalls: unknown[] = [];
  const webhookEvents: string[] = [];
  const external: string[] = [];
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    ensureBinary();
    mkdirSync(shots, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), "agentos-console-"));
    fake = await startFakeModel();
    // One loopback server: POST /tool is the approval-required HTTP tool, POST /hook the webhook receiver.
    target = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const path = new URL(req.url).pathname;
        const body = await req.json().catch(() => null);
        if (path === "/tool") {
          toolCalls.push(body);
          return Response.json({ transferred: 100, currency: "units" });
        }
        if (path === "/hook") webhookEvents.push(String((body as { type?: string } | null)?.type ?? "?"));
        return new Response(null, { status: 204 });
      },
    });
    child = await startChild([`--data-dir=${dataDir}`], {
      env: { MODEL_BASE_URL: fake.url, AGENTOS_ALLOW_PRIVATE_TARGETS: "true", AGENTOS_WEBHOOK_POLL_MS: "100", AGENTOS_WEBHOOK_RETRY_BASE_MS: "200" },
    });
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await child?.stop();
    fake?.stop();
    target?.stop(true);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (!process.env.CONSOLE_SCREENSHOTS) rmSync(shots, { recursive: true, force: true });
  });

  async function newContext(viewport: { width: number; height: number }): Promise<BrowserContext> {
    const context = await browser.newContext({ serviceWorkers: "block", viewport, deviceScaleFactor: 1 });
    context.setDefaultTimeout(15_000);
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (isLoopback(url)) return route.continue();
      external.push(url);
      return route.abort("blockedbyclient");
    });
    return context;
  }

  function watch(page: Page) {
    page.on("pageerror", (err) => pageErrors.push(err.message));
    page.on("console", (msg) => {
      if (msg.type() === "error") consoleErrors.push(msg.text());
    });
  }

  async function shot(page: Page, name: string) {
    const path = join(shots, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    expect(statSync(path).size).toBeGreaterThan(5_000);
  }

  async function go(page: Page, link: string, heading: string | RegExp) {
    await page.getByRole("navigation", { name: "Console" }).getByRole("link", { name: link, exact: true }).click();
    await page.getByRole("heading", { level: 1, name: heading }).waitFor();
  }

  test("sign up → tool → agent → streamed chat → approve a tool call → run timeline → usage", async () => {
    const context = await newContext({ width: 1280, height: 860 });
    const page = await context.newPage();
    watch(page);

    // The HTML shell: same-origin only, never cached; hashed assets cached forever.
    const res = await page.goto(`${child.url}/console`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()["content-security-policy"]).toContain("default-src 'self'");
    expect(res?.headers()["cache-control"]).toBe("no-cache");
    const script = await page.locator("script[type=module]").getAttribute("src");
    expect(script).toMatch(/^\/console\/assets\/main-[a-z0-9]+\.js$/);
    const asset = await fetch(child.url + script);
    expect(asset.headers.get("cache-control")).toContain("immutable");
    const doc = (await (await fetch(`${child.url}/swagger/json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith("/console"))).toEqual([]);

    // Sign up.
    await page.getByRole("heading", { name: "Log in to AgentOS" }).waitFor();
    await page.getByRole("link", { name: "Create an account" }).click();
    await page.getByLabel("Name").fill("Ada");
    await page.getByLabel("Email").fill(EMAIL);
    await page.getByLabel("Password").fill(PASSWORD);
    await shot(page, "signup");
    await page.getByRole("button", { name: "Sign up" }).click();
    await page.getByRole("heading", { level: 1, name: "Agents" }).waitFor();
    // Tokens live in memory only.
    expect(await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }))).not.toContain("eyJ");

    // The free plan allows 60 requests a minute, fewer than this journey makes: move to pro.
    await go(page, "Usage", "Usage and cost");
    await page.getByRole("form", { name: "Plan" }).getByLabel("Plan").selectOption("pro");
    await page.getByRole("button", { name: "Change plan" }).click();
    await page.locator("dl.facts").filter({ hasText: "/ 5,000" }).waitFor();

    // A tool that needs approval, on the loopback server.
    await go(page, "Tools", "Tools");
    const toolForm = page.getByRole("form", { name: "New HTTP tool" });
    await toolForm.getByLabel("Name").fill("transfer");
    await toolForm.getByLabel("Description").fill("Move money between accounts");
    await toolForm.getByLabel("URL").fill(`http://127.0.0.1:${target.port}/tool`);
    await toolForm.getByLabel("Requires approval before each call").check();
    await toolForm.getByRole("button", { name: "Create tool" }).click();
    await page.getByRole("cell", { name: "transfer", exact: true }).waitFor();
    await shot(page, "tools");

    // A webhook for finished runs, on the same loopback server.
    await go(page, "Webhooks", "Webhooks");
    const hookForm = page.getByRole("form", { name: "New webhook" });
    await hookForm.getByLabel("URL").fill(`http://127.0.0.1:${target.port}/hook`);
    await hookForm.getByLabel("Event types").fill("run.completed");
    await hookForm.getByRole("button", { name: "Create webhook" }).click();
    await page.getByText("Signing secret").waitFor();

    // The agent, with the tool and a memory block.
    await go(page, "Agents", "Agents");
    const agentForm = page.getByRole("form", { name: "New agent" });
    await agentForm.getByLabel("Name").fill("Console agent");
    await agentForm.getByLabel("Model").fill("fake-model");
    await agentForm.getByLabel("Memory block “human”").fill("Name: Ada");
    await agentForm.getByLabel(/^transfer/).check();
    await shot(page, "agents");
    await agentForm.getByRole("button", { name: "Create agent" }).click();
    await page.getByRole("heading", { level: 1, name: "Agent: Console agent" }).waitFor();
    expect(await page.getByLabel(/^human \(limit/).inputValue()).toBe("Name: Ada");
    expect(await page.getByLabel(/^transfer/).isChecked()).toBe(true);
    // Edit the instructions and save.
    await page.getByRole("form", { name: "Agent settings" }).getByLabel("Instructions").fill("You are a careful treasurer.");
    await page.getByRole("button", { name: "Save agent" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    // An archival memory, found by search.
    await page.getByRole("form", { name: "New memory" }).getByLabel("New memory").fill("Ada prefers transfers in the morning");
    await page.getByRole("button", { name: "Add memory" }).click();
    await page.getByRole("cell", { name: "Ada prefers transfers in the morning" }).waitFor();
    await page.getByRole("searchbox", { name: "Search memories" }).fill("morning");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.getByRole("columnheader", { name: "Score" }).waitFor();
    await shot(page, "agent");

    // Chat: a streamed answer.
    await page.getByRole("link", { name: "Chat with this agent" }).click();
    await page.getByRole("heading", { level: 1, name: "Chat" }).waitFor();
    await page.getByLabel("Agent").locator("option", { hasText: "Console agent" }).waitFor({ state: "attached" });
    expect(await page.getByLabel("Agent").inputValue()).not.toBe("");
    await page.getByRole("button", { name: "New thread" }).click();
    await page.waitForURL(/#\/chat\/.+/);
    fake.script({ content: FIRST_ANSWER, chunkSize: 4, chunkDelayMs: 60 });
    // Record every text the assistant bubble shows while it streams.
    await page.evaluate(() => {
      const w = globalThis as any; // the page's window (the test's tsconfig has no DOM types)
      const seen: string[] = (w.__streamed = []);
      new w.MutationObserver(() => {
        const bubbles = w.document.querySelectorAll(".msg.assistant .assistant-text");
        const text = bubbles[bubbles.length - 1]?.textContent ?? "";
        if (text && seen[seen.length - 1] !== text) seen.push(text);
      }).observe(w.document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.getByRole("textbox", { name: "Message" }).fill("Hi, who are you?");
    await page.getByRole("textbox", { name: "Message" }).press("Enter");
    await page.locator(".msg.assistant .assistant-text").filter({ hasText: FIRST_ANSWER }).waitFor({ timeout: 20_000 });
    const streamed: string[] = await page.evaluate(() => (globalThis as any).__streamed);
    expect(streamed.at(-1)).toBe(FIRST_ANSWER);
    // Several partial texts, each a prefix of the next: the answer arrived in deltas.
    expect(streamed.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < streamed.length; i++) expect(streamed[i].startsWith(streamed[i - 1])).toBe(true);
    await page.getByText("Run completed.").waitFor();

    // A second message: the model calls the tool, which waits for approval on the page.
    fake.script({ tool_calls: [{ name: "transfer", arguments: { q: "100" }, id: "call_transfer_1" }] }, { content: FINAL_ANSWER });
    await page.getByRole("textbox", { name: "Message" }).fill("Please transfer 100 units.");
    await page.getByRole("button", { name: "Send" }).click();
    const approve = page.getByRole("button", { name: "Approve" });
    await approve.waitFor({ timeout: 20_000 });
    await page.getByRole("article", { name: "Tool call transfer" }).filter({ hasText: "waiting for approval" }).waitFor();
    expect(toolCalls).toHaveLength(0);
    await shot(page, "chat-approval");
    // Approved from the keyboard: the button takes focus and Enter presses it.
    await approve.focus();
    await page.keyboard.press("Enter");
    await page.locator(".msg.assistant .assistant-text").filter({ hasText: FINAL_ANSWER }).waitFor({ timeout: 20_000 });
    expect(toolCalls).toHaveLength(1);
    await page.getByRole("article", { name: "Tool call transfer" }).filter({ hasText: "done" }).waitFor();
    await page.getByRole("article", { name: "Tool call transfer" }).getByText("Result").click();
    await page.getByRole("article", { name: "Tool call transfer" }).filter({ hasText: '"transferred": 100' }).waitFor();
    // The model saw the tool's result.
    expect(JSON.stringify(fake.requests.at(-1)!.body.messages.at(-1))).toContain("transferred");

    // A third message: this time the call is rejected, with a reason the model gets instead of a result.
    fake.script({ tool_calls: [{ name: "transfer", arguments: { q: "1000000" }, id: "call_transfer_2" }] }, { content: REJECTED_ANSWER });
    await page.getByRole("textbox", { name: "Message" }).fill("Now transfer a million.");
    await page.getByRole("button", { name: "Send" }).click();
    await page.getByLabel("Reason for rejecting").fill("far too much");
    await page.getByRole("button", { name: "Reject" }).click();
    await page.locator(".msg.assistant .assistant-text").filter({ hasText: REJECTED_ANSWER }).waitFor({ timeout: 20_000 });
    expect(toolCalls).toHaveLength(1);
    expect(JSON.stringify(fake.requests.at(-1)!.body.messages.at(-1))).toContain("far too much");
    await page.locator("article.tool-call.rejected").filter({ hasText: "rejected" }).waitFor();
    await shot(page, "chat");

    // The run inspector: the timeline of the approved run.
    await page.locator(".msg.assistant", { hasText: FINAL_ANSWER }).locator(".run-link").click();
    await page.getByRole("heading", { level: 1, name: /^Run run_/ }).waitFor();
    const timeline = page.locator("figure.timeline");
    await timeline.waitFor();
    expect(await timeline.locator("rect.lane-model_call").count()).toBe(2);
    expect(await timeline.locator("rect.lane-tool_call").count()).toBe(1);
    expect(await timeline.locator("rect.lane-wait").count()).toBe(1);
    await page.locator("dl.facts").filter({ hasText: "completed" }).waitFor();
    await page.getByRole("table", { name: "Steps of the run" }).filter({ hasText: "transfer" }).waitFor();
    await shot(page, "run");

    // Usage: per day and per agent.
    await go(page, "Usage", "Usage and cost");
    const perDay = page.locator("figure", { hasText: "Tokens per day" });
    await perDay.locator("rect.chart-bar").first().waitFor();
    expect(await perDay.locator("rect.chart-bar").count()).toBeGreaterThanOrEqual(1); // 2 if the test spans midnight UTC
    const perAgent = page.locator("figure", { hasText: "Tokens per agent" });
    expect(await perAgent.locator("svg").getAttribute("aria-label")).toMatch(/Console agent \d+ tokens/);
    // Cost per day and per agent, from the model calls' tokens at the model's prices.
    for (const title of ["Cost per day", "Cost per agent"]) {
      const chart = page.locator("figure", { hasText: title });
      await chart.locator("rect.chart-bar").first().waitFor();
      expect(await chart.locator("svg").getAttribute("aria-label")).toMatch(/ (0\.\d*[1-9]\d*|[1-9][\d.]*) ¢/); // a cost above zero
    }
    await page.getByRole("table", { name: "Usage per agent" }).filter({ hasText: "Console agent" }).waitFor();
    await shot(page, "usage");

    // The webhook's deliveries (all three runs completed).
    await go(page, "Webhooks", "Webhooks");
    await page.getByRole("button", { name: "Show deliveries" }).click();
    const deliveries = page.getByRole("table", { name: "Deliveries" });
    for (let i = 0; i < 50 && (await deliveries.locator(".status-succeeded").count()) < 3; i++) {
      await Bun.sleep(200);
      await page.getByRole("button", { name: "Refresh deliveries" }).click();
    }
    expect(await deliveries.locator(".status-succeeded").count()).toBe(3);
    expect(webhookEvents).toEqual(["run.completed", "run.completed", "run.completed"]);
    await shot(page, "webhooks");

    // API keys: created once, listed by prefix.
    await go(page, "API keys", "API keys");
    await page.getByLabel("Key name").fill("ci");
    await page.getByRole("button", { name: "Create key" }).click();
    await page.getByRole("status").filter({ hasText: "aos_" }).waitFor();
    await page.getByRole("cell", { name: "ci", exact: true }).waitFor();
    await shot(page, "api-keys");

    await go(page, "Members", "Members");
    await page.getByRole("cell", { name: EMAIL }).waitFor();
    await shot(page, "members");

    // A fourth call left waiting for approval when the tab goes away (tokens and stream with it).
    await go(page, "Chat", "Chat");
    await page.getByRole("link", { name: /^thr_/ }).first().click();
    fake.script({ tool_calls: [{ name: "transfer", arguments: { q: "5" }, id: "call_transfer_3" }] }, { content: FOURTH_ANSWER });
    await page.getByRole("textbox", { name: "Message" }).fill("And 5 more, please.");
    await page.getByRole("button", { name: "Send" }).click();
    await page.getByRole("button", { name: "Approve" }).waitFor({ timeout: 20_000 });
    await context.close();

    // A phone: log in, open the menu, see the chat.
    const phone = await newContext({ width: 390, height: 844 });
    const small = await phone.newPage();
    watch(small);
    await small.goto(`${child.url}/console#/chat`);
    await small.getByLabel("Email").fill(EMAIL);
    await small.getByLabel("Password").fill(PASSWORD);
    await small.getByRole("button", { name: "Log in" }).click();
    await small.getByRole("heading", { level: 1, name: "Agents" }).waitFor();
    // Keyboard: navigation moves focus to the page's heading, so the next Tab stop is the page's first control.
    const focused = () => small.evaluate(() => { const e = (globalThis as any).document.activeElement; return `${e?.tagName} ${e?.textContent}`; });
    await small.getByRole("link", { name: "Console agent" }).waitFor();
    expect(await focused()).toBe("H1 Agents");
    await small.keyboard.press("Tab");
    expect(await focused()).toBe("A Console agent");
    const nav = small.getByRole("navigation", { name: "Console" });
    expect(await nav.isVisible()).toBe(false);
    await small.getByRole("button", { name: "Menu" }).click();
    await nav.getByRole("link", { name: "Chat", exact: true }).click();
    await small.getByRole("heading", { level: 1, name: "Chat" }).waitFor();
    await small.getByRole("link", { name: /^thr_/ }).first().click();
    await small.locator(".msg.assistant .assistant-text").filter({ hasText: FINAL_ANSWER }).waitFor();
    await small.locator(".msg.assistant .assistant-text").filter({ hasText: FIRST_ANSWER }).waitFor();
    // The pending call, rebuilt from the run's steps, is approved from the thread's history.
    const pending = small.getByRole("article", { name: "Tool call transfer" }).filter({ hasText: "waiting for approval" });
    await pending.waitFor();
    await shot(small, "phone-approval");
    await pending.getByRole("button", { name: "Approve" }).click();
    await small.locator(".msg.assistant .assistant-text").filter({ hasText: FOURTH_ANSWER }).waitFor({ timeout: 20_000 });
    expect(toolCalls).toHaveLength(2);
    // From history: the approved tool call sits before the answer it led to.
    await small.getByRole("article", { name: "Tool call transfer" }).filter({ hasText: "done" }).first().waitFor();
    await small.getByRole("article", { name: "Tool call transfer" }).filter({ hasText: "rejected" }).waitFor();
    const order = await small.locator(".transcript > li").evaluateAll((els) => els.map((e) => e.className.replace("msg ", "")));
    expect(order).toEqual(["user", "assistant", "user", "tool", "assistant", "user", "tool", "assistant", "user", "tool", "assistant"]);
    // Nothing wider than the screen.
    expect(await small.evaluate(() => (globalThis as any).document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(small, "phone-chat");
    await phone.close();

    expect(pageErrors).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(external).toEqual([]);
    console.log(`console-browser: screenshots in ${shots}`);
  }, 90_000);
});
