/**
 * What to do with the tool calls of one model turn: which the worker executes (server tools,
 * approved calls, refusals the model sees as error results) and which pause the run
 * (client tools, calls awaiting approval) — decided from the persisted steps, so a resumed
 * run plans the same way and skips the calls already done.
 */
import type { ToolCall } from "../../platform/model/types";
import type { RequiredAction, StepRow } from "../../runs";
import type { RunTool } from "../tools/contract";

export const DONE = new Set(["completed", "failed"]);
export const MAX_TOOL_CALLS_EXCEEDED = "max_tool_calls_exceeded";

/** A call the worker executes: with its tool, or refused with `refusal` (an error result, nothing runs). */
export interface PlannedCall {
  call: ToolCall;
  tool?: RunTool;
  refusal?: { code: string; message: string };
  /** Its step when it has one already (interrupted, or approved). */
  existing?: StepRow;
}

export interface ToolPlan {
  execute: PlannedCall[];
  pause: RequiredAction["tool_calls"];
}

/** Tool calls the run has made so far (refused ones do not count). */
export function toolCallsMade(steps: StepRow[]): number {
  return steps.filter((s) => s.kind === "tool_call" && (s.error as { code?: string } | null)?.code !== MAX_TOOL_CALLS_EXCEEDED).length;
}

export function planToolCalls(calls: ToolCall[], steps: StepRow[], tools: RunTool[], maxToolCalls: number | null): ToolPlan {
  const byCall = new Map(steps.filter((s) => s.toolCallId).map((s) => [s.toolCallId!, s]));
  const byName = new Map(tools.map((t) => [t.name, t]));
  let made = toolCallsMade(steps);
  const plan: ToolPlan = { execute: [], pause: [] };
  for (const call of calls) {
    const existing = byCall.get(call.id);
    if (existing && DONE.has(existing.status)) continue;
    if (!existing && maxToolCalls !== null && made >= maxToolCalls) {
      plan.execute.push({ call, refusal: { code: MAX_TOOL_CALLS_EXCEEDED, message: `Not executed: this run may make at most ${maxToolCalls} tool calls. Answer with what you have.` } });
      continue;
    }
    if (!existing) made++;
    const tool = byName.get(call.function.name);
    if (!tool) {
      plan.execute.push({ call, existing, refusal: { code: "unknown_tool", message: `No tool named '${call.function.name}' is available to this agent.` } });
    } else if (tool.kind === "client") {
      plan.pause.push({ ...call, action: "output", tool_id: tool.id });
    } else if (tool.requires_approval && existing?.status !== "approved") {
      plan.pause.push({ ...call, action: "approval", tool_id: tool.id });
    } else {
      plan.execute.push({ call, tool, existing });
    }
  }
  return plan;
}

/** Runs `work` over `items`, at most `limit` at once; settles all before rejecting with the first error. */
export async function mapBounded<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) {
      results[i] = await work(items[i]).then((value) => ({ status: "fulfilled" as const, value }), (reason) => ({ status: "rejected" as const, reason }));
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, lane));
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return results.map((r) => (r as PromiseFulfilledResult<R>).value);
}
