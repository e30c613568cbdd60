/**
 * postgres.js under Bun: a transaction whose connection dies must reject, not crash the
 * process from a setImmediate (src/platform/db/postgres-patch.ts). Real PostgreSQL behind a
 * TCP proxy that the test cuts mid-transaction.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { describeReal, REAL_URLS } from "../../../test/support/backends";
import { startTcpProxy, type TcpProxy } from "../../../test/support/tcp-proxy";
import { patchPostgresConnection } from "./postgres-patch";

test("the patch applies to the installed postgres.js (the build fails otherwise)", async () => {
  const source = await Bun.file(Bun.resolveSync("postgres", import.meta.dir).replace(/src[\\/]index\.js$/, "src/connection.js")).text();
  const patched = patchPostgresConnection(source);
  expect(patched).toContain("if (!socket) { // agentos patch");
  expect(patched).toContain("socket && socket.destroy()");
  expect(patched).toContain("BEGIN reserves its connection");
  expect(patchPostgresConnection(patched)).toBe(patched);
  expect(() => patchPostgresConnection("function nextWrite(fn) { other() }")).toThrow(/postgres.js changed/);
});

await describeReal("postgres.js transactions at the pipeline boundary (upstream #1189)", () => {
  test("a BEGIN that fills a connection's pipeline still reserves it: no UNSAFE_TRANSACTION, no query inside another's transaction", async () => {
    // max_pipeline 0 puts every BEGIN at the boundary (unpatched: every sql.begin fails); 1 and 2 with load mix both.
    for (const max_pipeline of [0, 1, 2]) {
      // max_pipeline is a connection option postgres.js reads but does not declare in its types.
      const sql = postgres(REAL_URLS.postgres, { max: 3, onnotice: () => {}, ...({ max_pipeline } as object) });
      try {
        const work = Array.from({ length: 40 }, (_, i) =>
          i % 3 === 0
            ? sql`select pg_sleep(0.01), txid_current_if_assigned() as tx`.then((r) => ({ inTx: r[0].tx !== null }))
            : sql.begin(async (tx) => {
                await tx`select txid_current()`;
                return { inTx: false };
              }),
        );
        const results = await Promise.all(work);
        expect({ max_pipeline, leaked: results.filter((r) => r.inTx).length }).toEqual({ max_pipeline, leaked: 0 });
      } finally {
        await sql.end({ timeout: 2 });
      }
    }
  }, 30_000);
});

await describeReal("postgres.js connection lost inside a transaction", () => {
  let proxy: TcpProxy;
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);

  beforeAll(async () => {
    const u = new URL(REAL_URLS.postgres);
    proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 5432) });
    process.on("uncaughtException", onUncaught);
  });
  afterAll(() => {
    process.off("uncaughtException", onUncaught);
    proxy?.stop();
  });

  test("the transaction rejects with a connection error; no uncaught exception; the pool works again", async () => {
    const sql = postgres(proxy.url(REAL_URLS.postgres), { max: 2, connect_timeout: 2, onnotice: () => {}, backoff: () => 0.05 });
    try {
      for (let round = 0; round < 3; round++) {
        const tx = sql.begin(async (q) => {
          await q`select 1`;
          proxy.cut();
          // Still inside the callback: the next statement and the ROLLBACK go to the dead connection.
          await q`select 2`;
        });
        const err = (await tx.then(() => null, (e) => e)) as { code?: string } | null;
        expect(err).not.toBeNull();
        expect(["CONNECTION_CLOSED", "ECONNRESET", "CONNECTION_DESTROYED", "CONNECTION_ENDED"]).toContain(err!.code as string);
        await Bun.sleep(50); // the immediate that used to throw runs here
        proxy.restore();
        expect((await sql`select 3 as n`)[0].n).toBe(3);
      }
      expect(uncaught).toEqual([]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
