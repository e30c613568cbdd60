import type { RunsService } from "../../runs";
import type { SchedulesService } from "./schedules/service";
import type { ProvidersService } from "./providers";
import type { AgentsService } from "./service";
export type { ModelRoute } from "./providers";

/**
 * `<provider>/<model>` → [provider, model]; null for a model name without a provider part,
 * which always goes to the default provider (resolveModel need not be asked).
 */
export function splitModel(model: string): [string, string] | null {
  const at = model.indexOf("/");
  return at > 0 && at < model.length - 1 ? [model.slice(0, at), model.slice(at + 1)] : null;
}
/** What other roles may call on the agents role (through `p.clients.agents`), besides its HTTP API. */
export interface AgentsContract {
  /** Agents of the organization whose `tools` list references the tool (tool deletion → 409). */
  agentsUsingTool(orgId: string, toolRef: string): Promise<{ id: string; name: string }[]>;
  /** Removes the tool from every agent of the organization (tool deletion with ?force=true). */
  detachTool(orgId: string, toolRef: string): Promise<number>;
}

/**
 * Gateways cache `GET /v1/agents/:id` (the agent with its core memory blocks) in-process;
 * any role that changes an agent or its blocks invalidates this key (src/platform/edge-cache.ts).
 */
export const AGENT_CACHE_KIND = "agents";
export const agentCacheKey = (orgId: string, agentId: string) => `${orgId}:${agentId}`;

/** What the agents role serves: its agents, threads and messages, the run kernel's run API, schedules and model providers. */
export type AgentsServed = Public<AgentsService> & Public<RunsService> & Public<SchedulesService> & Public<ProvidersService>;
/** A class's public members (an intersection of two classes with private members is `never`). */
type Public<T> = { [K in keyof T]: T[K] };

/**
 * The agents role's RPC surface: what gateways and other roles may call through
 * `p.clients.agents`. Over the bus nothing else is served (src/platform/rpc.ts).
 */
export const AGENTS_RPC = [
  "createAgent", "listAgents", "getAgent", "updateAgent", "deleteAgent", "createThread", "listThreads",
  "getThread", "updateThread", "deleteThread", "createMessage", "listMessages", "getMessage", "deleteMessage",
  "createRun", "createThreadAndRun", "getRun", "listRuns", "listOrgRuns",
  "listSteps", "runEvents", "runTrace", "cancelRun", "submitToolOutputs", "agentsUsingTool", "detachTool",
  "createSchedule", "listSchedules", "getSchedule", "updateSchedule", "deleteSchedule", "listScheduleFires",
  "createProvider", "listProviders", "deleteProvider", "resolveModel",
] as const satisfies readonly (keyof AgentsServed)[];
export type AgentsClient = Pick<AgentsServed, (typeof AGENTS_RPC)[number]>;
