import { NOTIFY_RPC } from "./contract";
import type { Unsubscribe } from "../../platform/bus";
import { consumeDomainEvents } from "../../platform/event-consumer";
import type { RoleModule } from "../modules";
import { dispatcherSettings, WebhookDispatcher } from "./dispatcher";
import { EventIntake, NotifyService } from "./service";

export const notifyRole: RoleModule = {
  name: "notify",
  rpc: NOTIFY_RPC,
  deps: ["database", "bus"],
  uses: [],
  description: "webhooks (signed, retried, persisted deliveries) and the in-app inbox; the /v1/ws fan-out is served by gateways",
  init(p) {
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
  },
};
