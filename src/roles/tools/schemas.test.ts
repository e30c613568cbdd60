import { describe, expect, test } from "bun:test";
import { AppError } from "../../platform/errors";
import { MAX_FORMAT_INPUT, SCHEMA_LIMITS, toRe2Syntax } from "./schema-engine";
import { checkParameters, validateArguments } from "./schemas";

/** Runs `work` and returns its result with the longest event-loop gap seen meanwhile. */
async function withLoopGap<T>(work: () => Promise<T>): Promise<{ result: T; worstGapMs: number }> {
  let last = performance.now();
  let worstGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worstGapMs = Math.max(worstGapMs, now - last);
    last = now;
  }, 2);
  try {
    const result = await work();
    return { result, worstGapMs: Math.max(worstGapMs, performance.now() - last) };
  } finally {
    clearInterval(timer);
  }
}

async function refusal(schema: Record<string, unknown>): Promise<AppError> {
  try {
    await checkParameters(schema);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error("the schema was accepted");
}

const objectOf = (properties: Record<string, unknown>) => ({ type: "object", properties });

describe("tool parameter schemas", () => {
  test("ReDoS patterns run in linear time: ten ^(a+)+$ properties against 'aaaa…!' answer at once", async () => {
    const properties: Record<string, unknown> = {};
    const args: Record<string, unknown> = {};
    for (let i = 0; i < 10; i++) {
      properties[`p${i}`] = { type: "string", pattern: "^(a+)+$" };
      args[`p${i}`] = `${"a".repeat(30_000)}!`;
    }
    const schema = objectOf(properties);
    await checkParameters(schema);
    const { result, worstGapMs } = await withLoopGap(() => validateArguments("redos:1", schema, args));
    expect(result.valid).toBe(false);
    if (!result.valid) expect(result.message).toContain('must match pattern "^(a+)+$"');
    expect(worstGapMs).toBeLessThan(100);
  });

  test("patterns keep JavaScript's meaning: \\u escapes, patternProperties, defaults filled in", async () => {
    const schema = { type: "object", properties: { code: { type: "string", pattern: "^\\u0041[0-9]{2}$" }, n: { type: "integer", default: 7 } }, patternProperties: { "^x-": { type: "boolean" } } };
    await checkParameters(schema);
    expect(await validateArguments("js:1", schema, { code: "A12", "x-flag": true })).toEqual({ valid: true, args: { code: "A12", "x-flag": true, n: 7 } });
    expect((await validateArguments("js:1", schema, { code: "B12" })).valid).toBe(false);
    expect((await validateArguments("js:1", schema, { "x-flag": "yes" })).valid).toBe(false);
    expect(toRe2Syntax("\\\\u0041\\u{1F600}")).toBe("\\\\u0041\\x{1F600}");
  });

  test("formats whose regexes are slow on long input are not run past MAX_FORMAT_INPUT", async () => {
    const schema = objectOf({ link: { type: "string", format: "uri" } });
    expect((await validateArguments("fmt:1", schema, { link: "https://example.com/a?b=c" })).valid).toBe(true);
    const { result, worstGapMs } = await withLoopGap(() => validateArguments("fmt:1", schema, { link: `http://${"a".repeat(200_000)} ` }));
    expect(result.valid).toBe(false);
    expect(worstGapMs).toBeLessThan(100);
    expect((await validateArguments("fmt:1", schema, { link: `https://example.com/${"a".repeat(MAX_FORMAT_INPUT)}` })).valid).toBe(false);
  });

  test("patterns RE2 cannot run are refused at registration, naming the property", async () => {
    const backref = await refusal(objectOf({ city: { type: "string", pattern: "(a)\\1" } }));
    expect(backref.status).toBe(400);
    expect(backref.code).toBe("invalid_parameters_schema");
    expect(backref.message).toContain("parameters.properties.city.pattern");
    const lookahead = await refusal({ type: "object", patternProperties: { "^(?!x)": { type: "string" } } });
    expect(lookahead.message).toContain("parameters.patternProperties");
    expect(lookahead.message).toContain("(?!x)");
    const nested = await refusal(objectOf({ a: { type: "array", items: { type: "string", pattern: "(?<=a)b" } } }));
    expect(nested.message).toContain("parameters.properties.a.items.pattern");
    const huge = await refusal(objectOf({ a: { type: "string", pattern: "\\pL{1000}\\pN{1000}" } }));
    expect(huge.message).toContain("program size");
    // A `pattern` key inside data (enum) is not a regex.
    await checkParameters(objectOf({ a: { enum: [{ pattern: "(a)\\1" }] } }));
  });

  test("size, depth and property count are bounded, each refusal naming its limit", async () => {
    const big = await refusal(objectOf({ a: { type: "string", description: "d".repeat(SCHEMA_LIMITS.bytes) } }));
    expect(big.message).toContain(`the limit is ${SCHEMA_LIMITS.bytes}`);
    let deep: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < SCHEMA_LIMITS.depth; i++) deep = objectOf({ a: deep });
    expect((await refusal(deep)).message).toContain(`deeper than ${SCHEMA_LIMITS.depth} levels`);
    const many: Record<string, unknown> = {};
    for (let i = 0; i <= SCHEMA_LIMITS.properties; i++) many[`p${i}`] = {};
    expect((await refusal(objectOf(many))).message).toContain(`more than ${SCHEMA_LIMITS.properties} properties`);
    expect((await refusal(objectOf({ a: { type: "wrong" } }))).message).toContain("not a valid JSON Schema");
  });

  test("the largest allowed schema compiles off the event loop", async () => {
    // About SCHEMA_LIMITS.bytes of JSON with close to the maximum number of properties.
    const properties: Record<string, unknown> = {};
    for (let i = 0; i < SCHEMA_LIMITS.properties / 2 - 10; i++) {
      properties[`p${i}`] = { type: "object", properties: { v: { type: "string", maxLength: 10, pattern: "^[a-z]+$", format: "email" } }, required: ["v"] };
    }
    const schema = objectOf(properties);
    expect(Buffer.byteLength(JSON.stringify(schema))).toBeLessThanOrEqual(SCHEMA_LIMITS.bytes);
    expect(Buffer.byteLength(JSON.stringify(schema))).toBeGreaterThan(SCHEMA_LIMITS.bytes * 0.8);
    const { worstGapMs } = await withLoopGap(() => checkParameters(schema));
    expect(worstGapMs).toBeLessThan(100);
    const { result, worstGapMs: validateGap } = await withLoopGap(() => validateArguments("largest:1", schema, { p0: { v: "x" } }));
    expect(result.valid).toBe(false);
    expect(validateGap).toBeLessThan(100);
  });

  test("2020-12 schemas (by $schema) validate with 2020-12 keywords; draft-07 stays the default", async () => {
    const tuple = { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: { point: { type: "array", prefixItems: [{ type: "number" }, { type: "number" }], items: false }, unit: { $ref: "#/$defs/unit" } }, $defs: { unit: { enum: ["m", "km"] } }, dependentRequired: { point: ["unit"] } };
    await checkParameters(tuple);
    expect(await validateArguments("t2020:1", tuple, { point: [1, 2], unit: "m" })).toEqual({ valid: true, args: { point: [1, 2], unit: "m" } });
    const extra = await validateArguments("t2020:1", tuple, { point: [1, 2, 3], unit: "m" });
    expect(extra.valid).toBe(false);
    expect((await validateArguments("t2020:1", tuple, { point: [1, 2] })).valid).toBe(false); // dependentRequired
    expect((await validateArguments("t2020:1", tuple, { point: [1, 2], unit: "mi" })).valid).toBe(false); // $defs
    // The same keywords under draft-07 are not draft-07's: prefixItems is ignored there.
    const draft07 = { ...tuple, $schema: "http://json-schema.org/draft-07/schema#" };
    await checkParameters(draft07);
    expect((await validateArguments("t07:1", { type: "object", properties: { point: { type: "array", prefixItems: [{ type: "number" }] } } }, { point: ["x"] })).valid).toBe(true);
    // 2020-12's meta-schema applies: a draft-07-only form is refused there.
    expect((await refusal({ $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: { a: { type: "wrong" } } })).message).toContain("not a valid JSON Schema");
    expect((await refusal({ $schema: "https://json-schema.org/draft/2019-09/schema", type: "object" })).message).toContain("$schema");
  });
});
