/**
 * Hostile input: strings (SQL/JSON/template injection, NUL, lone surrogates, RTL, huge),
 * numbers JSON.stringify cannot even write (1e400, 2^63, -0), malformed JSON bodies, body
 * mutations of a valid value, path segments and headers. Raw numbers travel as `Raw` markers
 * and are written verbatim by `toJsonText`.
 */
import fc from "fast-check";
import type { JsonSchema } from "./schema-arbitrary";

/** A JSON fragment written verbatim (numbers JSON.stringify would turn into null). */
export class Raw {
  constructor(readonly text: string) {}
}

export function toJsonText(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map(toJsonText).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${toJsonText(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export const HOSTILE_STRINGS: string[] = [
  "",
  " ",
  "' OR '1'='1",
  "'; DROP TABLE agents; --",
  "\"; DROP TABLE tools; --",
  "1; SELECT pg_sleep(5)",
  "$1",
  "%s%s%s%n",
  "\\",
  "\\\\'",
  "{\"$ne\": null}",
  "{\"__proto__\":{\"admin\":true}}",
  "__proto__",
  "constructor",
  "prototype",
  "${7*7}",
  "{{7*7}}",
  "<script>alert(1)</script>",
  "../../../../etc/passwd",
  "..%2f..%2f",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff\ud800",
  "\u202eevil",
  "\ufeff",
  "😀".repeat(50),
  "null",
  "true",
  "-0",
  "NaN",
  "Infinity",
  "1e308",
  "9223372036854775808",
  "agt_00000000000000000000000000",
  "tool_01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "usr_01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "org_01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "key_' OR 1=1 --",
  "x".repeat(65),
  "x".repeat(300),
  "x".repeat(5000),
  "a\r\nX-Injected: 1",
  "*",
  "%",
  "_",
  // Pathological regular expressions, as data (tool parameter patterns, names, messages).
  "^(a+)+$",
  "(a|aa)+$",
  "(.*a){25}",
  "^([a-zA-Z0-9]+\\s?)*$",
  "a".repeat(40) + "!",
];

/** Keys that name Object.prototype members: they must be plain data everywhere. */
export const PROTOTYPE_KEYS = ["toString", "valueOf", "__proto__", "constructor", "hasOwnProperty", "toJSON", "isPrototypeOf"];

/** Objects JavaScript cannot turn into a string, or that shadow prototype members. */
export const PROTOTYPE_LIKE_VALUES: unknown[] = [
  { toString: false },
  [{ toString: false }],
  { valueOf: 1 },
  { toString: false, valueOf: false },
  { hasOwnProperty: 0 },
  { toJSON: 1 },
  withKey({}, "__proto__", {}),
  { constructor: {} },
];

/** A JSON Schema whose pattern backtracks exponentially on "aaaa…!" (data here; the engine is bounded elsewhere). */
export const PATHOLOGICAL_SCHEMA = { type: "object", properties: { q: { type: "string", pattern: "^(a+)+$" } } };

/** Numbers that break naive code: written raw so 1e400 stays 1e400 on the wire. */
export const HOSTILE_NUMBERS: Raw[] = [
  "1e308", "-1e308", "1e400", "-1e400", "-0", "0.0000000001", "9223372036854775808", "-9223372036854775809",
  "18446744073709551616", "9007199254740993", "1.7976931348623157e+309", "2147483648", "-2147483649", "4294967296", "0.5", "1E-400",
].map((t) => new Raw(t));

export const HOSTILE_VALUES: unknown[] = [
  null, true, false, 0, -1, [], {}, [null], { "": "" }, ["a", 1, null], { __proto__: { polluted: true } }, { constructor: { prototype: { x: 1 } } },
  "NaN", ...HOSTILE_NUMBERS, ...PROTOTYPE_LIKE_VALUES, PATHOLOGICAL_SCHEMA,
];

/** Long runs of one character without a space (tokenizers, regexes and indexes choke on them). */
export const longUnbrokenString = (): fc.Arbitrary<string> =>
  fc.tuple(fc.constantFrom("a", "x", "9", "é", "😀", "-", "_"), fc.integer({ min: 500, max: 4000 })).map(([c, n]) => c.repeat(n));

export const hostileString = (): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constantFrom(...HOSTILE_STRINGS),
    longUnbrokenString(),
    fc.string({ unit: "binary", maxLength: 64 }),
    fc.string({ unit: "grapheme", maxLength: 64 }),
  );

export const hostileValue = (): fc.Arbitrary<unknown> =>
  fc.oneof(fc.constantFrom(...HOSTILE_VALUES), hostileString(), fc.jsonValue({ maxDepth: 3 }), fc.double(), fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((b) => new Raw(b.toString())));

/** A copy of `obj` with an OWN property `key` (also for "__proto__", which `{...}` would not create). */
export function withKey(obj: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const copy = { ...obj };
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

/** Mutates one place of a (valid) body: wrong type, missing required, unknown field, hostile value. */
export function mutateBody(body: unknown, schema: JsonSchema | undefined): fc.Arbitrary<unknown> {
  const objectBody = body && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
  const keys = Object.keys(schema?.properties ?? {});
  const required: string[] = schema?.required ?? [];
  const options: fc.Arbitrary<unknown>[] = [
    hostileValue(), // the whole body replaced: array, string, number, null …
  ];
  if (objectBody) {
    options.push(fc.tuple(fc.string({ minLength: 1, maxLength: 20 }), hostileValue()).map(([k, v]) => withKey(objectBody, k, v)));
    options.push(fc.tuple(fc.constantFrom(...PROTOTYPE_KEYS, "id", "org_id", "organization_id", "created_at"), hostileValue()).map(([k, v]) => withKey(objectBody, k, v)));
    if (keys.length) {
      options.push(fc.tuple(fc.constantFrom(...keys), hostileValue()).map(([k, v]) => withKey(objectBody, k, v)));
      options.push(fc.tuple(fc.constantFrom(...keys), fc.constantFrom(...PROTOTYPE_LIKE_VALUES)).map(([k, v]) => withKey(objectBody, k, v)));
      // A misspelt field (a letter dropped): the unknown-field case that users actually hit.
      const misspellable = keys.filter((k) => k.length > 2);
      if (misspellable.length) options.push(fc.constantFrom(...misspellable).map((k) => withKey(objectBody, k.slice(0, -1), objectBody[k] ?? 1)));
      options.push(fc.tuple(fc.constantFrom(...keys), fc.constantFrom(...HOSTILE_NUMBERS)).map(([k, v]) => withKey(objectBody, k, v)));
      options.push(fc.tuple(fc.constantFrom(...keys), fc.constantFrom(...HOSTILE_STRINGS)).map(([k, v]) => withKey(objectBody, k, v)));
    }
    if (required.length) {
      options.push(fc.constantFrom(...required).map((k) => {
        const { [k]: _dropped, ...rest } = objectBody;
        return rest;
      }));
    }
  }
  return fc.oneof(...options);
}

/** Whole-body texts that are not the JSON the route wants. */
export function malformedBodies(depth = 1_000): { label: string; text: string | Uint8Array }[] {
  const deepArray = "[".repeat(depth) + "]".repeat(depth);
  const deepObject = '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
  return [
    { label: "empty", text: "" },
    { label: "truncated", text: '{"name": ' },
    { label: "trailing garbage", text: "{} {}" },
    { label: "single quotes", text: "{'a': 1}" },
    { label: "comment", text: '{/* c */"a":1}' },
    { label: "NaN literal", text: '{"a": NaN}' },
    { label: "Infinity literal", text: '{"a": Infinity}' },
    { label: "bare string", text: '"hello"' },
    { label: "bare number", text: "1e400" },
    { label: "null", text: "null" },
    { label: "array", text: "[]" },
    { label: `deep array ${depth}`, text: deepArray },
    { label: `deep object ${depth}`, text: deepObject },
    { label: "duplicate keys", text: '{"a":1,"a":2}' },
    { label: "BOM", text: '\ufeff{"a":1}' },
    { label: "invalid UTF-8", text: new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0x22, 0x7d]) },
    { label: "NUL bytes", text: new Uint8Array([0x7b, 0x00, 0x7d]) },
    { label: "escaped NUL", text: '{"a":"\\u0000"}' },
    { label: "lone surrogate escape", text: '{"a":"\\ud800"}' },
  ];
}

/** A JSON object with `field` set to a deep nest (10k levels) — reaches schemas with free-form fields. */
export function deepValueText(depth = 10_000): string {
  return '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

/** Path-segment substitutes for an id (already percent-encoded where needed). */
export const HOSTILE_SEGMENTS: string[] = [
  "..%2f..",
  "..%2F..%2Fhealthz",
  "%2e%2e",
  "%00",
  "a%00b",
  "%ff",
  "%c0%af",
  "%e2%80%ae",
  "%20",
  "%25",
  "%",
  "%zz",
  "'%20OR%20'1'='1",
  "1%3B%20DROP%20TABLE%20agents",
  "x".repeat(65),
  "x".repeat(10_000),
  "agt_" + "0".repeat(26),
  "tool_" + "Z".repeat(26),
  "usr_01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "org_01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "key_01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "mem_01ARZ3NDEKTSV4RRFFQ69G5FAV",
  "-1",
  "0",
  "9223372036854775808",
  "null",
  "undefined",
  "__proto__",
  "constructor",
  "%F0%9F%98%80",
];

export const HOSTILE_PATHS: string[] = [
  "/v1/agents/..%2f..",
  "/v1/agents/..%2F..%2F..%2Fetc%2Fpasswd",
  "/v1/tools/%00",
  "/v1/tools/%ff%fe",
  "/v1/%00",
  "/v1/",
  "/v1",
  "//v1//tools",
  "/v1/tools/",
  "/v1/tools//",
  "/v1/TOOLS",
  "/v1/tools?limit=1&limit=2",
  "/v1/tools?limit=%00",
  "/v1/tools?after=%ff",
  "/v1/tools?" + "a=1&".repeat(2000),
  "/" + "a".repeat(20_000),
  "/v1/tools/" + "a".repeat(60_000),
  "/swagger/..%2f..%2fpackage.json",
  "/swagger/assets/..%2f..%2fpackage.json",
  "/swagger/assets/%2e%2e%2fpackage.json",
  "/swagger/assets/__proto__",
  "/swagger/assets/constructor",
  "/healthz/%00",
  "/metrics?x=%ff",
];

/** Authorization header values that must all get 401 on an authenticated route. */
export function hostileAuthorizations(validToken: string): string[] {
  const [h, p] = validToken.split(".");
  return [
    "",
    "Bearer",
    "Bearer ",
    "Bearer  ",
    "Basic dXNlcjpwYXNz",
    "bearer x",
    `Bearer ${"a".repeat(4097)}`,
    `Bearer ${"a".repeat(8000)}`,
    `Bearer ${validToken} extra`,
    `Bearer ${validToken}x`,
    `Bearer ${h}.${p}.`,
    `Bearer ${h}.${p}.AAAA`,
    `Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.${p}.`,
    "Bearer aos_",
    "Bearer aos_" + "x".repeat(64),
    "Bearer aos_' OR '1'='1",
    "Bearer ../../etc/passwd",
    "Bearer \u00ff\u00fe",
    `Bearer ${"a.".repeat(2000)}`,
  ];
}

export const IDEMPOTENCY_KEYS = ["", "k".repeat(255), "k".repeat(256), "k".repeat(4000), " ", "\u00ff\u00fe", "' OR 1=1 --", "a\tb"];

export const CONTENT_TYPES: (string | null)[] = [
  null,
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/xml",
  "application/json; charset=utf-16",
  "application/json; charset=iso-8859-1",
  "application/vnd.api+json",
  "APPLICATION/JSON",
  "application/json;;;",
  "application/jsonx",
  "*/*",
  "",
];
