/**
 * The OpenAPI document as a client author meets it, on the compiled binary (embedded default,
 * the fake model playing the model):
 * - `redocly lint` (recommended ruleset) reports no error on the live /swagger/json;
 * - openapi-typescript makes types of it that a small client program (test/support/
 *   openapi-client.ts) type-checks against with `tsc --strict` — `run.id` of a created run
 *   included — and that program, through openapi-fetch, drives signup → agent → thread →
 *   run (streamed by the SSE operation, then waited) → messages → steps → usage;
 * - every reply it gets is documented (operation, status, media type) and its body validates
 *   against the document's schema for that status (ajv, JSON Schema 2020-12);
 * - the document is the same bytes before and after all of that;
 * - and it is ready for openapi-python-client: every response body is a named component.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import openapiTS, { astToString } from "openapi-typescript";
import { REPO, startChild, type ChildProcess } from "./support/binary";
import { startFakeModel, type FakeModel } from "./support/fake-model";

type Json = Record<string, any>;

let child: ChildProcess;
let fake: FakeModel;
let dataDir: string;
let workDir: string;
let firstText: string;
let doc: Json;

beforeAll(async () => {
  fake = await startFakeModel();
  dataDir = mkdtempSync(join(tmpdir(), "agentos-openapi-"));
  workDir = mkdtempSync(join(tmpdir(), "agentos-openapi-client-"));
  child = await startChild(["serve", `--data-dir=${dataDir}`, `--model-base-url=${fake.url}`]);
  // Fetched before any other call: the last test compares it with a fetch after them all.
  firstText = await (await fetch(`${child.url}/swagger/json`)).text();
  doc = JSON.parse(firstText);
}, 120_000);

afterAll(async () => {
  await child?.stop();
  fake?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(workDir, { recursive: true, force: true });
});

const DOC_ID = "https://agentos.invalid/openapi.json";

/** Every reply's body against the document: its operation, status and media type must be documented. */
function createReplyValidator(document: Json) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  const global = (v: unknown) => JSON.parse(JSON.stringify(v).replaceAll('"#/components/', `"${DOC_ID}#/components/`));
  ajv.addSchema({ $id: DOC_ID, components: document.components });
  const operations = Object.entries<Json>(document.paths).flatMap(([path, item]) =>
    Object.entries<Json>(item).map(([method, op]) => ({ method: method.toUpperCase(), pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}$`), path, op })),
  );
  const resolveResponse = (r: Json): Json => (r.$ref ? resolveResponse(document.components.responses[r.$ref.split("/").at(-1)]) : r);
  const problems: string[] = [];
  const seen: string[] = [];
  function check(method: string, url: string, status: number, contentType: string, body: string) {
    const pathname = new URL(url).pathname;
    const found = operations.find((o) => o.method === method && o.pattern.test(pathname));
    const where = `${method} ${pathname} → ${status}`;
    seen.push(`${found?.op.operationId ?? "?"} ${status}`);
    if (!found) return problems.push(`${where}: no such operation in the document`);
    const documented = found.op.responses?.[String(status)] ?? found.op.responses?.default;
    if (!documented) return problems.push(`${where}: status not documented for ${found.op.operationId}`);
    const response = resolveResponse(documented);
    const media = contentType.split(";")[0].trim();
    if (!response.content) return body === "" ? undefined : problems.push(`${where}: a body where the document has none`);
    const entry = response.content[media];
    if (!entry) return problems.push(`${where}: media type ${media} not documented (${Object.keys(response.content).join(", ")})`);
    if (media !== "application/json") return;
    const validate = ajv.compile(global(entry.schema));
    if (!validate(JSON.parse(body))) problems.push(`${where}: ${ajv.errorsText(validate.errors)}`);
  }
  /** Each event's `data:` of a text/event-stream against the media type's contentSchema. */
  function checkEvents(operationId: string, text: string) {
    const op = operations.find((o) => o.op.operationId === operationId)!.op;
    const validate = ajv.compile(global(op.responses["200"].content["text/event-stream"].schema.contentSchema));
    const events = text.split("\n\n").filter((block) => block.includes("data:")).map((block) => {
      const field = (name: string) => block.split("\n").find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1).trim();
      return { type: field("event"), data: JSON.parse(field("data")!) };
    });
    for (const event of events) if (!validate(event.data)) problems.push(`${operationId} event ${event.type}: ${ajv.errorsText(validate.errors)}`);
    return events;
  }
  const fetchChecked = (async (input: Request) => {
    const res = await fetch(input);
    const contentType = res.headers.get("content-type") ?? "";
    // A stream is read by the program itself; its events are checked with checkEvents.
    if (!contentType.startsWith("text/event-stream")) check(input.method, input.url, res.status, contentType, await res.clone().text());
    else check(input.method, input.url, res.status, contentType, "");
    return res;
  }) as typeof fetch;
  return { fetchChecked, checkEvents, problems, seen };
}

describe("the OpenAPI document of the compiled binary", () => {
  test("redocly lint (recommended rules) reports 0 errors", () => {
    const file = join(workDir, "openapi.json");
    writeFileSync(file, firstText);
    const lint = Bun.spawnSync(["node", join(REPO, "node_modules/@redocly/cli/bin/cli.js"), "lint", "--format=json", file], { cwd: workDir, stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: workDir, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" } });
    const out = String(lint.stdout);
    const report = JSON.parse(out.slice(out.indexOf("{")));
    const errors = report.problems.filter((p: Json) => p.severity === "error").map((p: Json) => `${p.ruleId}: ${p.message} at ${p.location?.[0]?.pointer}`);
    expect(errors).toEqual([]);
    expect(report.totals.errors).toBe(0);
  }, 60_000);

  test("its schemas are OpenAPI 3.1: no `nullable`, no string-or-integer unions, only JSON bodies", () => {
    const text = JSON.stringify(doc);
    expect(text).not.toContain('"nullable"');
    expect(text).not.toContain('"format":"integer"');
    expect(text).not.toContain("multipart/form-data");
    expect(text).not.toContain("application/x-www-form-urlencoded");
    expect(doc.servers?.length).toBeGreaterThan(0);
    expect(doc.paths["/v1/ws"].get.responses["101"]).toBeDefined();
    const limit = doc.paths["/v1/agents"].get.parameters.find((p: Json) => p.name === "limit");
    expect(limit.schema).toMatchObject({ type: "integer", minimum: 1, maximum: 100 });
    expect(doc.components.schemas.Run.properties.usage).toBeDefined();
  });

  test("every /v1 operation documents its error statuses with the named error shape", () => {
    for (const [path, item] of Object.entries<Json>(doc.paths)) {
      if (!path.startsWith("/v1/") || path === "/v1/ws") continue;
      for (const [method, op] of Object.entries<Json>(item)) {
        const statuses = Object.keys(op.responses);
        const where = `${method.toUpperCase()} ${path}`;
        expect({ where, has: ["400", "500", "503"].every((s) => statuses.includes(s)) }).toEqual({ where, has: true });
        if (op.security?.length !== 0) expect({ where, statuses: statuses.filter((s) => s === "401" || s === "429") }).toEqual({ where, statuses: ["401", "429"] });
        if (path.includes("{")) expect({ where, has404: statuses.includes("404") }).toEqual({ where, has404: true });
        if (op.requestBody) {
          expect({ where, media: Object.keys(op.requestBody.content) }).toEqual({ where, media: ["application/json"] });
          expect({ where, statuses: statuses.filter((s) => ["413", "415"].includes(s)) }).toEqual({ where, statuses: ["413", "415"] });
        }
        expect({ where, id: /^[a-z][A-Za-z]+$/.test(op.operationId) }).toEqual({ where, id: true });
      }
    }
    expect(doc.components.responses.TooManyRequests.headers["Retry-After"]).toBeDefined();
    expect(doc.components.schemas.Error.properties.error).toBeDefined();
  });

  test("openapi-python-client readiness: every JSON response body is a named component, ids are unique", () => {
    const ids = new Set<string>();
    for (const [path, item] of Object.entries<Json>(doc.paths)) {
      for (const [method, op] of Object.entries<Json>(item)) {
        expect(ids.has(op.operationId)).toBe(false);
        ids.add(op.operationId);
        for (const [status, response] of Object.entries<Json>(op.responses)) {
          const schema = response.content?.["application/json"]?.schema;
          if (schema) expect({ at: `${method} ${path} ${status}`, ref: typeof schema.$ref }).toEqual({ at: `${method} ${path} ${status}`, ref: "string" });
        }
      }
    }
    // The generator's class names come from component names: they must be identifiers.
    for (const name of Object.keys(doc.components.schemas)) expect(name).toMatch(/^[A-Z][A-Za-z0-9]*$/);
    // Its function names are the snake_cased operation ids: still unique.
    const snake = [...ids].map((id) => id.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
    expect(new Set(snake).size).toBe(ids.size);
    // Constructs it rejects: a type array other than [T, "null"], enums mixing value types, a
    // $ref with siblings it would drop.
    const bad: string[] = [];
    const walk = (v: unknown, at: string) => {
      if (Array.isArray(v)) return v.forEach((c, i) => walk(c, `${at}/${i}`));
      if (!v || typeof v !== "object") return;
      const s = v as Json;
      if (Array.isArray(s.type) && !(s.type.length === 2 && s.type.includes("null"))) bad.push(`${at}: type ${JSON.stringify(s.type)}`);
      if (Array.isArray(s.enum) && new Set(s.enum.map((e: unknown) => typeof e)).size > 1) bad.push(`${at}: mixed enum`);
      if (typeof s.$ref === "string" && Object.keys(s).some((k) => k !== "$ref" && k !== "description" && k !== "summary")) bad.push(`${at}: $ref with siblings`);
      for (const [k, c] of Object.entries(s)) if (k !== "example" && k !== "examples" && k !== "enum" && k !== "const" && k !== "default") walk(c, `${at}/${k}`);
    };
    walk(doc, "#");
    expect(bad).toEqual([]);
  });

  test("a client generated from it type-checks with tsc --strict and drives a run; every reply is documented and valid", async () => {
    writeFileSync(join(workDir, "schema.d.ts"), astToString(await openapiTS(doc as never)));
    writeFileSync(join(workDir, "client.ts"), readFileSync(join(REPO, "test/support/openapi-client.ts"), "utf8").replace('"../../sdk/schema"', '"./schema"'));
    symlinkSync(join(REPO, "node_modules"), join(workDir, "node_modules"));
    writeFileSync(join(workDir, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: "ES2022", module: "ESNext", moduleResolution: "Bundler", lib: ["ES2022", "DOM"], skipLibCheck: true, types: [] }, files: ["client.ts"] }));
    const tsc = Bun.spawnSync(["node", join(REPO, "node_modules/typescript/bin/tsc"), "-p", workDir], { cwd: workDir, stdout: "pipe", stderr: "pipe" });
    expect(`${tsc.stdout}${tsc.stderr}`).toBe("");
    expect(tsc.exitCode).toBe(0);

    fake.setDefault({ content: "Hello from the fake model", usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 } });
    const replies = createReplyValidator(doc);
    const { drive } = (await import(join(workDir, "client.ts"))) as typeof import("./support/openapi-client");
    const result = await drive(child.url, replies.fetchChecked);
    const events = replies.checkEvents("streamRunEvents", result.stream);
    expect(events.map((e) => e.type)).toContain("run.completed");
    expect(result.status).toBe("completed");
    expect(result.messages).toContain("Hello from the fake model");
    expect(result.steps).toBeGreaterThan(0);
    expect(result.totalTokens).toBeGreaterThanOrEqual(12);
    expect(replies.problems).toEqual([]);
    // Error replies too went through the same check (they are documented and valid).
    expect(replies.seen).toEqual(expect.arrayContaining(["streamRunEvents 404", "getRun 404", "listAgents 400", "streamRunEvents 204"]));
  }, 120_000);

  test("the document is the same after all those calls, and in a process asked for it only after calls", async () => {
    const again = await (await fetch(`${child.url}/swagger/json`)).text();
    expect(JSON.parse(again)).toEqual(doc);
    expect(again).toBe(firstText);
    const otherDir = mkdtempSync(join(tmpdir(), "agentos-openapi-late-"));
    const other = await startChild(["serve", `--data-dir=${otherDir}`, `--model-base-url=${fake.url}`]);
    try {
      const post = (path: string, body: unknown, token?: string) =>
        fetch(other.url + path, { method: "POST", headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
      const session = (await (await post("/v1/auth/signup", { email: "late@example.com", password: "correct horse battery" })).json()) as { access_token: string };
      await post("/v1/agents", { name: "late", model: "fake-model" }, session.access_token);
      await fetch(`${other.url}/v1/agents?limit=abc`, { headers: { authorization: `Bearer ${session.access_token}` } });
      await fetch(`${other.url}/v1/runs/run_00000000000000000000000000/events`, { headers: { authorization: `Bearer ${session.access_token}` } });
      expect(await (await fetch(`${other.url}/swagger/json`)).text()).toBe(firstText);
    } finally {
      await other.stop();
      rmSync(otherDir, { recursive: true, force: true });
    }
  }, 90_000);
});
