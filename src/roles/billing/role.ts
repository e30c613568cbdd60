import { BILLING_RPC } from "./contract";
import type { Unsubscribe } from "../../platform/bus";
import type { RoleModule } from "../modules";
import { PLAN_CHANGED } from "./contract";
import { UsageLedger } from "./ledger";
import { loadBillingSettings } from "./plans";
import { BillingService } from "./service";

export const billingRole: RoleModule = {
  name: "billing",
  rpc: BILLING_RPC,
  deps: ["database", "bus", "outbox"],
  uses: [],
  description: "plans, quotas, the usage ledger (from events) and monthly statements",
  init(p) {
    const settings = loadBillingSettings(p.config);
    const service = new BillingService(p.db, settings, (orgId) => p.bus.publish(p.bus.subject(PLAN_CHANGED), { org_id: orgId }));
    const ledger = new UsageLedger(p.db, settings, p.log, p.database);
    let stopConsumer: Unsubscribe | undefined;
    return {
      service,
      async start() {
        stopConsumer = await ledger.start(p.bus);
      },
      stop: () => stopConsumer?.(),
    };
  },
};
