/**
 * The SSRF guard: the address classifier on every spelling an attacker might use, and the
 * guarded fetch — refused before connecting, pinned to the checked address (DNS rebinding),
 * re-checked on each redirect, and failures that do not tell open ports from closed ones.
 * All test servers are on loopback, so the "public" side is simulated with an injected
 * classifier that blocks only 127.0.0.2 (Linux routes all of 127/8 to lo).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:net";
import { blockedRange } from "./address";
import { literalTargetProblem, OutboundError, outboundFetch, type OutboundPolicy } from "./outbound";

/** What `new URL(raw).hostname` gives, then the classifier: the path every target takes. */
const rangeOfUrl = (raw: string) => blockedRange(new URL(raw).hostname);

describe("address classifier", () => {
  const blocked: [string, string][] = [
    ["http://127.0.0.1/", "loopback"],
    ["http://127.1/", "loopback"],
    ["http://127.0.1/", "loopback"],
    ["http://2130706433/", "loopback"],
    ["http://0x7f.1/", "loopback"],
    ["http://0x7f000001/", "loopback"],
    ["http://017700000001/", "loopback"],
    ["http://0177.0.0.1/", "loopback"],
    ["http://127.0.0.1./", "loopback"],
    ["http://%31%32%37.0.0.1/", "loopback"],
    ["http://[::1]/", "loopback"],
    ["http://[0:0:0:0:0:0:0:1]/", "loopback"],
    ["http://[::ffff:127.0.0.1]/", "loopback"],
    ["http://[0:0:0:0:0:ffff:7f00:1]/", "loopback"],
    ["http://[::127.0.0.1]/", "loopback"],
    ["http://[::ffff:0:127.0.0.1]/", "loopback"],
    ["http://[64:ff9b::127.0.0.1]/", "loopback"],
    ["http://[2002:7f00:1::]/", "loopback"],
    ["http://0/", "unspecified"],
    ["http://0.0.0.0/", "unspecified"],
    ["http://[::]/", "unspecified"],
    ["http://10.0.0.1/", "private"],
    ["http://10.255.255.255/", "private"],
    ["http://172.16.0.1/", "private"],
    ["http://172.31.255.255/", "private"],
    ["http://192.168.1.1/", "private"],
    ["http://3232235777/", "private"], // 192.168.1.1
    ["http://[::ffff:10.0.0.1]/", "private"],
    ["http://[::ffff:c0a8:101]/", "private"],
    ["http://100.64.0.1/", "cgnat"],
    ["http://100.127.255.254/", "cgnat"],
    ["http://169.254.0.1/", "link-local"],
    ["http://[fe80::1]/", "link-local"],
    ["http://[febf::1]/", "link-local"],
    ["http://169.254.169.254/", "metadata"],
    ["http://0xa9fea9fe/", "metadata"],
    ["http://2852039166/", "metadata"],
    ["http://[::ffff:169.254.169.254]/", "metadata"],
    ["http://[fd00:ec2::254]/", "metadata"],
    ["http://100.100.100.200/", "metadata"],
    ["http://[fc00::1]/", "unique-local"],
    ["http://[fd12:3456::1]/", "unique-local"],
    ["http://224.0.0.1/", "multicast"],
    ["http://239.255.255.250/", "multicast"],
    ["http://[ff02::1]/", "multicast"],
    ["http://255.255.255.255/", "broadcast"],
    ["http://240.0.0.1/", "reserved"],
    ["http://192.0.0.8/", "reserved"],
    ["http://[fec0::1]/", "reserved"],
    ["http://[100::1]/", "reserved"],
    ["http://[2001::1]/", "reserved"], // Teredo
    ["http://[::ffff:0:8.8.8.8]/", "reserved"], // IPv4-translated: not routable
    ["http://[::8.8.8.8]/", "reserved"], // IPv4-compatible: deprecated
    ["http://192.0.2.1/", "documentation"],
    ["http://198.51.100.7/", "documentation"],
    ["http://203.0.113.9/", "documentation"],
    ["http://[2001:db8::1]/", "documentation"],
    ["http://198.18.0.1/", "benchmark"],
    ["http://198.19.255.255/", "benchmark"],
    ["http://[2001:2::1]/", "benchmark"],
  ];

  test.each(blocked)("%s is %s", (raw, range) => {
    expect(rangeOfUrl(raw)).toBe(range as never);
  });

  const open = [
    "http://8.8.8.8/",
    "http://1.1.1.1/",
    "http://93.184.215.14/",
    "http://172.15.255.255/", // just below 172.16/12
    "http://172.32.0.1/", // just above
    "http://100.63.255.255/", // just below CGNAT
    "http://100.128.0.1/",
    "http://169.253.255.255/",
    "http://11.0.0.1/",
    "http://[2606:4700:4700::1111]/",
    "http://[2a00:1450:4007:80e::200e]/",
    "http://[::ffff:8.8.8.8]/", // a mapped public address is that address
    "http://[64:ff9b::8.8.8.8]/",
    "http://[2002:808:808::]/", // 6to4 of 8.8.8.8
  ];
  test.each(open)("%s is public", (raw) => {
    expect(rangeOfUrl(raw)).toBeNull();
  });

  test("names and junk are not addresses: the classifier fails closed", () => {
    expect(blockedRange("localhost")).toBe("reserved");
    expect(blockedRange("")).toBe("reserved");
    expect(blockedRange("1.2.3.4.5")).toBe("reserved");
    expect(blockedRange("fe80::1%eth0")).toBe("link-local");
  });

  test("registration refuses blocked IP literals only (names are checked at call time)", () => {
    const off: OutboundPolicy = { allowPrivate: false };
    expect(literalTargetProblem(new URL("http://2130706433:8080/x"), off)).toContain("127.0.0.1 is a loopback address");
    expect(literalTargetProblem(new URL("http://[::ffff:127.0.0.1]/"), off)).toContain("loopback");
    expect(literalTargetProblem(new URL("http://8.8.8.8/"), off)).toBeNull();
    expect(literalTargetProblem(new URL("http://localhost/"), off)).toBeNull();
    expect(literalTargetProblem(new URL("http://127.0.0.1/"), { allowPrivate: true })).toBeNull();
  });
});

describe("guarded fetch", () => {
  let a: ReturnType<typeof Bun.serve>;
  let b: ReturnType<typeof Bun.serve>;
  let resetter: Server;
  let resetPort = 0;
  const hits: { server: string; host: string | null; path: string }[] = [];

  beforeAll(async () => {
    const handler = (name: string) => (req: Request) => {
      const url = new URL(req.url);
      hits.push({ server: name, host: req.headers.get("host"), path: url.pathname });
      if (url.pathname === "/to-b") return new Response(null, { status: 307, headers: { location: `http://127.0.0.2:${b.port}/secret` } });
      if (url.pathname === "/rebind") return new Response(null, { status: 307, headers: { location: "/secret" } });
      if (url.pathname === "/secret") return Response.json({ secret: `internal data from ${name}` });
      return Response.json({ ok: name });
    };
    a = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: handler("a") });
    b = Bun.serve({ hostname: "127.0.0.2", port: 0, fetch: handler("b") });
    resetter = createServer((s) => s.destroy()).listen(0, "127.0.0.1");
    await new Promise((r) => resetter.once("listening", r));
    resetPort = (resetter.address() as { port: number }).port;
  });
  afterAll(() => {
    a?.stop(true);
    b?.stop(true);
    resetter?.close();
  });

  const req = () => ({ method: "POST", headers: { "content-type": "application/json" }, body: "{}", signal: AbortSignal.timeout(5000) });
  const follow = { max: 3, allow: () => true };
  /** 127.0.0.1 plays a public address, 127.0.0.2 an internal one. */
  const onlyBIsInternal = (address: string) => (address === "127.0.0.2" ? ("private" as const) : null);

  async function refusal(work: Promise<unknown>) {
    const err = await work.then(
      () => null,
      (e) => e,
    );
    expect(err).toBeInstanceOf(OutboundError);
    return err as OutboundError;
  }

  test("loopback in every spelling, and a name resolving to it, is refused before connecting", async () => {
    const before = hits.length;
    for (const host of ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "017700000001", "[::ffff:127.0.0.1]", "localhost"]) {
      const err = await refusal(outboundFetch(`http://${host}:${a.port}/secret`, req(), { allowPrivate: false }));
      expect(err.code).toBe("target_refused");
      expect(err.message).not.toContain("internal data");
    }
    expect(hits.length).toBe(before);
  });

  test("the connection goes to the checked address, with the name in Host", async () => {
    const res = await outboundFetch(`http://tool.example:${a.port}/x`, req(), { allowPrivate: false, classify: onlyBIsInternal, resolve: async () => ["127.0.0.1"] });
    expect(res.response.status).toBe(200);
    expect(hits.at(-1)).toEqual({ server: "a", host: `tool.example:${a.port}`, path: "/x" });
  });

  test("a name with one internal address among public ones is refused", async () => {
    const err = await refusal(outboundFetch(`http://mixed.example:${a.port}/`, req(), { allowPrivate: false, classify: onlyBIsInternal, resolve: async () => ["127.0.0.1", "127.0.0.2"] }));
    expect(err.code).toBe("target_refused");
    expect(err.message).not.toContain("127.0.0.2"); // the internal address is not revealed
  });

  test("a redirect from an allowed target to a blocked one is refused", async () => {
    const before = hits.filter((h) => h.server === "b").length;
    const err = await refusal(outboundFetch(`http://127.0.0.1:${a.port}/to-b`, req(), { allowPrivate: false, classify: onlyBIsInternal }, follow));
    expect(err.code).toBe("target_refused");
    expect(hits.filter((h) => h.server === "b").length).toBe(before);
  });

  test("DNS rebinding: a name that resolves elsewhere on the redirect's hop is checked again", async () => {
    const answers = ["127.0.0.1", "127.0.0.2"];
    const resolve = async () => [answers.shift() ?? "127.0.0.2"];
    const before = hits.filter((h) => h.server === "b").length;
    // Same origin (port), so only the second resolution differs: a is public, b internal.
    const bOnAPort = Bun.serve({ hostname: "127.0.0.2", port: a.port, fetch: () => Response.json({ secret: "internal" }) });
    try {
      const err = await refusal(outboundFetch(`http://rebind.example:${a.port}/rebind`, req(), { allowPrivate: false, classify: onlyBIsInternal, resolve }, follow));
      expect(err.code).toBe("target_refused");
    } finally {
      bOnAPort.stop(true);
    }
    expect(hits.filter((h) => h.server === "b").length).toBe(before);
  });

  test("allowed private targets are reached (the development setting)", async () => {
    const res = await outboundFetch(`http://localhost:${a.port}/to-b`, req(), { allowPrivate: true }, follow);
    expect(await res.response.json()).toEqual({ secret: "internal data from b" });
  });

  test("a closed port and a port that resets give the same error", async () => {
    const policy = { allowPrivate: true };
    const closed = await refusal(outboundFetch("http://127.0.0.1:1/", req(), policy));
    const reset = await refusal(outboundFetch(`http://127.0.0.1:${resetPort}/`, req(), policy));
    const unknown = await refusal(outboundFetch("http://no-such-host.invalid/", req(), policy));
    expect(closed.code).toBe("target_unreachable");
    expect(reset.code).toBe("target_unreachable");
    expect(unknown.code).toBe("target_unreachable");
    expect(closed.message.replace(/127\.0\.0\.1:\d+/, "H")).toBe(reset.message.replace(/127\.0\.0\.1:\d+/, "H"));
    for (const e of [closed, reset, unknown]) expect(e.message).not.toMatch(/ECONN|refused|reset|Unable to connect/i);
  });

  test("a redirect that is not allowed comes back as the 3xx", async () => {
    const res = await outboundFetch(`http://127.0.0.1:${a.port}/to-b`, req(), { allowPrivate: true });
    expect(res.response.status).toBe(307);
  });
});

describe("the allow-private-targets setting", () => {
  test("off by default; on with the env twin or the bare flag; bad values refused", async () => {
    const { parseConfig } = await import("../config");
    expect(parseConfig([], {}).allowPrivateTargets).toBe(false);
    expect(parseConfig([], { AGENTOS_ALLOW_PRIVATE_TARGETS: "true" }).allowPrivateTargets).toBe(true);
    expect(parseConfig([], { AGENTOS_ALLOW_PRIVATE_TARGETS: "false" }).allowPrivateTargets).toBe(false);
    expect(parseConfig(["--allow-private-targets"], {}).allowPrivateTargets).toBe(true);
    expect(parseConfig(["--allow-private-targets", "serve"], {})).toMatchObject({ allowPrivateTargets: true, command: "serve" });
    expect(parseConfig(["--allow-private-targets=false"], { AGENTOS_ALLOW_PRIVATE_TARGETS: "true" }).allowPrivateTargets).toBe(false);
    expect(() => parseConfig([], { AGENTOS_ALLOW_PRIVATE_TARGETS: "maybe" })).toThrow("AGENTOS_ALLOW_PRIVATE_TARGETS: 'maybe' is not true or false");
  });
});
