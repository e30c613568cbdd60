/**
 * `nats` tools: a request on the tool's own subject (used AS IS, not namespaced, so a worker
 * in any language subscribes to e.g. `tools.weather`) with the JSON body
 * `{tool, arguments, run_id, tool_call_id}`; the worker answers `{output}` or
 * `{error: {code, message}}`. See examples/nats-tool-worker.ts for the contract.
 */
import { BusTimeoutError, NoRespondersError, type Bus } from "../../../platform/bus";
import type { ToolCallResult } from "../contract";

export interface NatsCall {
  tool: string;
  subject: string;
  timeoutMs: number;
  arguments: unknown;
  run_id: string | null;
  tool_call_id: string;
}

const fail = (code: string, message: string): ToolCallResult => ({ ok: false, error: { code, message } });

/**
 * A NATS subject a tool may use: dot-separated tokens, no wildcards, and under the tools
 * prefix (default `tools.`), the only subject space customer tool workers are given; so no
 * tool can aim at AgentOS's own subjects (RPC, runs, events), another deployment's, or NATS
 * internals. Checked at registration and again before every call (the prefix may change).
 */
export function checkToolSubject(raw: unknown, prefix: string): string | null {
  if (typeof raw !== "string" || raw.length === 0) return "`config.subject` is required for nats tools.";
  if (raw.length > 256) return "`config.subject` is longer than 256 characters.";
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(raw)) {
    return `\`config.subject\` '${raw.slice(0, 100)}' is not a plain NATS subject (dot-separated tokens of letters, digits, _ or -; no wildcards or spaces).`;
  }
  if (!raw.startsWith(prefix) || raw.length === prefix.length) {
    return `\`config.subject\` must lie under the tools prefix '${prefix}' (e.g. '${prefix}weather'): tool workers may use no other subjects, and AgentOS's own are never reachable from a tool.`;
  }
  return null;
}

export async function executeNats(bus: Bus, call: NatsCall, prefix: string): Promise<ToolCallResult> {
  const problem = checkToolSubject(call.subject, prefix);
  if (problem) return fail("subject_not_allowed", problem);
  let reply: unknown;
  try {
    reply = await bus.request(call.subject, { tool: call.tool, arguments: call.arguments, run_id: call.run_id, tool_call_id: call.tool_call_id }, { timeoutMs: call.timeoutMs });
  } catch (err) {
    if (err instanceof NoRespondersError) {
      const why = bus.kind === "memory"
        ? "AgentOS runs on its embedded in-process bus, which external workers cannot reach: start it with NATS_URL and run the worker against the same NATS."
        : "Start a worker that subscribes to it.";
      return fail("tool_unavailable", `No worker answers the NATS subject '${call.subject}'. ${why}`);
    }
    if (err instanceof BusTimeoutError) return fail("tool_timeout", `No reply on '${call.subject}' within ${call.timeoutMs} ms.`);
    if (err instanceof SyntaxError) return fail("invalid_tool_reply", `The worker on '${call.subject}' replied with something that is not JSON.`);
    return fail("tool_failed", `The request on '${call.subject}' failed: ${(err as Error).message}`);
  }
  return interpretReply(call.subject, reply);
}

function interpretReply(subject: string, reply: unknown): ToolCallResult {
  if (reply && typeof reply === "object" && !Array.isArray(reply)) {
    const r = reply as { output?: unknown; error?: { code?: unknown; message?: unknown } | string };
    if (r.error !== undefined && r.error !== null) {
      const e = typeof r.error === "string" ? { message: r.error } : r.error;
      const code = typeof e.code === "string" && /^[a-z0-9_]{1,64}$/.test(e.code) ? e.code : "tool_error";
      const message = typeof e.message === "string" ? e.message.slice(0, 2000) : "The tool reported an error.";
      return fail(code, message);
    }
    if ("output" in r) return { ok: true, output: r.output ?? null };
  }
  return fail("invalid_tool_reply", `The worker on '${subject}' replied without \`output\` or \`error\`; reply {"output": …} or {"error": {"code", "message"}}.`);
}
