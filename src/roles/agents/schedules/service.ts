/**
 * Schedules (the agents role): CRUD, the next fire of each, and `fireDue`, which the scheduler
 * loop (./scheduler.ts) calls on every agents replica. A fire happens once across replicas and
 * restarts: its row in schedule_fires (primary key schedule id + fire time) is claimed first,
 * then the thread and the run are created under idempotency keys derived from that same pair
 * (`schedule:<id>:<fire time>`), whose stored responses commit with the thread and the run. A
 * replica that crashes anywhere in between leaves a `firing` row that the next tick (any
 * replica) completes: the keys replay what was already created, so never a second run, and
 * a claim without a committed run is taken over after --idempotency-stale, so never zero.
 */
import { and, asc, desc, eq, isNotNull, lte, sql } from "drizzle-orm";
import { agents, scheduleFires, schedules, threads } from "../../../../schema";
import { assertTimeZone, CronError, nextFire, parseCron } from "../../../platform/cron";
import type { Db, DbOrTx } from "../../../platform/db";
import { iso, pageQuery, toPage, type PageOf, type PageRequest } from "../../../platform/db/pagination";
import { AppError, badRequest, notFound } from "../../../platform/errors";
import { withIdempotency, type IdempotencyScope, type IdempotentResult } from "../../../platform/idempotency";
import { isId, newId } from "../../../platform/ids";
import type { Logger } from "../../../platform/logging";
import type { CreateRunInput, RunOut } from "../../../runs";
import type { CreateScheduleInput, ScheduleFireOut, ScheduleOut, ScheduleRunOptions, UpdateScheduleInput } from "./model";

type ScheduleRow = typeof schedules.$inferSelect;
type FireRow = typeof scheduleFires.$inferSelect;

export interface SchedulesDeps {
  db: Db;
  log: Logger;
  /** The run API (quota checks included): each fire goes through it like a client's create. */
  createThread: (orgId: string, input: { metadata?: Record<string, unknown> }, idempotency: IdempotencyScope) => Promise<IdempotentResult<{ id: string }>>;
  createRun: (orgId: string, threadId: string, input: CreateRunInput, idempotency: IdempotencyScope) => Promise<IdempotentResult<RunOut>>;
  idempotencyStaleMs: number;
  /** A fire later than this is "missed" and follows the schedule's misfire_policy. */
  misfireGraceMs: number;
}

const scheduleOut = (s: ScheduleRow): ScheduleOut => ({
  id: s.id,
  object: "schedule",
  agent_id: s.agentId,
  thread_id: s.threadId,
  cron: s.cron,
  timezone: s.timezone,
  run_at: iso(s.runAt),
  input: s.input,
  run: s.runOptions,
  enabled: s.enabled,
  misfire_policy: s.misfirePolicy as ScheduleOut["misfire_policy"],
  next_run_at: iso(s.nextRunAt),
  last_run_id: s.lastRunId,
  last_fired_at: iso(s.lastFiredAt),
  metadata: s.metadata,
  created_at: s.createdAt.toISOString(),
  updated_at: s.updatedAt.toISOString(),
});

const fireOut = (f: FireRow): ScheduleFireOut => ({
  object: "schedule.fire",
  schedule_id: f.scheduleId,
  fire_at: f.fireAt.toISOString(),
  status: f.status as ScheduleFireOut["status"],
  run_id: f.runId,
  thread_id: f.threadId,
  error: f.error ?? null,
  created_at: f.createdAt.toISOString(),
});

interface Timing {
  cron: string | null;
  timezone: string;
  runAt: Date | null;
  enabled: boolean;
}

/** The first fire after `after` (null: none), validating the timing; errors name the field. */
export function nextRunAt(s: Timing, after: Date, fired = false): Date | null {
  if ((s.cron === null) === (s.runAt === null)) throw badRequest("invalid_schedule", "Give exactly one of `cron` (recurring) and `run_at` (one-shot).", { fields: ["cron", "run_at"] });
  try {
    assertTimeZone(s.timezone);
  } catch (err) {
    throw badRequest("invalid_timezone", `timezone: ${(err as Error).message}; use an IANA name such as Europe/Berlin.`, { field: "timezone" });
  }
  if (s.runAt && Number.isNaN(s.runAt.getTime())) throw badRequest("invalid_run_at", "run_at: not a valid instant; use ISO 8601 such as 2026-01-31T09:00:00Z.", { field: "run_at" });
  if (s.runAt) return s.enabled && !fired ? s.runAt : null;
  let spec;
  try {
    spec = parseCron(s.cron!);
  } catch (err) {
    if (err instanceof CronError) throw badRequest("invalid_cron", `cron: ${err.message}.`, { field: "cron" });
    throw err;
  }
  const next = nextFire(spec, s.timezone, after.getTime());
  if (next === null) throw badRequest("invalid_cron", "cron: the expression never fires (e.g. 30 February).", { field: "cron" });
  return s.enabled ? new Date(next) : null;
}

export class SchedulesService {
  constructor(private deps: SchedulesDeps) {}

  private get db() {
    return this.deps.db;
  }

  async createSchedule(orgId: string, input: CreateScheduleInput, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<ScheduleOut>> {
    return withIdempotency(this.db, { orgId, scope: idempotency, body: input, staleClaimMs: this.deps.idempotencyStaleMs }, async (commit) => {
      const timing = { cron: input.cron ?? null, timezone: input.timezone ?? "UTC", runAt: input.run_at ? new Date(input.run_at) : null, enabled: input.enabled ?? true };
      const next = nextRunAt(timing, new Date());
      await this.assertTargets(orgId, input.agent_id, input.thread_id ?? null);
      const body = await this.db.transaction(async (tx) => {
        const [row] = await tx
          .insert(schedules)
          .values({
            id: newId("sch"), orgId, agentId: input.agent_id, threadId: input.thread_id ?? null, cron: timing.cron, timezone: timing.timezone, runAt: timing.runAt,
            input: input.input ?? null, runOptions: input.run ?? {}, enabled: timing.enabled, misfirePolicy: input.misfire_policy ?? "run_once", nextRunAt: next, metadata: input.metadata ?? {},
          })
          .returning();
        await commit(tx, { status: 201, body: scheduleOut(row) });
        return scheduleOut(row);
      });
      return { status: 201, body };
    });
  }

  async listSchedules(orgId: string, page: PageRequest): Promise<PageOf<ScheduleOut>> {
    const q = pageQuery(schedules.id, page, eq(schedules.orgId, orgId));
    const rows = await this.db.select().from(schedules).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q.pageSize, scheduleOut);
  }

  async getSchedule(orgId: string, id: string): Promise<ScheduleOut> {
    return scheduleOut(await this.scheduleRow(orgId, id));
  }

  async updateSchedule(orgId: string, id: string, input: UpdateScheduleInput): Promise<ScheduleOut> {
    const current = await this.scheduleRow(orgId, id);
    const timing: Timing = {
      cron: input.cron !== undefined ? input.cron : input.run_at ? null : current.cron,
      timezone: input.timezone ?? current.timezone,
      runAt: input.run_at !== undefined ? (input.run_at ? new Date(input.run_at) : null) : input.cron ? null : current.runAt,
      enabled: input.enabled ?? current.enabled,
    };
    // A one-shot whose instant did not change and that already fired stays done.
    const fired = timing.runAt !== null && current.runAt?.getTime() === timing.runAt.getTime() && current.lastFiredAt !== null;
    const next = nextRunAt(timing, new Date(), fired);
    const agentId = input.agent_id ?? current.agentId;
    const threadId = input.thread_id !== undefined ? input.thread_id : current.threadId;
    if (input.agent_id !== undefined || input.thread_id) await this.assertTargets(orgId, agentId, threadId);
    const [row] = await this.db
      .update(schedules)
      .set({
        agentId, threadId, cron: timing.cron, timezone: timing.timezone, runAt: timing.runAt, enabled: timing.enabled, nextRunAt: next,
        input: input.input !== undefined ? input.input : undefined, runOptions: input.run, misfirePolicy: input.misfire_policy, metadata: input.metadata, updatedAt: new Date(),
      })
      .where(and(eq(schedules.id, id), eq(schedules.orgId, orgId)))
      .returning();
    if (!row) throw notFound("schedule", id);
    return scheduleOut(row);
  }

  async deleteSchedule(orgId: string, id: string): Promise<{ id: string; object: "schedule"; deleted: true }> {
    if (!isId("sch", id)) throw notFound("schedule", id);
    const gone = await this.db.delete(schedules).where(and(eq(schedules.id, id), eq(schedules.orgId, orgId))).returning({ id: schedules.id });
    if (!gone.length) throw notFound("schedule", id);
    return { id, object: "schedule", deleted: true };
  }

  /** The schedule's last 100 fires, newest first. */
  async listScheduleFires(orgId: string, id: string): Promise<{ data: ScheduleFireOut[] }> {
    await this.scheduleRow(orgId, id);
    const rows = await this.db.select().from(scheduleFires).where(and(eq(scheduleFires.scheduleId, id), eq(scheduleFires.orgId, orgId))).orderBy(desc(scheduleFires.fireAt)).limit(100);
    return { data: rows.map(fireOut) };
  }

  // ------------------------------------------------------------------ firing

  /** Fires every due schedule (at most `limit`); returns how many fires completed. */
  async fireDue(limit = 50): Promise<number> {
    const due = await this.db
      .select()
      .from(schedules)
      .where(and(eq(schedules.enabled, true), isNotNull(schedules.nextRunAt), lte(schedules.nextRunAt, sql`now()`)))
      .orderBy(asc(schedules.nextRunAt))
      .limit(limit);
    // Replicas see the same due list: each walks it in its own order, so they mostly fire different schedules.
    for (let i = due.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [due[i], due[j]] = [due[j], due[i]];
    }
    let fired = 0;
    for (const s of due) {
      try {
        if (await this.fire(s)) fired++;
      } catch (err) {
        // Transient (database, RPC): the fire stays due (or `firing`) and the next tick retries it.
        this.deps.log.warn("schedule fire failed; retrying at the next tick", { schedule_id: s.id, error: err });
      }
    }
    return fired;
  }

  /** One fire of a due schedule; false when another replica is creating it right now. */
  private async fire(s: ScheduleRow): Promise<boolean> {
    const fireAt = s.nextRunAt!;
    const missed = Date.now() - fireAt.getTime() > this.deps.misfireGraceMs;
    const skip = missed && s.misfirePolicy === "skip";
    // A fire that is already decided (skipped, or done by another replica) and the schedule's
    // move past it commit together: no reader sees the fire recorded and the schedule not moved on.
    const claim = await this.db.transaction(async (tx) => {
      await tx.insert(scheduleFires).values({ scheduleId: s.id, fireAt, orgId: s.orgId, status: skip ? "skipped" : "firing", threadId: s.threadId }).onConflictDoNothing();
      const [row] = await tx.select().from(scheduleFires).where(and(eq(scheduleFires.scheduleId, s.id), eq(scheduleFires.fireAt, fireAt)));
      if (row.status !== "firing") await this.advance(tx, s, fireAt, row);
      return row;
    });
    if (claim.status !== "firing") return claim.status === "fired";
    let outcome: Pick<FireRow, "status" | "runId" | "threadId" | "error">;
    try {
      const run = await this.createFireRun(s, fireAt);
      outcome = { status: "fired", runId: run.id, threadId: run.thread_id, error: null };
    } catch (err) {
      if (err instanceof AppError && err.code === "request_in_progress") return false;
      // Refused for good (quota, agent deleted, thread busy, invalid options): recorded, the schedule moves on.
      if (!(err instanceof AppError) || err.status >= 500) throw err;
      outcome = { status: "failed", runId: null, threadId: s.threadId, error: { code: err.code, message: err.message } };
    }
    return this.db.transaction(async (tx) => {
      const [done] = await tx
        .update(scheduleFires)
        .set(outcome)
        .where(and(eq(scheduleFires.scheduleId, s.id), eq(scheduleFires.fireAt, fireAt), eq(scheduleFires.status, "firing")))
        .returning();
      return this.advance(tx, s, fireAt, done ?? claim);
    });
  }

  /** The fire's thread (a new one unless the schedule has one) and run, each under a key of this fire. */
  private async createFireRun(s: ScheduleRow, fireAt: Date): Promise<RunOut> {
    const key = `schedule:${s.id}:${fireAt.toISOString()}`;
    let threadId = s.threadId;
    if (!threadId) {
      const thread = await this.deps.createThread(s.orgId, { metadata: { schedule_id: s.id } }, { key: `${key}:thread`, route: "POST /v1/threads" });
      threadId = thread.body.id;
    }
    const options = s.runOptions as ScheduleRunOptions;
    const input: CreateRunInput = { ...options, agent_id: s.agentId, ...(s.input !== null ? { input: s.input } : {}) };
    return (await this.deps.createRun(s.orgId, threadId, input, { key, route: "POST /v1/threads/:id/runs" })).body;
  }

  /** Moves the schedule past this fire (compare-and-set on next_run_at: one replica wins). */
  private async advance(db: DbOrTx, s: ScheduleRow, fireAt: Date, fire: FireRow): Promise<boolean> {
    // run_once: one catch-up run for everything missed, then the next fire after now.
    const next = s.runAt ? null : nextRunAt(s, new Date(Math.max(Date.now(), fireAt.getTime())));
    const ran = fire.status === "fired" || fire.status === "failed";
    await db
      .update(schedules)
      .set({ nextRunAt: next, updatedAt: new Date(), ...(ran ? { lastFiredAt: fireAt } : {}), ...(fire.runId ? { lastRunId: fire.runId } : {}) })
      .where(and(eq(schedules.id, s.id), eq(schedules.nextRunAt, fireAt)));
    return fire.status === "fired";
  }

  private async assertTargets(orgId: string, agentId: string, threadId: string | null) {
    const [agent] = isId("agt", agentId) ? await this.db.select({ id: agents.id }).from(agents).where(and(eq(agents.id, agentId), eq(agents.orgId, orgId))) : [];
    if (!agent) throw notFound("agent", agentId);
    if (threadId === null) return;
    const [thread] = isId("thr", threadId) ? await this.db.select({ id: threads.id }).from(threads).where(and(eq(threads.id, threadId), eq(threads.orgId, orgId))) : [];
    if (!thread) throw notFound("thread", threadId);
  }

  private async scheduleRow(orgId: string, id: string): Promise<ScheduleRow> {
    if (!isId("sch", id)) throw notFound("schedule", id);
    const [row] = await this.db.select().from(schedules).where(and(eq(schedules.id, id), eq(schedules.orgId, orgId)));
    if (!row) throw notFound("schedule", id);
    return row;
  }
}
