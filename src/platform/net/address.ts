/**
 * Which IP addresses a tenant-controlled outbound request may connect to. Only globally
 * routable unicast is public; everything else (loopback, RFC 1918, link-local, CGNAT,
 * unique-local, multicast, documentation, benchmark, reserved, cloud metadata) is refused
 * unless private targets are allowed. The check is numeric on a parsed address, so odd
 * spellings cannot slip through: callers pass hostnames that the WHATWG URL parser already
 * normalised (127.1, 2130706433, 0x7f.1 and 017700000001 all become 127.0.0.1), and
 * IPv4-mapped, -compatible, NAT64 and 6to4 IPv6 forms are judged by the IPv4 inside them.
 */
import { isIP } from "node:net";

/** A range that is not public, by name (what an error message may say about a literal). */
export type BlockedRange =
  | "unspecified"
  | "loopback"
  | "private"
  | "link-local"
  | "cgnat"
  | "unique-local"
  | "multicast"
  | "broadcast"
  | "metadata"
  | "documentation"
  | "benchmark"
  | "reserved";

type V4Rule = [base: number, prefix: number, range: BlockedRange];

const v4 = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

// Most specific first: the first match names the range.
const V4_RULES: V4Rule[] = [
  [v4(169, 254, 169, 254), 32, "metadata"], // AWS, GCP, Azure, OpenStack instance metadata
  [v4(100, 100, 100, 200), 32, "metadata"], // Alibaba Cloud metadata
  [v4(255, 255, 255, 255), 32, "broadcast"],
  [v4(0, 0, 0, 0), 8, "unspecified"], // "this network"
  [v4(10, 0, 0, 0), 8, "private"],
  [v4(100, 64, 0, 0), 10, "cgnat"],
  [v4(127, 0, 0, 0), 8, "loopback"],
  [v4(169, 254, 0, 0), 16, "link-local"],
  [v4(172, 16, 0, 0), 12, "private"],
  [v4(192, 0, 0, 0), 24, "reserved"], // IETF protocol assignments
  [v4(192, 0, 2, 0), 24, "documentation"],
  [v4(192, 31, 196, 0), 24, "reserved"], // AS112
  [v4(192, 52, 193, 0), 24, "reserved"], // AMT
  [v4(192, 88, 99, 0), 24, "reserved"], // 6to4 relay anycast
  [v4(192, 168, 0, 0), 16, "private"],
  [v4(192, 175, 48, 0), 24, "reserved"], // direct delegation AS112
  [v4(198, 18, 0, 0), 15, "benchmark"],
  [v4(198, 51, 100, 0), 24, "documentation"],
  [v4(203, 0, 113, 0), 24, "documentation"],
  [v4(224, 0, 0, 0), 4, "multicast"],
  [v4(240, 0, 0, 0), 4, "reserved"],
];

function inV4(addr: number, base: number, prefix: number) {
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return ((addr & mask) >>> 0) === base;
}

function classifyV4(addr: number): BlockedRange | null {
  for (const [base, prefix, range] of V4_RULES) if (inV4(addr, base, prefix)) return range;
  return null;
}

/** Dotted quad → 32-bit number; null unless exactly four decimal parts 0-255. */
export function parseIPv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

/** IPv6 text (no brackets, no zone) → eight 16-bit groups; null if it is not one. */
export function parseIPv6(text: string): number[] | null {
  if (isIP(text) !== 6) return null;
  // A dotted IPv4 tail (::ffff:127.0.0.1) becomes two hex groups first.
  const lastColon = text.lastIndexOf(":");
  const dotted = parseIPv4(text.slice(lastColon + 1));
  const hex = dotted === null ? text : `${text.slice(0, lastColon + 1)}${(dotted >>> 16).toString(16)}:${(dotted & 0xffff).toString(16)}`;
  const groups = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const gap = hex.indexOf("::");
  let words: number[];
  if (gap >= 0) {
    const left = groups(hex.slice(0, gap));
    const right = groups(hex.slice(gap + 2));
    words = [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill(0), ...right];
  } else {
    words = groups(hex);
  }
  return words.length === 8 && words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff) ? words : null;
}

const embeddedV4 = (hi: number, lo: number) => ((hi << 16) | lo) >>> 0;

function classifyV6(w: number[]): BlockedRange | null {
  const zeros = (from: number, to: number) => w.slice(from, to).every((x) => x === 0);
  if (zeros(0, 8)) return "unspecified";
  if (zeros(0, 7) && w[7] === 1) return "loopback";
  if (zeros(0, 5) && w[5] === 0xffff) return classifyV4(embeddedV4(w[6], w[7])); // ::ffff:a.b.c.d, mapped
  if (zeros(0, 6)) return classifyV4(embeddedV4(w[6], w[7])) ?? "reserved"; // ::a.b.c.d, compatible (deprecated)
  if (zeros(0, 4) && w[4] === 0xffff && w[5] === 0) return classifyV4(embeddedV4(w[6], w[7])) ?? "reserved"; // ::ffff:0:a.b.c.d, translated
  if (w[0] === 0x64 && w[1] === 0xff9b && zeros(2, 6)) return classifyV4(embeddedV4(w[6], w[7])); // NAT64 well-known prefix
  if (w[0] === 0x64 && w[1] === 0xff9b && w[2] === 1) return "reserved"; // local-use NAT64
  if (w[0] === 0x2002) return classifyV4(embeddedV4(w[1], w[2])); // 6to4
  if (w[0] === 0xfd00 && w[1] === 0x0ec2 && zeros(2, 7) && w[7] === 0x254) return "metadata"; // AWS IPv6 metadata
  if ((w[0] & 0xfe00) === 0xfc00) return "unique-local";
  if ((w[0] & 0xffc0) === 0xfe80) return "link-local";
  if ((w[0] & 0xffc0) === 0xfec0) return "reserved"; // site-local (deprecated)
  if ((w[0] & 0xff00) === 0xff00) return "multicast";
  if (w[0] === 0x2001 && w[1] === 0x0db8) return "documentation";
  if ((w[0] & 0xfff0) === 0x3ff0) return "documentation"; // 3fff::/20
  if (w[0] === 0x2001 && w[1] === 0x0002 && w[2] === 0) return "benchmark";
  if (w[0] === 0x2001 && w[1] < 0x0200) return "reserved"; // IETF protocol assignments (Teredo, ORCHID, ...)
  if (w[0] === 0x0100 && zeros(1, 4)) return "reserved"; // discard-only
  if (w[0] === 0x5f00) return "reserved"; // SRv6 SIDs
  if ((w[0] & 0xe000) !== 0x2000) return "reserved"; // outside global unicast 2000::/3
  return null;
}

/**
 * The blocked range an IP address lies in, or null when it is public. Accepts IPv4 dotted
 * quads and IPv6 with or without brackets and zone; anything else is not an address
 * (returns "reserved", so a caller that passes junk fails closed).
 */
export function blockedRange(address: string): BlockedRange | null {
  let text = address.trim();
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const four = parseIPv4(text);
  if (four !== null) return classifyV4(four);
  const six = parseIPv6(text);
  if (six !== null) return classifyV6(six);
  return "reserved";
}

/** True when `hostname` (as URL.hostname gives it) is an IP literal rather than a name. */
export function isIpLiteral(hostname: string): boolean {
  const text = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
  return isIP(text) !== 0;
}
