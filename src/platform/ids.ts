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
  "usr", "org", "key", "agt", "thr", "msg", "run", "stp", "tool", "mem", "evt", "whk", "ntf", "rtk", "dlv", "req", "blk", "use", "mcp", "sch", "prv",
] as const;
export type IdPrefix = (typeof ID_PREFIXES)[number];

let lastTime = 0;
/** encodeTime(lastTime), kept: ids made in the same millisecond share it. */
let lastTimeText = "";
const lastRandom = new Uint8Array(10);
/** Two base32 characters for each 10-bit value: the 80 random bits are 8 lookups. */
const PAIRS = Array.from({ length: 1024 }, (_, v) => ALPHABET[v >> 5] + ALPHABET[v & 31]);

function encodeTime(ms: number): string {
  let out = "";
  for (let i = 9; i >= 0; i--) {
    const mod = ms % 32;
    out = ALPHABET[mod] + out;
    ms = (ms - mod) / 32;
  }
  return out;
}

/** 80 bits -> 16 base32 characters, 10 bits (40 bits = 5 bytes) at a time; no BigInt: this runs for every request id. */
function encodeRandom(b: Uint8Array): string {
  let out = "";
  for (let i = 0; i < 10; i += 5) {
    const hi = (b[i] << 12) | (b[i + 1] << 4) | (b[i + 2] >> 4); // 20 bits
    const lo = ((b[i + 2] & 15) << 16) | (b[i + 3] << 8) | b[i + 4]; // 20 bits
    out += PAIRS[hi >> 10] + PAIRS[hi & 1023] + PAIRS[lo >> 10] + PAIRS[lo & 1023];
  }
  return out;
}

/** +1 on the 80-bit big-endian number, in place (monotonic ids within one millisecond). */
function incrementRandom(bytes: Uint8Array) {
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 255) {
      bytes[i]++;
      return;
    }
    bytes[i] = 0;
  }
}

export function newId(prefix: IdPrefix): string {
  const now = Date.now();
  if (now <= lastTime) {
    incrementRandom(lastRandom);
  } else {
    lastTime = now;
    lastTimeText = encodeTime(now);
    crypto.getRandomValues(lastRandom);
  }
  return `${prefix}_${lastTimeText}${encodeRandom(lastRandom)}`;
}

/** True when `value` is an id of the given type; anything else must answer 404, not 500. */
export function isId(prefix: IdPrefix, value: unknown): value is string {
  if (typeof value !== "string" || value.length !== prefix.length + 27) return false;
  return value.startsWith(prefix + "_") && BODY.test(value.slice(prefix.length + 1));
}
