import { loadEncoder } from "../../platform/model/tokens";
import type { AppPlatform } from "../clients";
import type { RoleInstance } from "../modules";
import { RunWorker } from "./worker";

/** The worker role's code; what it is (deps, uses, rpc) is its row in src/roles/modules.ts. */
export function init(p: AppPlatform): RoleInstance {
  const worker = new RunWorker(p);
  return {
    start: () => {
      // The tokenizer table (~250 ms of work) is built in slices now rather than at once by the first run.
      void loadEncoder();
      return worker.start();
    },
    stop: () => worker.stop(),
  };
}
