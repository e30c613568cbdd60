/**
 * The scheduler loop of the agents role: every --schedule-interval it fires the due schedules
 * (SchedulesService.fireDue). Every agents replica runs one; PostgreSQL decides which fire
 * happens (see the service), so more replicas add availability, never duplicate runs.
 */
import type { Logger } from "../../../platform/logging";
import { RetryPacer } from "../../../platform/outage";
import type { SchedulesService } from "./service";

export function startScheduler(opts: { schedules: SchedulesService; intervalMs: number; log: Logger }) {
  let stopped = false;
  let wake: (() => void) | null = null;
  const pacer = new RetryPacer("scheduler", opts.log, opts.intervalMs, Math.max(5_000, opts.intervalMs));
  const loop = (async () => {
    while (!stopped) {
      let delay = opts.intervalMs;
      try {
        const fired = await opts.schedules.fireDue();
        if (fired) opts.log.info("scheduler", { fired });
        pacer.succeeded();
      } catch (err) {
        if (!stopped) delay = pacer.failed(err);
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, delay);
      });
    }
  })();
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
