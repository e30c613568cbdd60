import { loadEncoder } from "../../platform/model/tokens";
import type { RoleModule } from "../modules";
import { RunWorker } from "./worker";

export const workerRole: RoleModule = {
  name: "worker",
  deps: ["database", "bus", "cache", "outbox"],
  uses: ["memory", "tools", "agents", "auth", "billing"],
  description: "executes runs taken from the run queue: prompt, model calls, tool calls, streaming, cancel, resume",
  init(p) {
    const worker = new RunWorker(p);
    return {
      start: () => {
        // The tokenizer table (~250 ms of work) is built in slices now rather than at once by the first run.
        void loadEncoder();
        return worker.start();
      },
      stop: () => worker.stop(),
    };
  },
};
