/**
 * The SDK (sdk/) from sign-up to a finished run: an agent, a run streamed as it happens, its
 * messages, steps and the month's usage. test/sdk-client.test.ts runs it against the compiled
 * binary; try it against yours:
 *
 *   bun -e 'import("./examples/sdk-quickstart.ts").then((m) => m.quickstart("http://localhost:8080", "ada@example.com", "correct horse battery", console.log))'
 */
import { createAgentOS, type RunEvent } from "../sdk/client";

export async function quickstart(baseUrl: string, email: string, password: string, print: (line: string) => void = () => {}) {
  const api = createAgentOS({ baseUrl });
  await api.signup(email, password); // or api.login(email, password); refreshes itself on token_expired

  const agent = await api.agents.create({ name: "helper", model: "gpt-4o-mini", instructions: "Be brief." });
  const thread = await api.threads.create({ metadata: { customer: "c_42" } });

  // Streamed: message.delta events carry the answer as it is written.
  let answer = "";
  const events: RunEvent[] = [];
  for await (const event of api.runs.createAndStream(thread.id, { agent_id: agent.id, input: [{ role: "user", content: "Say hello." }] })) {
    events.push(event);
    if (event.type === "message.delta") answer += event.data.delta;
  }
  print(`answer: ${answer}`);

  // Not streamed: start, then wait for the end (or requires_action).
  const run = await api.runs.wait((await api.runs.create(thread.id, { agent_id: agent.id, input: "Again." })).id);
  print(`run ${run.id}: ${run.status}, ${run.usage.total_tokens} tokens${run.usage.estimated ? " (estimated)" : ""}, ${run.cost_cents === null ? "(prices unavailable)" : `${run.cost_cents.toFixed(4)} cents`}`);

  const messages = [];
  for await (const message of api.messages.iterate(thread.id, { limit: 10 })) messages.push(message);
  const steps = [];
  for await (const step of api.runs.steps(run.id)) steps.push(step);
  const usage = await api.billing.usage({ group_by: "agent" });
  print(`${messages.length} messages, ${steps.length} steps; this month: ${usage.totals.total_tokens} tokens`);
  return { api, agent, thread, events, answer, run, messages, steps, usage };
}
