import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { assertTimeZone, CronError, nextFire, parseCron } from "./cron";

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
/** The next n fires after `from`. */
function fires(expr: string, zone: string, from: string, n: number) {
  const spec = parseCron(expr);
  const out: string[] = [];
  let t = at(from);
  for (let i = 0; i < n; i++) {
    const next = nextFire(spec, zone, t);
    if (next === null) break;
    out.push(iso(next)!);
    t = next;
  }
  return out;
}

describe("parseCron", () => {
  test("fields: stars, lists, ranges, steps, names, Sunday as 0 or 7", () => {
    const s = parseCron("*/15 9-17/4 1,15 jan-mar MON-fri");
    expect(s.minutes).toEqual([0, 15, 30, 45]);
    expect(s.hours).toEqual([9, 13, 17]);
    expect([...s.days].sort((a, b) => a - b)).toEqual([1, 15]);
    expect([...s.months].sort()).toEqual([1, 2, 3]);
    expect([...s.weekdays].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(s.dayOr).toBe(true);
    expect([...parseCron("0 0 * * 7").weekdays]).toEqual([0]);
    expect(parseCron("0 0 * * *").dayOr).toBe(false);
    expect(parseCron("5/20 * * * *").minutes).toEqual([5, 25, 45]);
  });

  test.each([
    ["* * * *", /5 fields/],
    ["60 * * * *", /minute: 60 is outside 0-59/],
    ["* 24 * * *", /hour/],
    ["* * 0 * *", /day of month/],
    ["* * * 13 *", /month/],
    ["* * * * 8", /day of week/],
    ["*/0 * * * *", /step/],
    ["5-1 * * * *", /backwards/],
    ["a * * * *", /not a number/],
    ["1,,2 * * * *", /malformed/],
  ])("refuses %p", (expr, message) => {
    expect(() => parseCron(expr)).toThrow(message);
    expect(() => parseCron(expr)).toThrow(CronError);
  });

  test("time zones are checked", () => {
    expect(() => assertTimeZone("Europe/Berlin")).not.toThrow();
    expect(() => assertTimeZone("Mars/Olympus")).toThrow(CronError);
  });
});

describe("nextFire", () => {
  test("UTC basics: strictly after, across hour, day, month and leap year", () => {
    expect(fires("*/15 * * * *", "UTC", "2026-01-01T10:14:59Z", 3)).toEqual(["2026-01-01T10:15:00.000Z", "2026-01-01T10:30:00.000Z", "2026-01-01T10:45:00.000Z"]);
    expect(fires("0 0 * * *", "UTC", "2026-01-01T00:00:00Z", 1)).toEqual(["2026-01-02T00:00:00.000Z"]);
    expect(fires("0 12 29 2 *", "UTC", "2026-01-01T00:00:00Z", 1)).toEqual(["2028-02-29T12:00:00.000Z"]);
    expect(fires("0 0 31 * *", "UTC", "2026-04-01T00:00:00Z", 1)).toEqual(["2026-05-31T00:00:00.000Z"]);
    expect(nextFire(parseCron("0 0 30 2 *"), "UTC", at("2026-01-01T00:00:00Z"))).toBeNull();
  });

  test("day of month OR day of week when both are restricted (Vixie cron)", () => {
    // 2026-03-01 is a Sunday; the 13th is a Friday.
    expect(fires("0 9 13 * fri", "UTC", "2026-03-01T00:00:00Z", 3)).toEqual(["2026-03-06T09:00:00.000Z", "2026-03-13T09:00:00.000Z", "2026-03-20T09:00:00.000Z"]);
    expect(fires("0 9 * * sun", "UTC", "2026-03-01T09:00:00Z", 1)).toEqual(["2026-03-08T09:00:00.000Z"]);
  });

  test("a time zone: 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer", () => {
    expect(fires("0 9 * * *", "America/New_York", "2026-03-07T00:00:00Z", 3)).toEqual(["2026-03-07T14:00:00.000Z", "2026-03-08T13:00:00.000Z", "2026-03-09T13:00:00.000Z"]);
    expect(fires("30 5 * * *", "Asia/Kolkata", "2026-06-01T00:00:00Z", 1)).toEqual(["2026-06-02T00:00:00.000Z"]);
  });

  test("spring forward: a wall time in the skipped hour fires once, shifted past the gap", () => {
    // Europe/Berlin 2026-03-29: 02:00 CET → 03:00 CEST; 02:30 does not exist.
    expect(fires("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3)).toEqual([
      "2026-03-29T01:30:00.000Z", // 03:30 CEST
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
      "2026-03-31T00:30:00.000Z",
    ]);
    // Every minute across the gap: no instant fires twice, none is skipped after it.
    const minutes = fires("* * * * *", "Europe/Berlin", "2026-03-29T00:58:00Z", 4);
    expect(minutes).toEqual(["2026-03-29T00:59:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-29T01:01:00.000Z", "2026-03-29T01:02:00.000Z"]);
  });

  test("fall back: a wall time that happens twice fires once, at its first occurrence", () => {
    // America/New_York 2026-11-01: 02:00 EDT → 01:00 EST; 01:30 happens twice.
    expect(fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2)).toEqual(["2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z"]);
    // Hourly: 01:00 fires once (EDT), the repeated hour is not fired again, 02:00 EST follows.
    expect(fires("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", 3)).toEqual(["2026-11-01T05:00:00.000Z", "2026-11-01T07:00:00.000Z", "2026-11-01T08:00:00.000Z"]);
  });

  test("Lord Howe (30-minute DST shift) and a southern-hemisphere zone", () => {
    // Australia/Lord_Howe 2026-10-04: 02:00 → 02:30 (+10:30 → +11).
    expect(fires("15 2 4 10 *", "Australia/Lord_Howe", "2026-10-01T00:00:00Z", 1)).toEqual(["2026-10-03T15:45:00.000Z"]);
    // Australia/Sydney 2026-04-05: 03:00 AEDT → 02:00 AEST; 02:30 twice → first (AEDT, +11).
    expect(fires("30 2 5 4 *", "Australia/Sydney", "2026-04-01T00:00:00Z", 1)).toEqual(["2026-04-04T15:30:00.000Z"]);
  });

  test("property: fires are strictly increasing, match the expression's wall fields, and none is missed (UTC, vs a minute scan)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("*/7 * * * *", "0 */5 * * *", "15 10 * * 1-5", "0 0 1,15 * *", "*/20 3 * jan,jul sun", "59 23 31 12 *"),
        fc.integer({ min: at("2025-01-01T00:00:00Z"), max: at("2027-01-01T00:00:00Z") }),
        (expr, from) => {
          const spec = parseCron(expr);
          const next = nextFire(spec, "UTC", from)!;
          expect(next).toBeGreaterThan(from);
          const d = new Date(next);
          expect(spec.minutes).toContain(d.getUTCMinutes());
          expect(spec.hours).toContain(d.getUTCHours());
          // Nothing matches between from and next (checked minute by minute over at most two days).
          const limit = Math.min(next, from + 2 * 86_400_000);
          for (let t = Math.floor(from / 60_000) * 60_000 + 60_000; t < limit; t += 60_000) {
            const x = new Date(t);
            const dayOk = spec.dayOr ? spec.days.has(x.getUTCDate()) || spec.weekdays.has(x.getUTCDay()) : spec.days.has(x.getUTCDate()) && spec.weekdays.has(x.getUTCDay());
            const match = spec.minutes.includes(x.getUTCMinutes()) && spec.hours.includes(x.getUTCHours()) && spec.months.has(x.getUTCMonth() + 1) && dayOk;
            expect(match).toBe(false);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
