/**
 * The embedded database lets the event loop turn while a backlog of queries runs (yielding.ts):
 * without it, a timer (or an accept, a model reply) waits until every queued query is done.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closePglite, openPglite, type PGlite } from "./pglite";
import { yieldingClient } from "./yielding";

let pg: PGlite;
beforeAll(async () => {
  pg = await openPglite("memory://");
}, 60_000);
afterAll(() => closePglite(pg));

/** How many of `n` queries sent at once had answered when a timer set just before them ran. */
async function answeredBeforeTimer(client: Pick<PGlite, "query">, n: number) {
  let answered = 0;
  let atTimer = -1;
  setTimeout(() => (atTimer = answered), 0);
  await Promise.all(Array.from({ length: n }, () => client.query("select 1").then(() => answered++)));
  return atTimer === -1 ? n : atTimer;
}

test("a backlog of queries runs without the event loop turning (why the wrapper exists)", async () => {
  expect(await answeredBeforeTimer(pg, 200)).toBe(200);
});

test("the wrapped client lets a timer run in the middle of the backlog; queries and transactions still answer", async () => {
  const client = yieldingClient({ query: pg.query.bind(pg), exec: pg.exec.bind(pg), transaction: pg.transaction.bind(pg) }, 0);
  expect(await answeredBeforeTimer(client, 200)).toBeLessThan(200);
  const rows = await client.transaction(async (tx) => (await tx.query<{ n: number }>("select 2 as n")).rows);
  expect(rows).toEqual([{ n: 2 }]);
  expect((await client.exec("select 3 as n"))[0].rows).toEqual([{ n: 3 }]);
});
