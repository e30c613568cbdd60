import { NOTIFY_RPC } from "./contract";
import type { JobOutcome, Unsubscribe } from "../../platform/bus";
import { holdThroughDatabaseOutage } from "../../platform/outage";
import { EMBEDDED_REPLAY_WINDOW_MS, EVENTS_STREAM, relayedSince, type DomainEvent } from "../../platform/outbox";
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
        await p.bus.ensureStream(EVENTS_STREAM);
        if (p.bus.kind === "memory") {
          // The in-process stream did not survive a restart: take in the recent window again (idempotent).
          for (const event of await relayedSince(p.db, new Date(Date.now() - EMBEDDED_REPLAY_WINDOW_MS), null)) await intake.intake(event);
        }
        stopConsumer = await p.bus.consume<DomainEvent>(
          EVENTS_STREAM.name,
          async (job): Promise<JobOutcome> => {
            const event = job.data;
            if (!event || typeof event.id !== "string" || typeof event.org_id !== "string" || typeof event.type !== "string") return "term";
            try {
              if (p.tracing.enabled) {
                await p.tracing.inSpan(`notify intake ${event.type}`, { parent: job.headers.traceparent ?? null, kind: "consumer", attributes: { "agentos.event_id": event.id } }, () => intake.intake(event));
              } else await intake.intake(event);
              return "ack";
            } catch (err) {
              if (await holdThroughDatabaseOutage(err, p.database, () => job.working())) return { nak: 0 };
              p.log.warn("notify: event intake failed; will retry", { event_id: event.id, error: err });
              return { nak: Math.min(30_000, 500 * 2 ** Math.min(job.deliveryCount, 6)) };
            }
          },
          { durable: "notify", filterSubject: "events.>", concurrency: 8, ackWaitMs: 30_000, maxDeliver: 20 },
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
