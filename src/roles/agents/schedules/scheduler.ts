/**
 * The scheduler loop of the agents role: every --schedule-interval it fires the due schedules
 * (SchedulesService.fireDue). Every agents replica runs one; PostgreSQL decides which fire
 * happens (see the service), so more replicas add availability, never duplicate runs.
 */
import type { Logger } from "../../../platform/logging";
import { pacedLoop } from "../../../platform/outage";
import type { SchedulesService } from "./service";

export function startScheduler(opts: { schedules: SchedulesService; intervalMs: number; log: Logger }) {
  return pacedLoop("scheduler", opts.log, opts.intervalMs, async () => {
    const fired = await opts.schedules.fireDue();
    if (fired) opts.log.info("scheduler", { fired });
  });
}
