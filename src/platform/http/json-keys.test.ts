/** Duplicate keys in JSON texts: the scanner and the count that skips it. */
import { describe, expect, test } from "bun:test";
import { duplicateKeyIn, findDuplicateKey } from "./json-keys";

describe("duplicate JSON keys", () => {
  test.each([
    ['{"a":1,"a":2}', "a"],
    ['{"a":1, "b":{"c":1,"c":2}}', "c"],
    ['[{"x":1},{"y":1,"y":[]}]', "y"],
    ['{"\\u0061":1,"a":2}', "a"],
    ['{ "a" : 1 , "a" : 2 }', "a"],
    ['{"a\\"b":1,"a\\"b":2}', 'a"b'],
    ['{"k\\\\":1,"k\\\\":2}', "k\\"],
  ])("%s has a duplicate", (text, key) => {
    expect(findDuplicateKey(text)).toBe(key);
    expect(duplicateKeyIn(text, JSON.parse(text))).toBe(key);
  });

  test.each([
    '{"a":1,"b":2}',
    '{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}',
    '{"a":"\\"a\\":1,","b":"a:b:c"}',
    '{"url":"https://x:8080/a","t":"12:00:00"}',
    '["a","a",{"a":"a"}]',
    '{"k\\\\":"\\\\","k":1}',
    "{}",
  ])("%s has none", (text) => {
    expect(findDuplicateKey(text)).toBeNull();
    expect(duplicateKeyIn(text, JSON.parse(text))).toBeNull();
  });
});
