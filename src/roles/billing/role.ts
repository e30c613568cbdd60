import type { Unsubscribe } from "../../platform/bus";
import type { AppPlatform } from "../clients";
import type { RoleInstance } from "../modules";
import { PLAN_CHANGED } from "./contract";
import { UsageLedger } from "./ledger";
import { loadBillingSettings } from "./plans";
import { BillingService } from "./service";

/** The billing role's code; what it is (deps, uses, rpc) is its row in src/roles/modules.ts. */
export function init(p: AppPlatform): RoleInstance {
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
}
