/**
 * A fix applied to postgres.js (3.4.x) as it is bundled or loaded: upstream issues #1066,
 * #1154, #1208 (open). A write smaller than 1 KiB is sent from a `setImmediate`; when the
 * connection closed meanwhile (PostgreSQL restarted, a proxy cut it) `socket` is null and
 * `socket.write` throws from the immediate — an uncaught TypeError that no caller can catch,
 * which ended our process a few seconds into every PostgreSQL outage. The typical path: a
 * transaction whose connection died sends its ROLLBACK on the dead connection.
 *
 * Patched: with no socket, the buffered write is dropped and the queries waiting on it are
 * rejected with CONNECTION_CLOSED (the connection is gone; a caller retries); a connect
 * timeout on a socket already gone is ignored.
 *
 * Second fix, upstream #1189 / #823 (PR #1218, open): `execute()` ran the hook that reserves
 * a connection for `sql.begin` as the last term of its "can take more" chain, so a BEGIN that
 * filled the connection's pipeline (1,000 concurrent run creates did it) was sent without the
 * reservation: the transaction failed with UNSAFE_TRANSACTION (a 500), or with max: 1 other
 * queries ran inside it. Patched: the hook runs whenever the query was written.
 *
 * Third change, src/index.js (not a bug): a plain BEGIN is pipelined with the transaction's
 * first statements instead of awaited, one round trip less per transaction (`patchPostgresIndex`),
 * as long as the connection can take more (not behind a statement being described first).
 * Fourth, same file: neither COMMIT nor ROLLBACK after a callback that sent its own COMMIT
 * (COMMITTED_BY_CALLER).
 *
 * Applied by the build (scripts/build.ts), by
 * the test preload and by the `bun run` preload (bunfig.toml), so every way of running the
 * code gets it; the build fails if the pattern is no longer found (a new postgres.js).
 */
import type { BunPlugin } from "bun";

const NEXT_WRITE = "function nextWrite(fn) {\n    const x = socket.write(chunk, fn)";
const NEXT_WRITE_GUARDED = `function nextWrite(fn) {
    if (!socket) { // agentos patch: the connection closed before this write (postgres.js #1066)
      clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      const closedError = Errors.connection('CONNECTION_CLOSED', options)
      query && (queryError(query, closedError), query = null)
      while (sent.length) queryError(sent.shift(), closedError)
      return false
    }
    const x = socket.write(chunk, fn)`;
const CONNECT_TIMED_OUT = "errored(Errors.connection('CONNECT_TIMEOUT', options, socket))\n    socket.destroy()";
const CONNECT_TIMED_OUT_GUARDED = "errored(Errors.connection('CONNECT_TIMEOUT', options, socket))\n    socket && socket.destroy()";
const EXECUTE_TAIL = `return write(toBuffer(q))
        && !q.describeFirst
        && !q.cursorFn
        && sent.length < max_pipeline
        && (!q.options.onexecute || q.options.onexecute(connection))`;
const EXECUTE_TAIL_RESERVING = `const written = write(toBuffer(q))
      if (q.options.onexecute) return q.options.onexecute(connection), false // agentos patch: BEGIN reserves its connection (postgres.js #1189)
      return written
        && !q.describeFirst
        && !q.cursorFn
        && sent.length < max_pipeline`;
const MARK = "agentos patch";

/**
 * Fourth change, src/index.js (not a bug): a transaction callback may send COMMIT itself,
 * pipelined with its statements (one round trip for the whole transaction), and say so by
 * returning an object with this key. `sql.begin` then sends neither COMMIT nor ROLLBACK: the
 * transaction is over (committed, or rolled back by that COMMIT after a failed statement) and
 * the connection may already serve another one, so the callback must not throw after it.
 */
export const COMMITTED_BY_CALLER = Symbol.for("agentos.committedByCaller");

// src/index.js: `sql.begin`.
const BEGIN_AWAITED = "await sql.unsafe('begin ' + options.replace(/[^a-z ]/ig, ''), [], { onexecute }).execute()";
const BEGIN_PIPELINED = `// agentos patch: a plain BEGIN is pipelined with the transaction's first statements
      if (options) ${BEGIN_AWAITED}
      else {
        began = sql.unsafe('begin', [], { onexecute: c => (onexecute(c), beginInFlight = pipelining = true, onReserved(c)) })
        began.then(() => beginInFlight = false, () => beginInFlight = false)
        await new Promise((resolve, reject) => (onReserved = resolve, began.catch(reject)))
      }`;
const BEGIN_LOCALS = "    let savepoints = 0\n      , connection";
const BEGIN_LOCALS_PIPELINED = "    let savepoints = 0\n      , began\n      , beginInFlight = false\n      , pipelining = false\n      , onReserved\n      , connection";
const SCOPE_CHECK = "        if (uncaughtError)\n          throw uncaughtError\n      } catch (e) {";
const SCOPE_CHECK_BEGAN = "        name || await began // agentos patch: the pipelined BEGIN's own outcome, before COMMIT\n        if (!name && result && result[Symbol.for('agentos.committedByCaller')]) return result // agentos patch: the callback sent COMMIT itself\n        if (uncaughtError)\n          throw uncaughtError\n      } catch (e) {";
const SCOPE_HANDLER = "        q.catch(e => uncaughtError || (uncaughtError = e))\n        c.queue === full\n          ? queries.push(q)\n          : c.execute(q) || move(c, full)";
// While BEGIN is in flight the connection counts as full; statements go out behind it only as
// long as the connection can take more: not behind one being described first (a statement new
// to the connection, answered in two steps), which the connection handles one at a time.
const SCOPE_HANDLER_PIPELINED = "        q.catch(e => uncaughtError || (uncaughtError = e))\n        c.queue === full && !(beginInFlight && pipelining) // agentos patch: behind a BEGIN in flight\n          ? queries.push(q)\n          : (pipelining = c.execute(q)) || move(c, full)";

/** The patched source of postgres/src/connection.js; throws when the code to patch changed. */
export function patchPostgresConnection(source: string): string {
  if (source.includes(MARK)) return source;
  if (!source.includes(NEXT_WRITE) || !source.includes(CONNECT_TIMED_OUT) || !source.includes(EXECUTE_TAIL)) {
    throw new Error("postgres.js changed: src/connection.js no longer has the code src/platform/db/postgres-patch.ts fixes; check whether upstream fixed #1066 and update the patch");
  }
  return source.replace(NEXT_WRITE, NEXT_WRITE_GUARDED).replace(CONNECT_TIMED_OUT, CONNECT_TIMED_OUT_GUARDED).replace(EXECUTE_TAIL, EXECUTE_TAIL_RESERVING);
}

/**
 * The patched source of postgres/src/index.js: `sql.begin` without options (Drizzle's) sends
 * BEGIN and goes on with the transaction's statements on the connection it reserved, without
 * waiting for BEGIN's answer (PostgreSQL runs them in order, after it): one round trip less
 * per transaction. A plain BEGIN fails only with its connection, which fails the statements
 * after it too; its error is still checked before COMMIT. With options (`isolation level …`,
 * which can be wrong) BEGIN is awaited as before. Throws when the code changed.
 */
export function patchPostgresIndex(source: string): string {
  if (source.includes(MARK)) return source;
  if (![BEGIN_AWAITED, BEGIN_LOCALS, SCOPE_CHECK, SCOPE_HANDLER].every((s) => source.includes(s))) {
    throw new Error("postgres.js changed: src/index.js no longer has the `sql.begin` that src/platform/db/postgres-patch.ts pipelines; update the patch");
  }
  return source.replace(BEGIN_AWAITED, BEGIN_PIPELINED).replace(BEGIN_LOCALS, BEGIN_LOCALS_PIPELINED).replace(SCOPE_CHECK, SCOPE_CHECK_BEGAN).replace(SCOPE_HANDLER, SCOPE_HANDLER_PIPELINED);
}

export const postgresPatchPlugin: BunPlugin = {
  name: "agentos-postgres-js-patch",
  setup(build) {
    build.onLoad({ filter: /[\\/]postgres[\\/](src|cjs[\\/]src)[\\/](connection|index)\.js$/ }, async (args) => {
      const source = await Bun.file(args.path).text();
      return { contents: /index\.js$/.test(args.path) ? patchPostgresIndex(source) : patchPostgresConnection(source), loader: "js" };
    });
  },
};
