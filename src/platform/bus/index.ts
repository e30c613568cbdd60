import type { Logger } from "../logging";
import { MemoryBus } from "./memory";
import type { NatsAuth } from "./nats";
import type { Bus } from "./types";

export * from "./types";
export { MemoryBus } from "./memory";

export async function openBus(opts: { url?: string; namespace: string; log: Logger; name: string; auth?: NatsAuth; onMessage?: (dir: string) => void }): Promise<Bus> {
  if (!opts.url) return new MemoryBus(opts.namespace);
  const { NatsBus } = await import("./nats");
  return NatsBus.connect(opts.url, opts);
}
