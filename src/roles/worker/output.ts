/**
 * Structured output: the final answer of a run with a JSON `response_format` is parsed and,
 * for `json_schema`, validated by the tools role's schema thread (the validator of tool
 * arguments). A mismatch is kept on the model step (`output_error`) so that a resumed run
 * knows the corrective turn was already given.
 */
import { AppError } from "../../platform/errors";
import type { ChatMessage } from "../../platform/model/types";
import type { JsonResponseFormat } from "../../runs";
import type { ToolsContract } from "../tools/contract";

export type OutputCheck = { parsed: unknown } | { error: string };

/** Corrective turns a run gets after an answer that does not match its response_format. */
export const CORRECTIVE_TURNS = 1;

/** Models sometimes wrap JSON in a Markdown fence although told not to: one outer fence is tolerated. */
function unfenced(text: string): string {
  const m = /^```(?:json)?\s*\n([\s\S]*?)\n?```$/.exec(text.trim());
  return m ? m[1] : text;
}

/** Parses and validates `content` against the run's format; `key` names the schema's version for the validator cache. */
export async function checkOutput(format: JsonResponseFormat, content: string | null, key: string, tools: ToolsContract): Promise<OutputCheck> {
  let value: unknown;
  try {
    value = JSON.parse(unfenced(content ?? ""));
  } catch (err) {
    return { error: `the answer is not valid JSON (${(err as Error).message})` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return { error: "the answer must be a JSON object" };
  if (format.type === "json_object") return { parsed: value };
  try {
    const checked = await tools.validateOutput(key, format.json_schema.schema, value as Record<string, unknown>);
    return checked.valid ? { parsed: checked.value } : { error: checked.message };
  } catch (err) {
    // A refusal of the validator (over its time bound) is a mismatch the model may fix, not a crash that would repeat on every resume.
    if (err instanceof AppError) return { error: err.message };
    throw err;
  }
}

/** What the model is told after an answer that failed the check (its corrective turn). */
export function correctiveMessage(format: JsonResponseFormat, error: string): ChatMessage {
  const what = format.type === "json_schema" ? `the JSON schema '${format.json_schema.name}'` : "a JSON object";
  return { role: "user", content: `Your last answer does not match ${what}: ${error}. Answer again with only the JSON, nothing else.` };
}
