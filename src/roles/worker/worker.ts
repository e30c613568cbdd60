/**
 * The worker: takes run doorbells from the RUNS work queue (JetStream with explicit ack and
 * `working()` heartbeats, or the in-process queue), leases the run in PostgreSQL and
 * executes it (loop.ts). The lease, not the queue, decides who runs a run: a duplicate or
 * redelivered doorbell for a run leased by a live worker is dropped, one whose lease expired
 * is resumed from its last persisted step.
 */
import { hostname } from "node:os";
import { eq } from "drizzle-orm";
import { runs } from "../../../schema";
import type { DurableJob, JobOutcome, Unsubscribe } from "../../platform/bus";
import { AppError } from "../../platform/errors";
import { holdThroughDatabaseOutage, outageOf } from "../../platform/outage";
import { createOpenAIProvider } from "../../platform/model/openai";
import { outboundFetch } from "../../platform/net/outbound";
import { splitModel, type ModelRoute } from "../agents/contract";
import { isAbortError, type ModelProvider } from "../../platform/model/types";
import type { AppPlatform } from "../clients";
import { isTerminal, LeaseLostError, releaseAllLeases, runCancelSubject, RUNS_STREAM, RUNS_SUBJECT, runSettings, RunStore, startReconciler, WORKER_DURABLE, type RunDoorbell, type RunSettings } from "../../runs";
import { type AbortReason, AgentToolsSeen, RunExecution } from "./loop";

/** Another role unavailable (split deployment): retry the run later, up to this many attempts. */
const MAX_DEPENDENCY_ATTEMPTS = 10;

interface Active {
  controller: AbortController;
  done: Promise<void>;
}

export class RunWorker {
  readonly owner = `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`;
  readonly settings: RunSettings;
  readonly store: RunStore;
  private model: ModelProvider;
  /** Clients of organizations' providers, by provider id and version (a re-created provider gets a new client). */
  private providerClients = new Map<string, ModelProvider>();
  private active = new Map<string, Active>();
  private agentTools = new AgentToolsSeen();
  private unsubscribe: Unsubscribe | null = null;
  private reconciler: { stop(): Promise<void> } | null = null;

  constructor(
    private p: AppPlatform,
    opts: { settings?: RunSettings; model?: ModelProvider } = {},
  ) {
    this.settings = opts.settings ?? runSettings(p.config);
    this.store = new RunStore(p.db, () => p.bus, p.database.oneTrip);
    this.model = opts.model ?? createOpenAIProvider({
      baseUrl: p.config.modelBaseUrl,
      apiKey: p.config.modelApiKey,
      timeoutMs: this.settings.modelTimeoutMs,
      maxRetries: this.settings.modelMaxRetries,
      backoffBaseMs: this.settings.modelBackoffMs,
    });
  }

  async start() {
    // Bun's fetch keeps at most 256 requests in flight (BUN_CONFIG_MAX_HTTP_REQUESTS, read at
    // start-up): beyond that, model and tool calls of concurrent runs queue inside the runtime.
    const fetchLimit = this.p.config.maxHttpRequests;
    if (this.settings.workerConcurrency > fetchLimit) {
      this.p.log.warn("worker concurrency exceeds the runtime's concurrent HTTP request limit; set BUN_CONFIG_MAX_HTTP_REQUESTS", {
        worker_concurrency: this.settings.workerConcurrency,
        max_http_requests: fetchLimit,
      });
    }
    await this.p.bus.ensureStream(RUNS_STREAM);
    if (this.p.database.kind === "pglite") await releaseAllLeases(this.store);
    this.unsubscribe = await this.p.bus.consume<RunDoorbell>(RUNS_STREAM.name, (job) => this.handle(job), {
      durable: WORKER_DURABLE,
      filterSubject: RUNS_SUBJECT,
      concurrency: this.settings.workerConcurrency,
      ackWaitMs: this.settings.ackWaitMs,
      maxDeliver: 50,
    });
    this.reconciler = startReconciler({
      store: this.store,
      bus: this.p.bus,
      log: this.p.log,
      settings: this.settings,
      onExpired: (n) => this.p.metrics.runs.inc({ status: "expired" }, n),
    });
  }

  /** Graceful stop: no new runs; in-flight runs finish within the drain budget, then are handed back. */
  async stop() {
    this.unsubscribe?.();
    await this.reconciler?.stop();
    const budget = Math.max(1000, this.p.config.shutdownTimeoutMs * 0.6);
    await Promise.race([Promise.all([...this.active.values()].map((a) => a.done)), Bun.sleep(budget)]);
    for (const a of this.active.values()) a.controller.abort("shutdown" satisfies AbortReason);
    await Promise.all([...this.active.values()].map((a) => a.done));
  }

  /**
   * The model of one run execution: `<provider>/<model>` of an organization's provider goes to
   * that server as `<model>` (the route is asked of the agents role once, while the run loads);
   * anything else to the default provider, without asking. The reply's model comes back as
   * `<provider>/<served model>`, so usage is recorded and priced per provider.
   */
  private routedModel(orgId: string, model: string): ModelProvider {
    // No provider part: the default provider, whatever the organization has (nothing to ask).
    if (!splitModel(model)) return this.model;
    const resolve = () => {
      const asked = this.p.clients.agents.resolveModel(orgId, model);
      asked.catch(() => {}); // awaited (and reported) by the first call
      return asked;
    };
    // Asked while the run loads, off the path to its first model call.
    let route: Promise<ModelRoute> | undefined = resolve();
    return {
      complete: async (req) => {
        route ??= resolve();
        const r = await route.catch((err) => {
          route = undefined; // asked again at the next call (e.g. after the agents role was unreachable)
          throw err;
        });
        if (!r.provider) return this.model.complete(req);
        const reply = await this.providerClient(r.provider).complete({ ...req, model: r.model });
        return { ...reply, model: `${r.provider.name}/${reply.model || r.model}` };
      },
    };
  }

  /**
   * A client of an organization's provider: the same retries and timeouts as the default one,
   * but every request goes through the SSRF guard (the base URL is the tenant's choice).
   */
  private providerClient(provider: NonNullable<ModelRoute["provider"]>): ModelProvider {
    const key = `${provider.id}@${provider.updated_at}`;
    let client = this.providerClients.get(key);
    if (!client) {
      const policy = { allowPrivate: this.p.config.allowPrivateTargets };
      const guarded = async (url: string | URL | Request, init?: RequestInit) => {
        const headers = Object.fromEntries(new Headers(init?.headers).entries());
        const { response } = await outboundFetch(String(url), { method: init?.method ?? "POST", headers, body: init?.body as string | undefined, signal: init?.signal ?? AbortSignal.timeout(this.settings.modelTimeoutMs) }, policy);
        return response;
      };
      client = createOpenAIProvider({
        baseUrl: provider.base_url,
        apiKey: provider.api_key ?? undefined,
        timeoutMs: this.settings.modelTimeoutMs,
        maxRetries: this.settings.modelMaxRetries,
        backoffBaseMs: this.settings.modelBackoffMs,
        fetch: guarded as typeof fetch,
      });
      if (this.providerClients.size > 1000) this.providerClients.clear();
      this.providerClients.set(key, client);
    }
    return client;
  }

  activeRuns() {
    return this.active.size;
  }

  private async handle(job: DurableJob<RunDoorbell>): Promise<JobOutcome> {
    const runId = job.data?.run_id;
    if (typeof runId !== "string") return "term";
    if (this.active.has(runId)) return "ack"; // a duplicate doorbell of a run this process executes
    let run;
    try {
      run = await this.store.acquire(runId, this.owner, this.settings.leaseMs);
    } catch (err) {
      if (await holdThroughDatabaseOutage(err, this.p.database, () => job.working())) return { nak: 0 };
      throw err;
    }
    // Not runnable, or leased by a live worker: nothing to do (if that worker dies, the reconciler re-rings).
    if (!run) return "ack";
    const controller = new AbortController();
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    this.active.set(runId, { controller, done });
    try {
      return await this.execute(run, job, controller);
    } finally {
      this.active.delete(runId);
      resolveDone();
    }
  }

  private async execute(run: Awaited<ReturnType<RunStore["acquire"]>> & object, job: DurableJob<RunDoorbell>, controller: AbortController): Promise<JobOutcome> {
    const abort = (reason: AbortReason) => {
      if (!controller.signal.aborted) controller.abort(reason);
    };
    const stopCancelWatch = this.p.bus.subscribe(runCancelSubject(this.p.bus, run.id), () => abort("cancel"));
    const renewer = setInterval(async () => {
      job.working();
      try {
        const row = await this.store.renew(run.id, this.owner, this.settings.leaseMs);
        if (!row) abort("lease_lost");
        else if (row.status === "cancelling") abort("cancel");
      } catch (err) {
        if (!outageOf(err)) this.p.log.warn("lease renewal failed", { run_id: run.id, error: err });
      }
    }, Math.max(200, this.settings.leaseMs / 3));
    const execution = new RunExecution(
      {
        store: this.store,
        log: this.p.log,
        metrics: this.p.metrics,
        model: this.routedModel(run.orgId, run.model),
        memory: () => this.p.clients.memory,
        tools: () => this.p.clients.tools,
        auth: () => this.p.clients.auth,
        billing: () => this.p.clients.billing,
        deltaFlushMs: this.settings.deltaFlushMs,
        agentTools: this.agentTools,
        toolCallConcurrency: this.settings.toolCallConcurrency,
        tracing: this.p.tracing,
      },
      run,
      this.owner,
      controller.signal,
    );
    try {
      if (run.status === "cancelling") await execution.cancel();
      else if (this.p.tracing.enabled) {
        // One span per execution attempt, a child of the request that created the run.
        const attributes = { "agentos.run_id": run.id, "agentos.agent_id": run.agentId, "agentos.attempt": run.attempts };
        await this.p.tracing.inSpan("run", { parent: run.traceparent ?? null, kind: "consumer", attributes }, () => execution.execute());
      } else await execution.execute();
      return "ack";
    } catch (err) {
      return await this.afterFailure(err, job, run.id, run.attempts, controller.signal, execution);
    } finally {
      clearInterval(renewer);
      stopCancelWatch();
      // A run that is still ours and not finished (e.g. shutdown) is handed back at once.
      if (!execution.finished) await this.releaseIfUnfinished(run.id);
    }
  }

  private async afterFailure(err: unknown, job: DurableJob<RunDoorbell>, runId: string, attempts: number, signal: AbortSignal, execution: RunExecution): Promise<JobOutcome> {
    const reason = signal.aborted ? (signal.reason as AbortReason) : null;
    if (reason === "lease_lost" || err instanceof LeaseLostError) return "ack";
    if (reason === "shutdown") return { nak: 0 };
    if (reason === "cancel" && (isAbortError(err) || err instanceof LeaseLostError)) {
      await execution.cancel().catch((e) => this.p.log.warn("cancel write failed", { run_id: runId, error: e }));
      return "ack";
    }
    if (reason === "cancel") {
      await execution.cancel().catch(() => {});
      return "ack";
    }
    // The database went away mid-run: nothing is lost (every step boundary is a transaction).
    // Wait for it, then hand the run back and take it again: it resumes from its last step.
    if (await holdThroughDatabaseOutage(err, this.p.database, () => job.working(), { signal })) {
      this.p.log.warn("run paused while the database was unavailable; resuming", { run_id: runId });
      return { nak: 0 };
    }
    // Another role unreachable (split deployment): retry later rather than fail the run.
    if (err instanceof AppError && (err.status === 503 || err.status === 504) && attempts < MAX_DEPENDENCY_ATTEMPTS) {
      this.p.log.warn("run paused: a dependency is unavailable", { run_id: runId, error: err.message, attempt: attempts });
      return { nak: 2000 };
    }
    this.p.log.error("run failed unexpectedly", { run_id: runId, error: err, stack: (err as Error)?.stack });
    try {
      const code = err instanceof AppError ? err.code : "internal_error";
      const message = err instanceof AppError ? err.message : `The run stopped on an internal error: ${(err as Error)?.message ?? err}`;
      await execution.fail(code, message);
      return "ack";
    } catch {
      return { nak: 2000 }; // e.g. the database is down: the lease expires and the run is retried
    }
  }

  private async releaseIfUnfinished(runId: string) {
    try {
      const [row] = await this.p.db.select({ status: runs.status, owner: runs.leaseOwner }).from(runs).where(eq(runs.id, runId));
      if (row && row.owner === this.owner && !isTerminal(row.status)) await this.store.release(runId, this.owner);
    } catch (err) {
      this.p.log.warn("lease release failed; it will expire", { run_id: runId, error: err });
    }
  }
}


