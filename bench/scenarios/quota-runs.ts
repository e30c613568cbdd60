/**
 * The quota check end to end, through a compiled binary: POST /v1/threads/:id/runs latency
 * (p50 and mean of 50 sequential creates, each on a fresh thread, after 10 warm-up) for an org
 * with `rows` usage rows this month, on a fresh real PostgreSQL database (no Redis/NATS: the
 * in-process bus). Works with a binary from before usage_months (it then sums the rows) and
 * after (the counter, filled from the seeded rows), so the two can be compared in one sitting:
 *
 *   bun run bench/scenarios/quota-runs.ts /work/main/dist/agentos 100000
 *   bun run bench/scenarios/quota-runs.ts dist/agentos 100000
 *
 * The runs then fail in the background (no model provider): only their creation is measured.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
const [bin, rowsArg, port] = [process.argv[2], Number(process.argv[3] ?? 100000), Number(process.argv[4] ?? 18931)];
const dataDir = mkdtempSync(join(tmpdir(), "agentos-quota-runs-"));
const name = `agentos_quota_runs_${Date.now()}`;
const admin = postgres("postgres://postgres@127.0.0.1:5432/postgres", { max: 1, onnotice: () => {} });
await admin.unsafe(`create database ${name}`);
const url = `postgres://postgres@127.0.0.1:5432/${name}`;
const child = Bun.spawn([bin, "--role=all", `--port=${port}`, `--database-url=${url}`, "--jwt-secret=" + "x".repeat(40), `--data-dir=${dataDir}`], {
  env: { ...process.env, AGENTOS_PLAN_LIMITS: JSON.stringify({ free: { requests_per_minute: 1e9, runs_per_month: 1e9, tokens_per_month: 1e12 } }), LOG_LEVEL: "warn", AGENTOS_SECRET_KEY: "k".repeat(40), REDIS_URL: "", NATS_URL: "" },
  stdout: "ignore", stderr: "inherit",
});
const base = `http://127.0.0.1:${port}`;
for (let i = 0; i < 200; i++) { try { if ((await fetch(`${base}/readyz`)).ok) break; } catch {} await Bun.sleep(100); }
const req = async (method: string, path: string, token?: string, body?: unknown) => {
  const r = await fetch(base + path, { method, headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const j: any = await r.json().catch(() => null);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
  return j;
};
try {
  const s = await req("POST", "/v1/auth/signup", undefined, { email: `e${Date.now()}@x.io`, password: "correct horse battery staple" });
  const token = s.access_token;
  const me = await req("GET", "/v1/auth/me", token);
  const orgId = me.org_id ?? me.organization?.id ?? me.org?.id;
  const agent = await req("POST", "/v1/agents", token, { name: "e2e", model: "gpt-4o-mini", instructions: "x" });
  const db = postgres(url, { max: 1, onnotice: () => {} });
  const month = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1)).toISOString();
  await db.unsafe(`insert into usage_records (id, org_id, event_id, kind, total_tokens, occurred_at)
    select 'use_e_' || i, '${orgId}', 'evt_e_' || i, case when i % 3 = 0 then 'run' else 'model_call' end, case when i % 3 = 0 then 0 else 100 end, '${month}'::timestamptz + ((i % 86400) * interval '1 second') from generate_series(1, ${rowsArg}) i`);
  const hasCounter = (await db.unsafe(`select to_regclass('usage_months') as t`))[0].t;
  if (hasCounter) await db.unsafe(`insert into usage_months select org_id, to_char(occurred_at at time zone 'UTC','YYYY-MM'), count(*) filter (where kind='run'), coalesce(sum(total_tokens),0) from usage_records group by 1,2 on conflict (org_id, period) do update set runs = excluded.runs, tokens = excluded.tokens`);
  await db.unsafe(`analyze usage_records`);
  await db.end();
  const times: number[] = [];
  for (let i = 0; i < 60; i++) {
    const th = await req("POST", "/v1/threads", token, {});
    const t0 = performance.now();
    await req("POST", `/v1/threads/${th.id}/runs`, token, { agent_id: agent.id, input: "hi" });
    if (i >= 10) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ bin, rows: rowsArg, load: (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" "), counter: !!hasCounter, p50_ms: +times[25].toFixed(2), mean_ms: +(times.reduce((a, b) => a + b) / times.length).toFixed(2) }));
} finally {
  child.kill();
  await child.exited;
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.end();
  rmSync(dataDir, { recursive: true, force: true });
}
