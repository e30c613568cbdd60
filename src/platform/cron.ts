/**
 * 5-field cron expressions (minute hour day-of-month month day-of-week) evaluated in an IANA
 * time zone with Intl — no dependency. Fields take `*`, numbers, ranges `a-b`, steps `* /n`
 * and `a-b/n`, lists `a,b`, month and weekday names (jan…dec, sun…sat); weekday 0 and 7 are
 * Sunday. As in Vixie cron, when both day-of-month and day-of-week are restricted a day
 * matching either one fires.
 *
 * Daylight saving time: a wall time that does not exist (spring forward, 02:30 in a skipped
 * hour) fires at the same offset after the gap (03:30); a wall time that exists twice (fall
 * back) fires once, at its first occurrence.
 */

export interface CronSpec {
  minutes: number[];
  hours: number[];
  days: Set<number>;
  months: Set<number>;
  weekdays: Set<number>;
  /** Both day fields restricted: either matches (Vixie cron). */
  dayOr: boolean;
}

export class CronError extends Error {}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const FIELDS = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTHS, base: 1 },
  { name: "day of week", min: 0, max: 7, names: WEEKDAYS, base: 0 },
] as const;

function parseValue(text: string, f: (typeof FIELDS)[number]): number {
  const lower = text.toLowerCase();
  if ("names" in f) {
    const i = (f.names as readonly string[]).indexOf(lower);
    if (i >= 0) return i + f.base;
  }
  if (!/^\d+$/.test(text)) throw new CronError(`${f.name}: '${text}' is not a number`);
  const n = Number(text);
  if (n < f.min || n > f.max) throw new CronError(`${f.name}: ${n} is outside ${f.min}-${f.max}`);
  return n;
}

function parseField(text: string, f: (typeof FIELDS)[number]): { values: Set<number>; star: boolean } {
  const values = new Set<number>();
  let star = false;
  for (const part of text.split(",")) {
    const [range, stepText, extra] = part.split("/");
    if (extra !== undefined || range === "") throw new CronError(`${f.name}: '${part}' is malformed`);
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1 || (stepText !== undefined && !/^\d+$/.test(stepText))) throw new CronError(`${f.name}: step '${stepText}' must be a positive integer`);
    let lo: number, hi: number;
    if (range === "*") {
      [lo, hi] = [f.min, f.name === "day of week" ? 6 : f.max];
      if (stepText === undefined) star = true;
    } else if (range.includes("-")) {
      const [a, b, more] = range.split("-");
      if (more !== undefined) throw new CronError(`${f.name}: '${range}' is malformed`);
      [lo, hi] = [parseValue(a, f), parseValue(b, f)];
      if (lo > hi) throw new CronError(`${f.name}: range ${range} runs backwards`);
    } else {
      lo = parseValue(range, f);
      hi = stepText === undefined ? lo : f.max;
    }
    for (let v = lo; v <= hi; v += step) values.add(f.name === "day of week" && v === 7 ? 0 : v);
  }
  return { values, star };
}

export function parseCron(expression: string): CronSpec {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) throw new CronError(`expected 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}`);
  const [mi, h, dom, mon, dow] = parts.map((p, i) => parseField(p, FIELDS[i]));
  return {
    minutes: [...mi.values].sort((a, b) => a - b),
    hours: [...h.values].sort((a, b) => a - b),
    days: dom.values,
    months: mon.values,
    weekdays: dow.values,
    dayOr: !dom.star && !dow.star,
  };
}

/** Throws CronError unless the IANA zone is known. */
export function assertTimeZone(zone: string) {
  try {
    formatter(zone);
  } catch {
    throw new CronError(`unknown time zone '${zone}'`);
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(zone: string) {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric" });
    formatters.set(zone, f);
  }
  return f;
}

/** The wall clock of an instant in the zone (to the minute), as a UTC timestamp of those fields. */
function wallOf(ms: number, zone: string): number {
  const p: Record<string, number> = {};
  for (const part of formatter(zone).formatToParts(ms)) if (part.type !== "literal") p[part.type] = Number(part.value);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute);
}

/** The zone's offset (wall − UTC, ms) at an instant. */
const offsetAt = (ms: number, zone: string) => wallOf(ms, zone) - Math.floor(ms / 60_000) * 60_000;

/**
 * The instant a wall time (given as UTC fields) happens in the zone: the earlier of two when it
 * is ambiguous, shifted by the gap when it does not exist.
 */
export function wallToInstant(wall: number, zone: string): number {
  const candidates = [wall - offsetAt(wall - 43_200_000, zone), wall - offsetAt(wall + 43_200_000, zone)];
  const valid = candidates.filter((c) => wallOf(c, zone) === wall).sort((a, b) => a - b);
  if (valid.length) return valid[0];
  // In a gap: the offset before the transition carries the wall time past it (02:30 → 03:30).
  return candidates[0];
}

/** The first fire strictly after `after` (ms), or null when none comes within 5 years (e.g. 30 February). */
export function nextFire(spec: CronSpec, zone: string, after: number): number | null {
  const startWall = wallOf(after, zone);
  const startDay = Math.floor(startWall / 86_400_000) * 86_400_000;
  const startMinuteOfDay = (startWall - startDay) / 60_000;
  for (let d = 0; d < 366 * 5; d++) {
    const day = startDay + d * 86_400_000;
    const date = new Date(day);
    if (!spec.months.has(date.getUTCMonth() + 1)) continue;
    const domOk = spec.days.has(date.getUTCDate());
    const dowOk = spec.weekdays.has(date.getUTCDay());
    if (spec.dayOr ? !(domOk || dowOk) : !(domOk && dowOk)) continue;
    for (const h of spec.hours) {
      for (const m of spec.minutes) {
        // Earlier wall times of the first day cannot come after `after` (3 h covers any DST shift).
        if (d === 0 && h * 60 + m < startMinuteOfDay - 180) continue;
        const at = wallToInstant(day + (h * 60 + m) * 60_000, zone);
        if (at > after) return at;
      }
    }
  }
  return null;
}
