import { describe, expect, test } from "bun:test";
import { isId, newId } from "./ids";

describe("ids", () => {
  test("prefixed, 26-char Crockford body, unique and time-sortable even within one millisecond", () => {
    const ids = Array.from({ length: 20_000 }, () => newId("agt"));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids.slice(0, 100)) expect(id).toMatch(/^agt_[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  test("the body is the ULID's 48-bit time and 80-bit random part in base32; within a millisecond the random part counts up by one", () => {
    const decode = (text: string) => [...text].reduce((n, c) => n * 32n + BigInt("0123456789ABCDEFGHJKMNPQRSTVWXYZ".indexOf(c)), 0n);
    const before = Date.now();
    const ids = Array.from({ length: 5_000 }, () => newId("req").slice(4));
    for (const body of ids) expect(Number(decode(body.slice(0, 10)))).toBeGreaterThanOrEqual(before - 1);
    let sameMs = 0;
    for (let i = 1; i < ids.length; i++) {
      if (ids[i].slice(0, 10) !== ids[i - 1].slice(0, 10)) continue;
      sameMs++;
      expect(decode(ids[i].slice(10)) - decode(ids[i - 1].slice(10))).toBe(1n);
    }
    expect(sameMs).toBeGreaterThan(0);
  });

  test("isId rejects other types and shapes (→ 404, never a query)", () => {
    const id = newId("run");
    expect(isId("run", id)).toBe(true);
    expect(isId("agt", id)).toBe(false);
    for (const bad of ["", "run_", `${id}x`, id.toLowerCase(), "run_' or 1=1 --", 42, null]) expect(isId("run", bad)).toBe(false);
  });
});
