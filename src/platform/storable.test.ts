import { expect, test } from "bun:test";
import { findUnstorable, MAX_JSON_DEPTH, storableJson, storableText } from "./storable";

test("storableText replaces NUL characters and unpaired surrogates by U+FFFD, and leaves the rest alone", () => {
  expect(storableText("a\u0000b\ud800c\udc00")).toBe("a\uFFFDb\uFFFDc\uFFFD");
  expect(storableText("ok é 💡")).toBe("ok é 💡");
});

test("storableJson: strings and keys at any depth; past MAX_JSON_DEPTH the rest is kept as its JSON text; the result passes the request check", () => {
  const value = { "k\u0000": ["x\ud800", { n: 1, t: true, z: null }] };
  expect(storableJson<unknown>(value)).toEqual({ "k\uFFFD": ["x\uFFFD", { n: 1, t: true, z: null }] });
  const clean = { a: ["b", { c: 1 }] };
  expect(storableJson(clean)).toBe(clean); // nothing to change: not copied
  let deep: unknown = { leaf: "\u0000" };
  for (let i = 0; i < MAX_JSON_DEPTH + 10; i++) deep = [deep];
  const kept = storableJson(deep);
  expect(findUnstorable(kept)).toBeNull();
  expect(JSON.stringify(kept)).toContain("leaf");
  let tooDeep: unknown = 0;
  for (let i = 0; i < 200_000; i++) tooDeep = [tooDeep];
  expect(findUnstorable(storableJson(tooDeep))).toBeNull(); // JSON.stringify runs out of stack: a marker text instead
});
