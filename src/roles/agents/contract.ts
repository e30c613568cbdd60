/** What other roles may call on the agents role (through `p.clients.agents`), besides its HTTP API. */
export interface AgentsContract {
  /** Agents of the organization whose `tools` list references the tool (tool deletion → 409). */
  agentsUsingTool(orgId: string, toolRef: string): Promise<{ id: string; name: string }[]>;
  /** Removes the tool from every agent of the organization (tool deletion with ?force=true). */
  detachTool(orgId: string, toolRef: string): Promise<number>;
}
