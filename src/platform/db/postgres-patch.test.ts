/**
 * postgres.js under Bun: a transaction whose connection dies must reject, not crash the
 * process from a setImmediate (src/platform/db/postgres-patch.ts). Real PostgreSQL behind a
 * TCP proxy that the test cuts mid-transaction.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { describeReal, REAL_URLS } from "../../../test/support/backends";
import { startTcpProxy, type TcpProxy } from "../../../test/support/tcp-proxy";
import { COMMITTED_BY_CALLER, patchPostgresConnection, patchPostgresIndex } from "./postgres-patch";

test("the patch applies to the installed postgres.js (the build fails otherwise)", async () => {
  const source = await Bun.file(Bun.resolveSync("postgres", import.meta.dir).replace(/src[\\/]index\.js$/, "src/connection.js")).text();
  const patched = patchPostgresConnection(source);
  expect(patched).toContain("if (!socket) { // agentos patch");
  expect(patched).toContain("socket && socket.destroy()");
  expect(patched).toContain("BEGIN reserves its connection");
  expect(patchPostgresConnection(patched)).toBe(patched);
  expect(() => patchPostgresConnection("function nextWrite(fn) { other() }")).toThrow(/postgres.js changed/);
});

test("the BEGIN pipelining applies to the installed postgres.js src/index.js", async () => {
  const source = await Bun.file(Bun.resolveSync("postgres", import.meta.dir)).text();
  const patched = patchPostgresIndex(source);
  expect(patched).toContain("agentos patch: a plain BEGIN is pipelined");
  expect(patched).toContain("c.queue === full && !(beginInFlight && pipelining)");
  expect(patched).toContain("agentos patch: the callback sent COMMIT itself");
  expect(patched).toContain("name || await began");
  expect(patchPostgresIndex(patched)).toBe(patched);
  expect(() => patchPostgresIndex("async function begin(options, fn) {}")).toThrow(/postgres.js changed/);
});

await describeReal("postgres.js transactions with a pipelined BEGIN", () => {
  let proxy: TcpProxy;
  let sql: ReturnType<typeof postgres>;
  beforeAll(async () => {
    const u = new URL(REAL_URLS.postgres);
    // Every reply held back 15 ms: a statement sent before the previous answer is pipelined, deterministically.
    proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 5432) }, { replyDelayMs: 15 });
    sql = postgres(proxy.url(REAL_URLS.postgres), { max: 1, onnotice: () => {} });
    await sql`create temp table pipelined (n int)`; // one connection: the table lives as long as the test's pool
  });
  afterAll(async () => {
    await sql?.end({ timeout: 2 });
    proxy?.stop();
  });

  test("BEGIN, one statement and COMMIT cost two round trips, not three", async () => {
    proxy.resetBursts();
    await sql.begin(async (tx) => {
      await tx`select 1`;
    });
    expect(proxy.clientBursts()).toBe(2);
    proxy.resetBursts();
    await sql.begin("isolation level repeatable read", async (tx) => {
      await tx`select 1`;
    });
    expect(proxy.clientBursts()).toBe(3); // with options BEGIN is awaited: it may be refused
  });

  test("the statements run inside the transaction: one txid, and an error rolls every write back", async () => {
    const ids = await sql.begin(async (tx) => [await tx`select txid_current() as id`, await tx`select txid_current() as id`]);
    expect(ids[0][0].id).toBe(ids[1][0].id);
    const failed = await sql
      .begin((tx) => [tx`insert into pipelined values (1)`, tx`select 1 / 0`])
      .then(() => null, (e: Error) => e);
    expect(failed?.message).toMatch(/division by zero/);
    expect((await sql`select count(*)::int as n from pipelined`)[0].n).toBe(0);
    await sql.begin((tx) => [tx`insert into pipelined values (2)`, tx`insert into pipelined values (3)`]);
    expect((await sql`select count(*)::int as n from pipelined`)[0].n).toBe(2);
  });

  test("statements new to the connection, sent at once behind BEGIN, are all answered (each is described first)", async () => {
    // The pipelined BEGIN once let a second statement out while the first was still being
    // described: the connection hung, or answered rows without their columns.
    const shape = `n${Date.now()}`;
    const rows = await Promise.race([
      sql.begin((tx) => [tx.unsafe(`select $1::int as ${shape}`, [1], { prepare: true }), tx.unsafe(`select $1::text as ${shape}`, ["two"], { prepare: true }), tx.unsafe(`select $1::int + 1 as ${shape}`, [2])]),
      Bun.sleep(5_000).then(() => "hung"),
    ]);
    expect(rows as unknown).toEqual([[{ [shape]: 1 }], [{ [shape]: "two" }], [{ [shape]: 3 }]]);
  });

  test("a callback that sends COMMIT itself with its statements: the transaction is one round trip, and a failed statement rolls it back", async () => {
    const oneTrip = async (statements: string[]) => {
      const { failed } = await sql.begin(async (tx) => {
        const settled = await Promise.allSettled([...statements.map((s) => tx.unsafe(s).execute()), tx`commit`.execute()]);
        // Returned, not thrown: after its COMMIT the transaction is over (see COMMITTED_BY_CALLER).
        return { failed: settled.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined, [COMMITTED_BY_CALLER]: true };
      });
      if (failed) throw failed.reason;
    };
    await oneTrip(["insert into pipelined values (40)"]); // its statements prepared on the connection
    proxy.resetBursts();
    await oneTrip(["insert into pipelined values (41)", "insert into pipelined values (42)"]);
    expect(proxy.clientBursts()).toBe(1);
    expect((await sql`select count(*)::int as n from pipelined where n between 40 and 42`)[0].n).toBe(3);
    const failed = await oneTrip(["insert into pipelined values (43)", "select 1 / 0", "insert into pipelined values (44)"]).then(() => null, (e: Error) => e);
    expect(failed?.message).toMatch(/division by zero/);
    expect((await sql`select count(*)::int as n from pipelined where n in (43, 44)`)[0].n).toBe(0);
    expect((await sql`select 1 as ok`)[0].ok).toBe(1); // the connection is usable, outside any transaction

    // A failed one while another transaction waits for the only connection: both settle. (A
    // ROLLBACK sent after the COMMIT went into a connection already given to the other, and hung.)
    const settled = await Promise.race([
      Promise.allSettled([oneTrip(["insert into pipelined values (45)", "select 1 / 0"]), sql.begin((tx) => [tx`insert into pipelined values (46)`])]),
      Bun.sleep(5_000).then(() => "hung"),
    ]);
    expect(settled).not.toBe("hung");
    expect((settled as PromiseSettledResult<unknown>[]).map((r) => r.status)).toEqual(["rejected", "fulfilled"]);
    expect((await sql`select array_agg(n order by n) as ns from pipelined where n in (45, 46)`)[0].ns).toEqual([46]);
  });

  test("a callback's own result is never taken for the COMMIT marker: only the symbol skips postgres.js's COMMIT", async () => {
    await sql.begin(async (tx) => {
      await tx`insert into pipelined values (50)`;
      return { agentosCommittedByCaller: true, "Symbol(agentos.committedByCaller)": true }; // echoed data, say
    });
    expect((await sql`select count(*)::int as n from pipelined where n = 50`)[0].n).toBe(1);
  });

  test("invalid BEGIN options still refuse the transaction before any statement runs", async () => {
    const failed = await sql.begin("isolation level nonsense", (tx) => tx`insert into pipelined values (9)`).then(() => null, (e: Error) => e);
    expect(failed).not.toBeNull();
    expect((await sql`select count(*)::int as n from pipelined where n = 9`)[0].n).toBe(0);
  });
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
