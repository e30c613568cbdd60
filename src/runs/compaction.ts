/**
 * Context compaction (agent setting `context_strategy: "summarize"`): when the thread's history
 * no longer fits the model's window, its oldest messages are folded into one summary by a
 * `summarize` step, and the summary is kept per thread (thread_summaries) so later runs start
 * from it instead of paying again. What is decided here is pure (which messages to fold, the
 * summarize request, where the summary goes in the prompt); the run loop executes the step.
 *
 * Choices:
 * - Only the thread's messages are folded, never the run's own steps (a tool call and its
 *   result stay verbatim while the run uses them); if those alone overflow, truncation of the
 *   oldest steps still applies, so the prompt never exceeds the window.
 * - Folding leaves the kept history at most half of what is free for it, so a growing thread is
 *   summarized once in a while rather than on every turn.
 * - The summary lives in the system message (after the instructions), where truncation never
 *   drops it, and is cut to SUMMARY_SHARE of the window whatever the model returns.
 * - One summarize request never exceeds the window either: when the messages to fold do not fit
 *   in one, the oldest that fit are folded first and the step repeats.
 */
import { groupHistory } from "../platform/model/prompt";
import { countMessageTokens, countTokens } from "../platform/model/tokens";
import type { ChatMessage } from "../platform/model/types";

/** First words of every summarize request's system message (the fake model of the tests recognises it). */
export const SUMMARIZE_MARKER = "You maintain the running summary of a conversation.";
const SUMMARIZE_SYSTEM = `${SUMMARIZE_MARKER} Merge the previous summary (if any) and the new messages into one concise summary that keeps every fact, name, number, decision and open question a later reply may need. Answer with the summary only.`;

/** Share of the context window a summary may take (also the summarize call's reply allowance). */
const SUMMARY_SHARE = 0.15;
const MAX_SUMMARY_TOKENS = 2048;

export interface HistoryMessage {
  id: string;
  message: ChatMessage;
}

export const summaryMaxTokens = (contextWindow: number) => Math.min(MAX_SUMMARY_TOKENS, Math.floor(contextWindow * SUMMARY_SHARE));

/** The instructions with the thread's summary appended (unchanged without one). */
export function withSummary(instructions: string, summary: string | null): string {
  if (!summary) return instructions;
  const block = `<conversation_summary>\nThe earlier part of this conversation, summarized:\n${summary}\n</conversation_summary>`;
  return instructions.trim() ? `${instructions.trim()}\n\n${block}` : block;
}

const sumTokens = (messages: ChatMessage[]) => messages.reduce((n, m) => n + countMessageTokens(m), 0);

/**
 * How many of the oldest history messages to fold so that the kept ones take at most half of
 * `free` tokens (0 when the history fits in `free` or only its newest group is left).
 * The cut falls between groups (an assistant tool call stays with its results).
 */
export function messagesToFold(history: ChatMessage[], free: number): number {
  if (sumTokens(history) <= free) return 0;
  const { groups } = groupHistory(history);
  if (groups.length <= 1) return 0;
  let kept = 0;
  let first = groups.length - 1;
  for (let i = groups.length - 1; i >= 1; i--) {
    const cost = sumTokens(groups[i]!);
    if (i < groups.length - 1 && kept + cost > free / 2) break;
    kept += cost;
    first = i;
  }
  return history.indexOf(groups[first]![0]!);
}

/** One line of the text the summarizer reads. */
function render(m: ChatMessage): string {
  const calls = m.tool_calls?.map((c) => ` [calls ${c.function.name}(${c.function.arguments})]`).join("") ?? "";
  const who = m.role === "tool" ? "tool result" : m.role;
  return `${who}: ${m.content ?? ""}${calls}`;
}

/** `text` cut to at most `max` tokens (by characters, re-counted). */
export function cutToTokens(text: string, max: number): string {
  let out = text;
  for (let n = countTokens(out); n > max && out.length > 0; n = countTokens(out)) {
    out = out.slice(0, Math.max(0, Math.floor((out.length * max) / n) - 1));
  }
  return out;
}

/**
 * The summarize request folding the oldest of `candidates` that fit in the window with the
 * previous summary: at least one message (its text cut when it alone is too long).
 */
export function summarizeRequest(previous: string | null, candidates: HistoryMessage[], contextWindow: number): { messages: ChatMessage[]; promptTokens: number; folded: HistoryMessage[] } {
  const system: ChatMessage = { role: "system", content: SUMMARIZE_SYSTEM };
  const head = previous ? `Previous summary:\n${previous}\n\nNew messages:\n` : "Messages:\n";
  // Framing of two messages and the reply priming: a few tokens, kept with a margin.
  const budget = contextWindow - summaryMaxTokens(contextWindow) - countMessageTokens(system) - countTokens(head) - 16;
  const lines: string[] = [];
  const folded: HistoryMessage[] = [];
  let used = 0;
  for (const c of candidates) {
    let line = render(c.message);
    const cost = countTokens(line) + 1;
    if (used + cost > budget) {
      if (folded.length) break;
      line = cutToTokens(line, Math.max(1, budget - 1));
    }
    lines.push(line);
    folded.push(c);
    used += countTokens(line) + 1;
  }
  const user: ChatMessage = { role: "user", content: head + lines.join("\n") };
  const messages = [system, user];
  return { messages, promptTokens: sumTokens(messages) + 3, folded };
}
