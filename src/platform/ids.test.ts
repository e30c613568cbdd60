import { describe, expect, test } from "bun:test";
import { isId, newId } from "./ids";

describe("ids", () => {
  test("prefixed, 26-char Crockford body, unique and time-sortable even within one millisecond", () => {
    const ids = Array.from({ length: 20_000 }, () => newId("agt"));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids.slice(0, 100)) expect(id).toMatch(/^agt_[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  test("isId rejects other types and shapes (→ 404, never a query)", () => {
    const id = newId("run");
    expect(isId("run", id)).toBe(true);
    expect(isId("agt", id)).toBe(false);
    for (const bad of ["", "run_", `${id}x`, id.toLowerCase(), "run_' or 1=1 --", 42, null]) expect(isId("run", bad)).toBe(false);
  });
});
