/**
 * Schedules: runs created by a cron expression (5 fields, in a time zone) or once at `run_at`.
 * `run` takes the run-create options of POST /v1/threads/:id/runs except agent_id, input and
 * stream (derived from CreateRunBody, so options added there are accepted here too).
 */
import { t } from "elysia";
import { Enum, Metadata, Timestamp } from "../../../platform/http/models";
import { CreateRunBody } from "../../../runs";

export const ScheduleRunOptions = t.Omit(CreateRunBody, ["agent_id", "input", "stream"], {
  description: "Run-create options applied to every fire (as in POST /v1/threads/:id/runs: metadata, multitask_strategy, …)",
});
export type ScheduleRunOptions = typeof ScheduleRunOptions.static;

export const MisfirePolicy = Enum(["run_once", "skip"], {
  description: "A fire missed while no scheduler ran (more than --schedule-misfire-grace late): run_once catches up with one run, then continues; skip drops it",
});

const Cron = t.String({ minLength: 9, maxLength: 200, description: "5-field cron: minute hour day-of-month month day-of-week (e.g. `0 9 * * mon-fri`)", examples: ["0 9 * * mon-fri", "*/15 * * * *"] });
const TimeZone = t.String({ minLength: 1, maxLength: 64, description: "IANA time zone of the cron expression (default UTC), e.g. Europe/Berlin", examples: ["UTC", "Europe/Berlin"] });
const Input = t.String({ minLength: 1, maxLength: 200_000, description: "The user message of every fire's run" });
const ThreadId = t.String({ maxLength: 64, description: "Every fire runs on this thread; omitted: a new thread per fire" });

export const CreateScheduleBody = t.Object({
  agent_id: t.String({ maxLength: 64 }),
  thread_id: t.Optional(ThreadId),
  cron: t.Optional(Cron),
  timezone: t.Optional(TimeZone),
  run_at: t.Optional(t.String({ format: "date-time", description: "One-shot: the only fire (instead of cron)" })),
  input: t.Optional(Input),
  run: t.Optional(ScheduleRunOptions),
  enabled: t.Optional(t.Boolean({ default: true })),
  misfire_policy: t.Optional(MisfirePolicy),
  metadata: t.Optional(Metadata),
});
export type CreateScheduleInput = typeof CreateScheduleBody.static;

export const UpdateScheduleBody = t.Object({
  agent_id: t.Optional(t.String({ maxLength: 64 })),
  thread_id: t.Optional(t.Nullable(ThreadId)),
  cron: t.Optional(t.Nullable(Cron)),
  timezone: t.Optional(TimeZone),
  run_at: t.Optional(t.Nullable(t.String({ format: "date-time" }))),
  input: t.Optional(t.Nullable(Input)),
  run: t.Optional(ScheduleRunOptions),
  enabled: t.Optional(t.Boolean()),
  misfire_policy: t.Optional(MisfirePolicy),
  metadata: t.Optional(Metadata),
});
export type UpdateScheduleInput = typeof UpdateScheduleBody.static;

export const Schedule = t.Object({
  id: t.String(),
  object: t.Literal("schedule"),
  agent_id: t.String(),
  thread_id: t.Nullable(t.String()),
  cron: t.Nullable(t.String()),
  timezone: t.String(),
  run_at: t.Nullable(Timestamp),
  input: t.Nullable(t.String()),
  run: t.Record(t.String(), t.Any()),
  enabled: t.Boolean(),
  misfire_policy: MisfirePolicy,
  next_run_at: t.Nullable(Timestamp, { description: "The next fire; null when none will come (one-shot fired, disabled)" }),
  last_run_id: t.Nullable(t.String()),
  last_fired_at: t.Nullable(Timestamp),
  metadata: t.Record(t.String(), t.Any()),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type ScheduleOut = typeof Schedule.static;

export const ScheduleFire = t.Object({
  object: t.Literal("schedule.fire"),
  schedule_id: t.String(),
  fire_at: Timestamp,
  status: Enum(["firing", "fired", "skipped", "failed"], { description: "firing: being created (a crash resumes it); skipped: missed with misfire_policy skip; failed: the run create was refused (error)" }),
  run_id: t.Nullable(t.String()),
  thread_id: t.Nullable(t.String()),
  error: t.Nullable(t.Object({ code: t.String(), message: t.String() })),
  created_at: Timestamp,
});
export type ScheduleFireOut = typeof ScheduleFire.static;
export const ScheduleFireList = t.Object({ data: t.Array(ScheduleFire) });
