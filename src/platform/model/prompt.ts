/**
 * Prompt assembly under a token budget.
 *
 * Layout: [system(instructions + core memory blocks)] + newest-fitting suffix of history.
 * Budget: contextWindow - reserveForReply, counting messages, tool definitions and reply
 * priming with the real tokenizer (see tokens.ts).
 *
 * History is cut in "groups" so the API never sees an invalid sequence:
 *   - an assistant message carrying tool_calls + the tool messages answering it form ONE
 *     group (kept or dropped together);
 *   - every other message is its own group.
 * Tool messages not answering a preceding assistant tool call (orphans already in the
 * input) are always dropped. Hence the kept history never starts with a `tool` message.
 */
import type { ChatMessage, ToolSpec } from "./types";
import { countMessageTokens, countToolTokens, precountTokens, promptTexts, REPLY_PRIMING_TOKENS } from "./tokens";

export type MemoryBlock = { label: string; value: string; limit: number };

export type BuildPromptInput = {
  instructions: string;
  memoryBlocks: MemoryBlock[];
  history: ChatMessage[];
  tools: ToolSpec[];
  contextWindow: number;
  /** Tokens kept free for the reply. Default: min(1024, 25% of contextWindow). */
  reserveForReply?: number;
};

export type BuiltPrompt = {
  messages: ChatMessage[];
  /** Tokens of messages + tools + reply priming (always <= contextWindow - reserveForReply). */
  promptTokens: number;
  /** History messages not included (oldest dropped first, plus orphan tool messages). */
  droppedMessages: number;
};

export class ContextWindowExceededError extends Error {
  override name = "ContextWindowExceededError";
  readonly code = "context_window_exceeded" as const;
  constructor(
    message: string,
    readonly requiredTokens: number,
    readonly budgetTokens: number,
  ) {
    super(message);
  }
}

export function defaultReserve(contextWindow: number): number {
  return Math.min(1024, Math.floor(contextWindow * 0.25));
}

function tagName(label: string): string {
  const t = label.trim().replace(/[^A-Za-z0-9_.-]/g, "_");
  return /^[A-Za-z_]/.test(t) ? t : `_${t}`;
}

/** Letta-style rendering of core memory blocks. */
export function renderMemoryBlocks(blocks: MemoryBlock[]): string {
  const parts = [
    "<memory_blocks>",
    "The following memory blocks are currently engaged in your core memory unit:",
    "",
  ];
  for (const b of blocks) {
    const tag = tagName(b.label);
    parts.push(
      `<${tag}>`,
      "<metadata>",
      `- chars_current=${b.value.length}`,
      `- chars_limit=${b.limit}`,
      "</metadata>",
      "<value>",
      b.value,
      "</value>",
      `</${tag}>`,
      "",
    );
  }
  parts.push("</memory_blocks>");
  return parts.join("\n");
}

export function renderSystemPrompt(instructions: string, blocks: MemoryBlock[]): string {
  const head = instructions.trim();
  const mem = renderMemoryBlocks(blocks);
  return head ? `${head}\n\n${mem}` : mem;
}

/** Splits history into atomic groups; orphan tool messages are reported separately. */
export function groupHistory(history: ChatMessage[]): { groups: ChatMessage[][]; orphans: number } {
  const groups: ChatMessage[][] = [];
  let orphans = 0;
  let open: { group: ChatMessage[]; ids: Set<string> } | undefined;
  for (const m of history) {
    if (m.role === "tool") {
      if (open && m.tool_call_id !== undefined && open.ids.has(m.tool_call_id)) open.group.push(m);
      else orphans++;
      continue;
    }
    open = undefined;
    const g = [m];
    groups.push(g);
    if (m.role === "assistant" && m.tool_calls && m.tool_calls.length > 0) {
      open = { group: g, ids: new Set(m.tool_calls.map((tc) => tc.id)) };
    }
  }
  return { groups, orphans };
}

export function buildPrompt(input: BuildPromptInput): BuiltPrompt {
  const { contextWindow } = input;
  const reserve = input.reserveForReply ?? defaultReserve(contextWindow);
  const budget = contextWindow - reserve;

  const system: ChatMessage = { role: "system", content: renderSystemPrompt(input.instructions, input.memoryBlocks) };
  const fixed = REPLY_PRIMING_TOKENS + countToolTokens(input.tools) + countMessageTokens(system);

  const { groups, orphans } = groupHistory(input.history);
  const kept: ChatMessage[][] = [];
  let used = fixed;
  for (let i = groups.length - 1; i >= 0; i--) {
    const g = groups[i]!;
    let cost = 0;
    for (const m of g) cost += countMessageTokens(m);
    if (used + cost > budget) {
      if (kept.length === 0) {
        throw new ContextWindowExceededError(
          `context window exceeded: system prompt, tools and the newest message need ${used + cost} tokens, ` +
            `budget is ${budget} (window ${contextWindow} - reserve ${reserve})`,
          used + cost,
          budget,
        );
      }
      break; // contiguous suffix only: never skip a big message to keep older ones
    }
    used += cost;
    kept.push(g);
  }
  if (groups.length === 0 && used > budget) {
    throw new ContextWindowExceededError(
      `context window exceeded: system prompt and tools need ${used} tokens, budget is ${budget}`,
      used,
      budget,
    );
  }

  kept.reverse();
  const historyOut = kept.flat();
  return {
    messages: [system, ...historyOut],
    promptTokens: used,
    droppedMessages: input.history.length - historyOut.length,
  };
}

/**
 * {@link buildPrompt} for the run loop: the long texts are counted first in slices that give
 * the event loop a turn (see precountTokens), so a huge input stalls no other request.
 */
export async function buildPromptSliced(input: BuildPromptInput): Promise<BuiltPrompt> {
  const system = renderSystemPrompt(input.instructions, input.memoryBlocks);
  await precountTokens([system, ...promptTexts(input.history, input.tools)]);
  return buildPrompt(input);
}
