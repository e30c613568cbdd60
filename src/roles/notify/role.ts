import type { Unsubscribe } from "../../platform/bus";
import { consumeDomainEvents } from "../../platform/event-consumer";
import type { AppPlatform } from "../clients";
import type { RoleInstance } from "../modules";
import { dispatcherSettings, WebhookDispatcher } from "./dispatcher";
import { EventIntake, NotifyService } from "./service";

/** The notify role's code; what it is (deps, uses, rpc) is its row in src/roles/modules.ts. */
export function init(p: AppPlatform): RoleInstance {
  const outbound = { allowPrivate: p.config.allowPrivateTargets };
  const dispatcher = new WebhookDispatcher(p.db, dispatcherSettings(p.config), p.log, outbound, p.tracing);
  const intake = new EventIntake(p.db, () => dispatcher.poke());
  let stopConsumer: Unsubscribe | undefined;
  return {
    service: new NotifyService(p.db, outbound, p.config.idempotencyStaleMs),
    async start() {
      stopConsumer = await consumeDomainEvents(
        { bus: p.bus, db: p.db, log: p.log, database: p.database, tracing: p.tracing },
        {
          durable: "notify",
          replayTypes: null,
          handle: (event) => intake.intake(event),
          retryWarning: "notify: event intake failed; will retry",
          spanName: (event) => `notify intake ${event.type}`,
        },
      );
      dispatcher.start();
    },
    async stop() {
      stopConsumer?.();
      await dispatcher.stop();
    },
  };
}
