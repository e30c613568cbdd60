/**
 * Opaque, time-sortable ids with a type prefix (SPEC §4): `<prefix>_<26 chars>`.
 * The body is a ULID (48-bit ms time + 80 random bits, Crockford base32), made
 * monotonic within one process so ids created in the same millisecond still sort.
 */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** The 26 Crockford base32 characters after the prefix (also the path parameters' pattern). */
export const ID_BODY_PATTERN = "[0-9A-HJKMNP-TV-Z]{26}";
const BODY = new RegExp(`^${ID_BODY_PATTERN}$`);

export const ID_PREFIXES = [
  "usr", "org", "key", "agt", "thr", "msg", "run", "stp", "tool", "mem", "evt", "whk", "ntf", "rtk", "dlv", "req", "blk", "use", "mcp", "sch",
] as const;
export type IdPrefix = (typeof ID_PREFIXES)[number];

let lastTime = 0;
let lastRandom: Uint8Array = new Uint8Array(10);

function encodeTime(ms: number): string {
  let out = "";
  for (let i = 9; i >= 0; i--) {
    const mod = ms % 32;
    out = ALPHABET[mod] + out;
    ms = (ms - mod) / 32;
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  // 80 bits -> 16 base32 chars, 5 bits at a time (no BigInt: this runs for every request id).
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const b of bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}

function incrementRandom(bytes: Uint8Array): Uint8Array {
  const next = bytes.slice();
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i] < 255) {
      next[i]++;
      return next;
    }
    next[i] = 0;
  }
  return next;
}

export function newId(prefix: IdPrefix): string {
  const now = Date.now();
  if (now <= lastTime) {
    lastRandom = incrementRandom(lastRandom);
  } else {
    lastTime = now;
    lastRandom = crypto.getRandomValues(new Uint8Array(10));
  }
  return `${prefix}_${encodeTime(lastTime)}${encodeRandom(lastRandom)}`;
}

/** True when `value` is an id of the given type; anything else must answer 404, not 500. */
export function isId(prefix: IdPrefix, value: unknown): value is string {
  if (typeof value !== "string" || value.length !== prefix.length + 27) return false;
  return value.startsWith(prefix + "_") && BODY.test(value.slice(prefix.length + 1));
}
