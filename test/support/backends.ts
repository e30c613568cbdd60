/**
 * Real PostgreSQL, Redis and NATS for tests. With CI=true they must be reachable (a test
 * fails loudly otherwise); on a laptop without them the suites that need them are skipped
 * with a message saying how to enable them. Every suite gets its own database and its own
 * namespace (NATS subjects/streams, Redis keys), and drops them afterwards.
 */
import { describe, test } from "bun:test";
import postgres from "postgres";

export const CI = process.env.CI === "true" || process.env.CI === "1";

export const REAL_URLS = {
  postgres: process.env.AGENTOS_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
  redis: process.env.AGENTOS_TEST_REDIS_URL ?? "redis://127.0.0.1:6379",
  nats: process.env.AGENTOS_TEST_NATS_URL ?? "nats://127.0.0.1:4222",
};

async function reachable(url: string): Promise<boolean> {
  const u = new URL(url);
  const port = Number(u.port || { "postgres:": 5432, "postgresql:": 5432, "redis:": 6379, "nats:": 4222 }[u.protocol]);
  try {
    const socket = await Promise.race([
      Bun.connect({ hostname: u.hostname, port, socket: { data() {}, error() {} } }),
      Bun.sleep(1500).then(() => null),
    ]);
    socket?.end();
    return socket !== null;
  } catch {
    return false;
  }
}

export interface RealBackends {
  available: boolean;
  missing: string[];
}

let probed: Promise<RealBackends> | undefined;
export function probeBackends(): Promise<RealBackends> {
  probed ??= (async () => {
    const entries = await Promise.all(Object.entries(REAL_URLS).map(async ([name, url]) => [name, await reachable(url)] as const));
    const missing = entries.filter(([, ok]) => !ok).map(([name]) => name);
    return { available: missing.length === 0, missing };
  })();
  return probed;
}

const HOW = "start PostgreSQL (127.0.0.1:5432, trust), Redis (6379) and nats-server -js (4222), or set AGENTOS_TEST_DATABASE_URL / AGENTOS_TEST_REDIS_URL / AGENTOS_TEST_NATS_URL";

/**
 * `describe` for suites that need the real servers: runs them when reachable; under CI a
 * missing server is a failing test; elsewhere the suite is skipped with a message.
 */
export async function describeReal(name: string, fn: () => void) {
  const b = await probeBackends();
  if (b.available) return describe(`${name} [real PostgreSQL/Redis/NATS]`, fn);
  if (CI) {
    return describe(name, () => {
      test("real backends are reachable in CI", () => {
        throw new Error(`CI=true but ${b.missing.join(", ")} unreachable: ${HOW}`);
      });
    });
  }
  console.warn(`[skip] ${name}: ${b.missing.join(", ")} unreachable. To run it: ${HOW}`);
  return describe.skip(name, fn);
}

export const uniqueName = (prefix = "t") => `${prefix}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/** A fresh database on the real PostgreSQL; `drop()` removes it (terminating leftover sessions). */
export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `agentos_${uniqueName()}`;
  const admin = postgres(REAL_URLS.postgres, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(REAL_URLS.postgres);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const a = postgres(REAL_URLS.postgres, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`).catch(() => {});
      await a.end();
    },
  };
}

/** Deletes the JetStream streams of a test namespace. */
export async function dropNatsNamespace(namespace: string, natsUrl = REAL_URLS.nats) {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: natsUrl, timeout: 3000 });
  try {
    const jsm = await jetstreamManager(nc);
    const prefix = `${namespace.toUpperCase()}_`;
    for await (const s of jsm.streams.list()) if (s.config.name.startsWith(prefix)) await jsm.streams.delete(s.config.name);
  } finally {
    await nc.close();
  }
}

/** Deletes the Redis keys of a test namespace. */
export async function dropRedisNamespace(namespace: string, redisUrl = REAL_URLS.redis) {
  const { default: Redis } = await import("ioredis");
  const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", `${namespace}:*`, "COUNT", 500);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== "0");
  } finally {
    r.disconnect();
  }
}
