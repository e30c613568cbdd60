/** Planning the tool calls of one model turn from the persisted steps; the bounded parallel map. */
import { describe, expect, test } from "bun:test";
import type { StepRow } from "../../runs";
import type { RunTool } from "../tools/contract";
import { mapBounded, planToolCalls } from "./tool-plan";

const tool = (name: string, extra: Partial<RunTool> = {}): RunTool => ({ id: `tool_${name}`, name, description: "", parameters: {}, kind: "http", requires_approval: false, timeout_ms: 1000, ...extra });
const call = (id: string, name: string) => ({ id, type: "function" as const, function: { name, arguments: "{}" } });
const step = (toolCallId: string, status: string, error: unknown = null) => ({ id: `stp_${toolCallId}`, kind: "tool_call", toolCallId, status, error }) as unknown as StepRow;

describe("planToolCalls", () => {
  const tools = [tool("srv"), tool("cli", { kind: "client" }), tool("apr", { requires_approval: true })];

  test("server calls execute, client and approval calls pause, done calls are skipped, unknown ones are refused", () => {
    const plan = planToolCalls([call("1", "srv"), call("2", "cli"), call("3", "apr"), call("4", "nope"), call("5", "srv")], [step("5", "completed")], tools, null);
    expect(plan.execute.map((p) => [p.call.id, p.refusal?.code ?? "run"])).toEqual([["1", "run"], ["4", "unknown_tool"]]);
    expect(plan.pause.map((c) => [c.id, c.action])).toEqual([["2", "output"], ["3", "approval"]]);
  });

  test("an interrupted call runs again with its step; an approved one runs", () => {
    const plan = planToolCalls([call("1", "srv"), call("3", "apr")], [step("1", "in_progress"), step("3", "approved")], tools, null);
    expect(plan.execute.map((p) => [p.call.id, p.existing?.status])).toEqual([["1", "in_progress"], ["3", "approved"]]);
    expect(plan.pause).toEqual([]);
  });

  test("max_tool_calls: calls past the cap are refused; refused ones do not count", () => {
    const earlier = [step("0", "completed"), step("x", "failed", { code: "max_tool_calls_exceeded" })];
    const plan = planToolCalls([call("1", "srv"), call("2", "srv")], earlier, tools, 2);
    expect(plan.execute.map((p) => [p.call.id, p.refusal?.code ?? "run"])).toEqual([["1", "run"], ["2", "max_tool_calls_exceeded"]]);
  });
});

describe("mapBounded", () => {
  test("at most `limit` at once, results in input order, the first error after all settled", async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapBounded([30, 10, 20, 5, 1], 2, async (ms) => {
      peak = Math.max(peak, ++inFlight);
      await Bun.sleep(ms);
      inFlight--;
      return ms * 2;
    });
    expect(out).toEqual([60, 20, 40, 10, 2]);
    expect(peak).toBe(2);
    const settled: number[] = [];
    const failing = mapBounded([1, 2, 3], 3, async (n) => {
      await Bun.sleep(n * 5);
      settled.push(n);
      if (n === 1) throw new Error("one");
      return n;
    });
    await expect(failing).rejects.toThrow("one");
    expect(settled.sort()).toEqual([1, 2, 3]);
  });
});
