/**
 * Compiled-binary deployments for the busy-thread and schedule tests: the embedded default
 * (one process, PGlite, a data dir that survives kill -9) or split roles on real PostgreSQL +
 * NATS + Redis (each role its own process, several gateways/agents/workers). Every process of a
 * deployment gets the same extra flags; `restart` reuses a member's exact arguments.
 */
import { apiClient } from "./api";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./backends";
import { startChild, type ChildProcess } from "./binary";
import { TEST_INTERNAL_KEY, TEST_JWT_SECRET } from "./harness";
import { TEST_RUN_ENV } from "./run-suite";
import { runApi } from "./testkit";

export interface Member {
  role: string;
  args: string[];
  child: ChildProcess;
}

export interface Deployment {
  /** Gateways (the embedded process is its own gateway). */
  gateways: Member[];
  members: Member[];
  databaseUrl: string | null;
  /** Starts the member again with its arguments (plus `extra` flags). */
  restart(m: Member, extra?: string[]): Promise<Member>;
  stop(): Promise<void>;
}


/** An API client on one gateway, signed up on an unlimited plan. */
export async function apiOn(base: string, token?: string) {
  const request = apiClient(base).call;
  if (!token) {
    const signup = await request("POST", "/v1/auth/signup", { body: { email: `${uniqueName("u")}@example.com`, password: "correct horse battery" } });
    if (signup.status !== 201) throw new Error(`signup ${signup.status} ${JSON.stringify(signup.body)}`);
    token = signup.body.access_token as string;
    const plan = await request("PUT", "/v1/billing/plan", { token, body: { plan: "enterprise" } });
    if (plan.status !== 200) throw new Error(`plan ${plan.status}`);
  }
  return { token, request, ...runApi({ url: base, request }, token) };
}

async function startMember(role: string, args: string[], env: Record<string, string>): Promise<Member> {
  const child = await startChild(args, { env: { ...TEST_RUN_ENV, LOG_LEVEL: "error", ...env } });
  return { role, args, child };
}

export async function startEmbedded(opts: { modelUrl: string; flags?: string[]; env?: Record<string, string>; dataDir?: string }): Promise<Deployment> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "agentos-dep-"));
  const args = ["serve", `--data-dir=${dataDir}`, `--model-base-url=${opts.modelUrl}`, ...(opts.flags ?? [])];
  const env = opts.env ?? {};
  const member = await startMember("all", args, env);
  const dep: Deployment = {
    gateways: [member],
    members: [member],
    databaseUrl: null,
    async restart(m, extra = []) {
      const again = await startMember(m.role, [...m.args, ...extra], env);
      dep.members[dep.members.indexOf(m)] = again;
      dep.gateways = [again];
      return again;
    },
    async stop() {
      await Promise.all(dep.members.map((m) => m.child.stop("SIGKILL").catch(() => 0)));
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return dep;
}

/** Split roles on real backends: `layout` lists the roles of each process after the first (auth,memory,tools,billing). */
export async function startSplit(opts: { modelUrl: string; layout: string[]; flags?: string[]; env?: Record<string, string> }): Promise<Deployment> {
  const db = await createTestDatabase();
  const namespace = uniqueName("t");
  const base = [
    "serve", `--database-url=${db.url}`, `--nats-url=${REAL_URLS.nats}`, `--redis-url=${REAL_URLS.redis}`, `--namespace=${namespace}`,
    `--jwt-secret=${TEST_JWT_SECRET}`, `--internal-key=${TEST_INTERNAL_KEY}`, `--model-base-url=${opts.modelUrl}`, ...(opts.flags ?? []),
  ];
  const env = opts.env ?? {};
  const at = (role: string) => [...base.slice(0, 1), `--role=${role}`, ...base.slice(1)];
  // One process applies the migrations first; the others then find the schema ready.
  const members = [await startMember("auth,memory,tools,billing", at("auth,memory,tools,billing"), env)];
  members.push(...(await Promise.all(opts.layout.map((role) => startMember(role, at(role), env)))));
  const dep: Deployment = {
    members,
    gateways: members.filter((m) => m.role.split(",").includes("gateway")),
    databaseUrl: db.url,
    async restart(m, extra = []) {
      const again = await startMember(m.role, [...m.args, ...extra], env);
      dep.members[dep.members.indexOf(m)] = again;
      dep.gateways = dep.members.filter((x) => x.role.split(",").includes("gateway"));
      return again;
    },
    async stop() {
      await Promise.all(dep.members.map((m) => m.child.stop("SIGKILL").catch(() => 0)));
      await db.drop().catch(() => {});
      await dropNatsNamespace(namespace).catch(() => {});
      await dropRedisNamespace(namespace).catch(() => {});
    },
  };
  return dep;
}
