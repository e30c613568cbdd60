/**
 * profile --write (costs): what the message write costs per request in process, as CPU time
 * (process.cpuUsage: user + system, so the client side of the PostgreSQL socket included) over
 * many concurrent requests on the real back ends — the whole request (`app.handle`, no HTTP
 * socket), the agents service call alone, and the same with one statement per message
 * (--message-batch-max=1, a second process) — plus the commits and statements PostgreSQL saw
 * per request (pg_stat_database).
 */
import postgres from "postgres";
import { startTestProcess, type TestProcess } from "../../test/support/harness";
import { requestContext } from "../../src/platform/context";
import { newId } from "../../src/platform/ids";
import { MESSAGE_BODY } from "../lib/fixtures";
import { round } from "../lib/proc";
import { printTable } from "../lib/results";
import { BENCH_PLAN_LIMITS } from "../lib/target";

const CONCURRENCY = 64;

/** Runs `call` `n` times over CONCURRENCY loops; CPU µs and PostgreSQL commits per call. */
async function measure(t: TestProcess, n: number, call: () => Promise<unknown>) {
  const pg = postgres((t.config as { databaseUrl: string }).databaseUrl, { max: 1, onnotice: () => {} });
  const commits = async () => {
    await pg`select pg_stat_clear_snapshot()`;
    return (await pg`select xact_commit::int as c from pg_stat_database where datname = current_database()`)[0].c as number;
  };
  try {
    const loop = async (k: number) => {
      for (let i = 0; i < k; i++) await call();
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, () => loop(Math.ceil(n / 10 / CONCURRENCY)))); // warm-up
    await Bun.sleep(600); // the backends flush their counters every 500 ms at most
    const c0 = await commits();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, () => loop(Math.ceil(n / CONCURRENCY))));
    const cpu = process.cpuUsage(cpu0);
    const seconds = (performance.now() - t0) / 1000;
    await Bun.sleep(600);
    const total = Math.ceil(n / CONCURRENCY) * CONCURRENCY;
    return { cpuUs: (cpu.user + cpu.system) / total, commits: ((await commits()) - c0 - 2) / total, perSecond: total / seconds };
  } finally {
    await pg.end();
  }
}

async function costsWith(messageBatchMax: number, n: number) {
  const t = await startTestProcess({ real: true, config: { planLimitsJson: BENCH_PLAN_LIMITS, messageBatchMax } });
  try {
    const user = await t.signup();
    const thread = await t.request("POST", "/v1/threads", { token: user.token, body: {} });
    const path = `/v1/threads/${thread.body.id}/messages`;
    const headers = { authorization: `Bearer ${user.token}`, "content-type": "application/json" };
    const viaApp = async () => {
      const r = await requestContext.run({ requestId: newId("req") } as never, () => t.process.app.handle(new Request(`http://localhost${path}`, { method: "POST", headers, body: MESSAGE_BODY })));
      if (r.status !== 201) throw new Error(`POST ${path} in process: ${r.status} ${await r.text()}`);
    };
    const input = JSON.parse(MESSAGE_BODY);
    const agents = (t.process.platform as any).clients.agents;
    const viaService = () => agents.createMessage(user.orgId, thread.body.id, input, null);
    return { whole: await measure(t, n, viaApp), service: await measure(t, n, viaService) };
  } finally {
    await t.stop();
  }
}

export async function runWriteCosts(o: { iterations: number }) {
  const n = Math.max(2_000, Math.floor(o.iterations / 5));
  console.log(`\n== cost of POST /v1/threads/:id/messages in process, real back ends, ${CONCURRENCY} concurrent, ${n} calls (CPU time per call)`);
  const batched = await costsWith(64, n);
  const single = await costsWith(1, n);
  const row = (what: string, m: { cpuUs: number; commits: number; perSecond: number }) => ({ what, "CPU µs/request": round(m.cpuUs, 1), "commits/request": round(m.commits, 3), "requests/s": Math.round(m.perSecond) });
  const rows = [
    row("whole request: app.handle(POST …/messages), no socket, group commit (batch max 64)", batched.whole),
    row("agents service createMessage alone, group commit", batched.service),
    row("whole request, one statement per message (batch max 1)", single.whole),
    row("agents service createMessage alone, batch max 1", single.service),
  ];
  printTable(rows);
  return { concurrency: CONCURRENCY, calls: n, rows };
}
