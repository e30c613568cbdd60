import { describe, expect, test } from "bun:test";
import { natsConnectionOptions } from "./bus/nats";
import { parseConfig } from "./config";
import { RPC_REPLAY_WINDOW_MS, RpcRefused, RpcSeal } from "./rpc-seal";

const KEY = "unit-test-internal-key-0123456789abcdef";
const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof RpcRefused ? err.reason : `not a refusal: ${err}`;
  }
  return "accepted";
};

describe("sealed RPC envelopes", () => {
  test("a sealed payload opens with the same key on the same subject, once", () => {
    const seal = new RpcSeal(KEY);
    const sealed = seal.seal("ns.rpc.auth.login", { args: [{ email: "a@b.c", password: "hunter2" }] });
    expect(JSON.stringify(sealed)).not.toContain("hunter2");
    expect(new RpcSeal(KEY).open("ns.rpc.auth.login", sealed, { fresh: true })).toEqual({ args: [{ email: "a@b.c", password: "hunter2" }] });
  });

  test("unsigned, forged, altered, moved, stale and replayed envelopes are refused", () => {
    const seal = new RpcSeal(KEY);
    const subject = "ns.rpc.billing.updatePlan";
    const sealed = seal.seal(subject, { args: ["org_1", { plan: "free" }] });
    const other = new RpcSeal(`${KEY}-other`);
    expect(refusal(() => seal.open(subject, { args: [] }, { fresh: true }))).toBe("unsigned");
    expect(refusal(() => seal.open(subject, { ...sealed, sig: "x" }, { fresh: true }))).toBe("bad_signature");
    expect(refusal(() => other.open(subject, sealed, { fresh: true }))).toBe("bad_signature");
    expect(refusal(() => seal.open(subject, { ...sealed, ct: sealed.ct.slice(1) }, { fresh: true }))).toBe("bad_signature");
    expect(refusal(() => seal.open(subject, { ...sealed, ts: sealed.ts + 1 }, { fresh: true }))).toBe("bad_signature");
    expect(refusal(() => seal.open("ns.rpc.auth.addMember", sealed, { fresh: true }))).toBe("bad_signature");
    expect(refusal(() => seal.open(subject, seal.seal(subject, {}, Date.now() - RPC_REPLAY_WINDOW_MS - 1000), { fresh: true }))).toBe("stale");
    expect(refusal(() => seal.open(subject, seal.seal(subject, {}, Date.now() + RPC_REPLAY_WINDOW_MS + 1000), { fresh: true }))).toBe("stale");
    expect(refusal(() => seal.open(subject, sealed, { fresh: true }))).toBe("accepted");
    expect(refusal(() => seal.open(subject, sealed, { fresh: true }))).toBe("replayed");
  });

  test("a nonce is remembered for the whole window in which its timestamp is accepted", () => {
    const seal = new RpcSeal(KEY);
    const t0 = Date.now();
    const sealed = seal.seal("s", {}, t0);
    expect(refusal(() => seal.open("s", sealed, { fresh: true, now: t0 - RPC_REPLAY_WINDOW_MS + 1 }))).toBe("accepted");
    for (const later of [t0, t0 + RPC_REPLAY_WINDOW_MS / 2, t0 + RPC_REPLAY_WINDOW_MS]) {
      expect(refusal(() => seal.open("s", sealed, { fresh: true, now: later }))).toBe("replayed");
    }
  });

  test("replies are bound to their request and not checked for freshness", () => {
    const seal = new RpcSeal(KEY);
    const reply = seal.seal(RpcSeal.replySubject("s", "n1"), { ok: true, result: 1 }, Date.now() - 10 * RPC_REPLAY_WINDOW_MS);
    expect(seal.open(RpcSeal.replySubject("s", "n1"), reply, { fresh: false })).toEqual({ ok: true, result: 1 });
    expect(refusal(() => seal.open(RpcSeal.replySubject("s", "n2"), reply, { fresh: false }))).toBe("bad_signature");
  });

  test("the internal key must be at least 32 bytes", () => {
    expect(() => new RpcSeal("short")).toThrow(/32 bytes/);
    expect(() => parseConfig(["--internal-key=short"], {})).toThrow(/at least 32 bytes/);
    expect(parseConfig([], { AGENTOS_INTERNAL_KEY: KEY }).internalKey).toBe(KEY);
  });
});

describe("NATS connection options", () => {
  test("credentials in the URL become connection options and leave the server list", () => {
    expect(natsConnectionOptions("nats://agentos:s%40cret@nats:4222")).toEqual({ servers: "nats://nats:4222", user: "agentos", pass: "s@cret" });
    expect(natsConnectionOptions("nats://tok123@nats:4222")).toEqual({ servers: "nats://nats:4222", token: "tok123" });
    expect(natsConnectionOptions("nats://nats:4222")).toEqual({ servers: "nats://nats:4222" });
  });

  test("flags win over the URL; tls:// and a CA file turn TLS on", () => {
    expect(natsConnectionOptions("nats://a:b@nats:4222", { user: "c", password: "d" })).toMatchObject({ user: "c", pass: "d" });
    expect(natsConnectionOptions("nats://nats:4222", { token: "t" })).toMatchObject({ token: "t" });
    expect(natsConnectionOptions("tls://nats:4222").tls).toEqual({});
    expect(natsConnectionOptions("nats://nats:4222", { caFile: "/ca.pem" }).tls).toEqual({ caFile: "/ca.pem" });
    expect(natsConnectionOptions("nats://nats:4222", { certFile: "/c.pem", keyFile: "/k.pem" }).tls).toEqual({ certFile: "/c.pem", keyFile: "/k.pem" });
  });

  test("a creds or nkey file that cannot be read ends start-up with one line", () => {
    expect(() => natsConnectionOptions("nats://nats:4222", { credsFile: "/nonexistent.creds" })).toThrow(/cannot read the NATS creds file \/nonexistent\.creds/);
  });

  test("the tools subject prefix is plain tokens ending in a dot, never a NATS system prefix", () => {
    expect(parseConfig([], {}).toolsSubjectPrefix).toBe("tools.");
    expect(parseConfig(["--tools-subject-prefix=acme.tools."], {}).toolsSubjectPrefix).toBe("acme.tools.");
    for (const bad of ["tools", "tools.>", "$SYS.", "_INBOX.", "a b."]) expect(() => parseConfig([`--tools-subject-prefix=${bad}`], {})).toThrow(/prefix/);
  });
});
