/** The schedules controller: /v1/schedules (served by the agents role, which runs the scheduler). */
import { Elysia, t } from "elysia";
import type { AuthGuard } from "../../../platform/http/auth-guard";
import { idempotencyKeys } from "../../../platform/http/idempotency";
import { errors, IdParam, PageQuery } from "../../../platform/http/models";
import { Page } from "../../../platform/http/models";
import type { AppPlatform } from "../../clients";
import { CreateScheduleBody, Schedule, ScheduleFireList, UpdateScheduleBody } from "./model";

const ScheduleIdParam = IdParam("sch", "Schedule id (sch_…)");

export function schedulesController(p: AppPlatform, guard: AuthGuard) {
  const api = () => p.clients.agents;
  return new Elysia({ name: "schedules-controller" })
    .use(guard.plugin)
    .use(idempotencyKeys)
    .post(
      "/schedules",
      async ({ principal, body, idempotency, set }) => {
        const r = await api().createSchedule(principal.orgId, body, idempotency);
        set.status = r.status;
        return r.body;
      },
      {
        auth: true, body: CreateScheduleBody, idempotent: true, response: { 201: Schedule, ...errors(400, 401, 404, 409) },
        detail: { tags: ["schedules"], summary: "Create a schedule: runs of an agent by cron (5 fields, time zone) or once at run_at" },
      },
    )
    .get("/schedules", ({ principal, query }) => api().listSchedules(principal.orgId, query), {
      auth: true, query: PageQuery, response: { 200: Page(Schedule), ...errors(400, 401) }, detail: { tags: ["schedules"], summary: "List schedules" },
    })
    .get("/schedules/:id", ({ principal, params }) => api().getSchedule(principal.orgId, params.id), {
      auth: true, params: ScheduleIdParam, response: { 200: Schedule, ...errors(401, 404) }, detail: { tags: ["schedules"], summary: "Get a schedule (next_run_at, last_run_id)" },
    })
    .patch("/schedules/:id", ({ principal, params, body }) => api().updateSchedule(principal.orgId, params.id, body), {
      auth: true, params: ScheduleIdParam, body: UpdateScheduleBody, response: { 200: Schedule, ...errors(400, 401, 404) },
      detail: { tags: ["schedules"], summary: "Update a schedule; next_run_at is recomputed from now" },
    })
    .delete("/schedules/:id", ({ principal, params }) => api().deleteSchedule(principal.orgId, params.id), {
      auth: true, params: ScheduleIdParam, response: { 200: t.Object({ id: t.String(), object: t.Literal("schedule"), deleted: t.Literal(true) }), ...errors(401, 404) },
      detail: { tags: ["schedules"], summary: "Delete a schedule (its runs stay)" },
    })
    .get("/schedules/:id/fires", ({ principal, params }) => api().listScheduleFires(principal.orgId, params.id), {
      auth: true, params: ScheduleIdParam, response: { 200: ScheduleFireList, ...errors(401, 404) },
      detail: { tags: ["schedules"], summary: "The schedule's last 100 fires, newest first: status, run_id, error" },
    });
}
