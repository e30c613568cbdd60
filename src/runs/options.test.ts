/** Per-run options over the agent's settings, and the chat-completions fields they become. */
import { describe, expect, test } from "bun:test";
import { effectiveOptions, modelParams } from "./options";

const agent = { instructions: "Agent.", tools: ["tool_a"], maxSteps: 10, temperature: 0.3, topP: null, maxOutputTokens: 100 };

describe("run options", () => {
  test("nothing given: the agent's settings, and only the set sampling fields are sent", () => {
    const e = effectiveOptions(agent, {});
    expect(e).toMatchObject({ instructions: "Agent.", toolRefs: ["tool_a"], maxSteps: 10, maxToolCalls: null, parallelToolCalls: true, responseFormat: null });
    expect(modelParams(e, { hasTools: true, toolChoice: null })).toEqual({ temperature: 0.3, max_tokens: 100 });
  });

  test("overrides replace, additional_instructions appends, text format is no format", () => {
    const e = effectiveOptions(agent, { instructions: "Run.", additional_instructions: "More.", tools: [], temperature: 0, top_p: 0.5, max_steps: 2, response_format: { type: "text" } });
    expect(e).toMatchObject({ instructions: "Run.\n\nMore.", toolRefs: [], maxSteps: 2, temperature: 0, topP: 0.5, responseFormat: null });
    expect(effectiveOptions({ ...agent, instructions: "" }, { additional_instructions: "Only." }).instructions).toBe("Only.");
  });

  test("tool_choice and parallel_tool_calls go out only with tools; response_format always", () => {
    const e = effectiveOptions(agent, { parallel_tool_calls: false, response_format: { type: "json_object" } });
    expect(modelParams(e, { hasTools: false, toolChoice: "required" })).toEqual({ temperature: 0.3, max_tokens: 100, response_format: { type: "json_object" } });
    expect(modelParams(e, { hasTools: true, toolChoice: "required" })).toEqual({ temperature: 0.3, max_tokens: 100, tool_choice: "required", parallel_tool_calls: false, response_format: { type: "json_object" } });
  });
});
