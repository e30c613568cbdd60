/**
 * The document pass on a route added the ordinary way (no OpenAPI-specific code in the route):
 * it gets its model named and referenced, the implied error responses, JSON-only bodies,
 * 3.1 schemas and a method-like operation id; the document is served as the same bytes.
 */
import { describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import { errors, Page, PageQuery } from "./models";
import { normalizeSchema, openApiDocument, operationIdFor } from "./openapi";

const Widget = t.Object({ id: t.String(), size: t.Integer(), note: t.Nullable(t.String()), parent: t.Nullable(t.Object({ id: t.String() })) });
const WidgetPage = Page(Widget);

function app() {
  const api = new Elysia({ prefix: "/v1" })
    .post("/widgets", () => ({ id: "w", size: 1, note: null, parent: null }), { body: t.Object({ size: t.Integer() }), response: { 201: Widget, ...errors(409) }, detail: { tags: ["widgets"] } })
    .get("/widgets", () => ({ data: [], has_more: false, next_cursor: null }), { query: PageQuery, response: { 200: WidgetPage, ...errors() } })
    .get("/widgets/:id", () => ({ id: "w", size: 1, note: null, parent: null }), { params: t.Object({ id: t.String() }), response: { 200: Widget, ...errors(404) } })
    .post("/widgets/:id/polish", () => ({ id: "w", size: 1, note: null, parent: null }), { params: t.Object({ id: t.String() }), response: { 200: Widget }, detail: { security: [] } });
  return new Elysia()
    .use(openApiDocument("/doc", { components: { Widget, WidgetPage }, documentation: { info: { title: "t", version: "1" }, security: [{ bearer: [] }] } }))
    .use(api);
}

describe("the OpenAPI document pass", () => {
  test("a new route gets named components, error responses, JSON bodies and an operation id", async () => {
    const served = app();
    const text = await (await served.handle(new Request("http://localhost/doc"))).text();
    const doc = JSON.parse(text);
    const create = doc.paths["/v1/widgets"].post;
    expect(create.operationId).toBe("createWidget");
    expect(doc.paths["/v1/widgets"].get.operationId).toBe("listWidgets");
    expect(doc.paths["/v1/widgets/{id}"].get.operationId).toBe("getWidget");
    expect(doc.paths["/v1/widgets/{id}/polish"].post.operationId).toBe("polishWidget");
    expect(create.responses["201"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/Widget" });
    expect(Object.keys(create.requestBody.content)).toEqual(["application/json"]);
    expect(Object.keys(create.responses)).toEqual(["201", "400", "401", "408", "409", "413", "415", "429", "500", "503"]);
    expect(create.responses["429"]).toEqual({ $ref: "#/components/responses/TooManyRequests" });
    // A public route (security: []) answers no 401/429; a path parameter brings 404.
    expect(Object.keys(doc.paths["/v1/widgets/{id}/polish"].post.responses)).not.toContain("401");
    expect(Object.keys(doc.paths["/v1/widgets/{id}/polish"].post.responses)).toContain("404");
    expect(doc.components.schemas.WidgetPage.properties.data.items).toEqual({ $ref: "#/components/schemas/Widget" });
    const widget = doc.components.schemas.Widget;
    expect(widget.properties.size).toEqual({ type: "integer" });
    expect(widget.properties.note).toEqual({ type: ["string", "null"] });
    expect(widget.properties.parent.anyOf[1]).toEqual({ type: "null" });
    const limit = doc.paths["/v1/widgets"].get.parameters.find((p: { name: string }) => p.name === "limit");
    expect(limit.schema).toMatchObject({ type: "integer", minimum: 1, maximum: 100, default: 20 });
    expect(text).not.toContain('"nullable"');
    expect(await (await served.handle(new Request("http://localhost/doc"))).text()).toBe(text);
  });

  test("operation ids: verbs from method and shape of the path", () => {
    expect(operationIdFor("get", "/v1/threads/{id}/messages")).toBe("listThreadMessages");
    expect(operationIdFor("post", "/v1/threads/{id}/messages")).toBe("createThreadMessage");
    expect(operationIdFor("delete", "/v1/api-keys/{id}")).toBe("deleteApiKey");
    expect(operationIdFor("patch", "/v1/agents/{id}")).toBe("updateAgent");
    expect(operationIdFor("post", "/v1/runs/{id}/cancel")).toBe("cancelRun");
    expect(operationIdFor("get", "/v1/billing/usage")).toBe("getBillingUsage");
  });

  test("Elysia's coercing integers and OpenAPI 3.0 nullable become 3.1 schemas", () => {
    expect(normalizeSchema({ description: "n", anyOf: [{ type: "string", format: "integer", default: 0 }, { type: "integer", minimum: 1 }] })).toEqual({ description: "n", type: "integer", minimum: 1 });
    expect(normalizeSchema({ nullable: true, type: ["string", "null"] })).toEqual({ type: ["string", "null"] });
    expect(normalizeSchema({ nullable: true, type: "integer" })).toEqual({ type: ["integer", "null"] });
    expect(normalizeSchema({ anyOf: [{ anyOf: [{ type: "string", format: "integer" }, { type: "integer" }] }, { type: "null" }] })).toEqual({ type: ["integer", "null"] });
  });
});
