import { describe, expect, test } from "bun:test";
import { createSecretBox } from "./secrets";

describe("secret box (AES-256-GCM)", () => {
  const key = "k".repeat(40);
  test("round-trips, with a fresh IV each time", () => {
    const box = createSecretBox(key);
    const a = box.encrypt("Bearer abc");
    expect(a).not.toContain("abc");
    expect(a).not.toBe(box.encrypt("Bearer abc"));
    expect(box.decrypt(a)).toBe("Bearer abc");
  });
  test("another key or an altered text fails", () => {
    const sealed = createSecretBox(key).encrypt("x");
    expect(() => createSecretBox("o".repeat(40)).decrypt(sealed)).toThrow();
    expect(() => createSecretBox(key).decrypt(sealed.slice(0, -2) + (sealed.endsWith("A") ? "BB" : "AA"))).toThrow();
  });
  test("the previous key still opens what it sealed (rotation)", () => {
    const old = createSecretBox("o".repeat(40)).encrypt("x");
    expect(createSecretBox(key, "o".repeat(40)).decrypt(old)).toBe("x");
  });
});
