/**
 * Chat over threads: the thread's messages, then a live turn streamed from
 * POST /v1/threads/{id}/runs (stream: true) — text deltas as they come, tool calls inline, and
 * approvals (or client-tool outputs) answered from the page with POST /v1/runs/{id}/tool_outputs
 * while the same stream keeps running.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { api, errorText, unwrap, useLoad } from "./api";
import { ErrorLine, Field, Json, Loading, Page } from "./ui";

const AGENT_KEY = "agentos.chat.agent";
/** The error a tool call gets when the caller rejects it. */
const REJECTED = "tool_call_rejected";

interface ToolCallView {
  id: string;
  name: string;
  arguments: string;
  action?: "approval" | "output" | string;
  state: "running" | "waiting" | "answered" | "done" | "failed" | "rejected";
  output?: unknown;
}

type Item =
  | { kind: "user"; text: string; key: string }
  | { kind: "assistant"; text: string; key: string; runId?: string | null }
  | { kind: "tool"; call: ToolCallView; key: string; runId?: string | null }
  | { kind: "status"; text: string; key: string; runId?: string | null; error?: boolean };

const STEP_STATE: Record<string, ToolCallView["state"]> = { requires_action: "waiting", approved: "running", in_progress: "running", completed: "done", failed: "failed", cancelled: "failed" };

/** A thread's messages, runs and their tool-call steps, loaded together for the transcript. */
async function loadHistory(threadId: string) {
  const [messages, runs] = await Promise.all([
    api.GET("/v1/threads/{id}/messages", { params: { path: { id: threadId }, query: { limit: 100 } } }).then(unwrap),
    api.GET("/v1/threads/{id}/runs", { params: { path: { id: threadId }, query: { limit: 100 } } }).then(unwrap),
  ]);
  const withTools = runs.data.filter((r) => Number(r.step_count) > 1 || r.status === "requires_action");
  const steps = await Promise.all(withTools.map((r) => api.GET("/v1/runs/{id}/steps", { params: { path: { id: r.id }, query: { limit: 100 } } }).then(unwrap)));
  const toolSteps = new Map(withTools.map((r, i) => [r.id, steps[i].data.filter((s) => s.kind === "tool_call")]));
  return { messages: messages.data, runs: runs.data, toolSteps };
}

/** Transcript items: each run's tool calls right before its answer; a run still waiting at the end. */
function historyItems(history: Awaited<ReturnType<typeof loadHistory>>): Item[] {
  const items: Item[] = [];
  const shown = new Set<string>();
  const toolsOf = (runId: string) => {
    if (shown.has(runId)) return;
    shown.add(runId);
    for (const s of history.toolSteps.get(runId) ?? []) {
      const input = (s.input ?? {}) as { arguments?: string; action?: string };
      const call: ToolCallView = { id: s.tool_call_id ?? s.id, name: s.tool_name ?? "tool", arguments: input.arguments ?? "", action: input.action, state: (s.error as { code?: string } | null)?.code === REJECTED ? "rejected" : (STEP_STATE[s.status] ?? "done"), output: s.error ?? s.output ?? undefined };
      items.push({ kind: "tool", call, key: `h-${s.id}`, runId });
    }
  };
  for (const m of history.messages) {
    if (m.role === "user") items.push({ kind: "user", text: m.content ?? "", key: m.id });
    else if (m.role === "assistant") {
      if (m.run_id) toolsOf(m.run_id);
      if (m.content) items.push({ kind: "assistant", text: m.content, key: m.id, runId: m.run_id });
    }
  }
  for (const r of history.runs) if (!shown.has(r.id) && history.toolSteps.has(r.id)) toolsOf(r.id);
  return items;
}

function parseMaybe(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function ToolCallCard({ call, runId, onAnswered }: { call: ToolCallView; runId?: string | null; onAnswered: () => void }) {
  const [reason, setReason] = useState("");
  const [output, setOutput] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const answer = async (toolOutput: { tool_call_id: string; approve?: boolean; reason?: string; output?: string }) => {
    setBusy(true);
    setError(null);
    try {
      unwrap(await api.POST("/v1/runs/{id}/tool_outputs", { params: { path: { id: runId! } }, body: { tool_outputs: [toolOutput] } }));
      onAnswered();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const label = { running: "running", waiting: call.action === "approval" ? "waiting for approval" : "waiting for output", answered: "answered", done: "done", failed: "failed", rejected: "rejected" }[call.state];
  return (
    <article class={`tool-call ${call.state}`} aria-label={`Tool call ${call.name}`}>
      <header>
        <strong><span class="muted">Tool</span> {call.name}</strong> <span class="badge">{label}</span>
      </header>
      <details open={call.state === "waiting"}>
        <summary>Arguments</summary>
        <Json value={parseMaybe(call.arguments)} />
      </details>
      {call.output !== undefined && (
        <details>
          <summary>Result</summary>
          <Json value={call.output} />
        </details>
      )}
      {call.state === "waiting" && runId && call.action === "approval" && (
        <div class="approval" role="group" aria-label={`Approve or reject ${call.name}`}>
          <button type="button" disabled={busy} onClick={() => answer({ tool_call_id: call.id, approve: true })}>Approve</button>
          <label class="sr-only" for={`reason-${call.id}`}>Reason for rejecting</label>
          <input id={`reason-${call.id}`} placeholder="Reason (optional)" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
          <button type="button" class="danger" disabled={busy} onClick={() => answer({ tool_call_id: call.id, approve: false, ...(reason ? { reason } : {}) })}>Reject</button>
        </div>
      )}
      {call.state === "waiting" && runId && call.action !== "approval" && (
        <form class="approval" onSubmit={(e) => { e.preventDefault(); answer({ tool_call_id: call.id, output }); }}>
          <Field label="Tool output"><input value={output} onInput={(e) => setOutput(e.currentTarget.value)} /></Field>
          <button type="submit" disabled={busy}>Send output</button>
        </form>
      )}
      <ErrorLine error={error} />
    </article>
  );
}

function Transcript({ items, onAnswered }: { items: Item[]; onAnswered: (item: Extract<Item, { kind: "tool" }>) => void }) {
  return (
    <ol class="transcript" aria-label="Messages">
      {items.map((item) => (
        <li key={item.key} class={`msg ${item.kind}${item.kind === "status" && item.error ? " failed" : ""}`}>
          {item.kind === "user" && <p>{item.text}</p>}
          {item.kind === "assistant" && (
            <>
              <p class="assistant-text">{item.text}</p>
              {item.runId && <a class="run-link" href={`#/runs/${item.runId}`}>Inspect run</a>}
            </>
          )}
          {item.kind === "tool" && <ToolCallCard call={item.call} runId={item.runId} onAnswered={() => onAnswered(item)} />}
          {item.kind === "status" && (
            <p class="muted">
              {item.text} {item.runId && <a href={`#/runs/${item.runId}`}>Inspect run</a>}
            </p>
          )}
        </li>
      ))}
    </ol>
  );
}

export function ChatPage({ threadId }: { threadId?: string }) {
  const agents = useLoad(() => api.GET("/v1/agents", { params: { query: { limit: 100 } } }).then(unwrap));
  const threads = useLoad(() => api.GET("/v1/threads", { params: { query: { limit: 50, order: "desc" } } }).then(unwrap));
  const [agentId, setAgentId] = useState(sessionStorage.getItem(AGENT_KEY) ?? "");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const first = agents.data?.data[0]?.id;
    if (!agentId && first) setAgentId(first);
  }, [agents.data]);
  const chooseAgent = (id: string) => {
    setAgentId(id);
    sessionStorage.setItem(AGENT_KEY, id);
  };
  const newThread = async () => {
    setError(null);
    try {
      const thread = unwrap(await api.POST("/v1/threads", { body: {} }));
      threads.reload();
      location.hash = `#/chat/${thread.id}`;
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <Page title="Chat">
      <div class="chat-layout">
        <aside class="threads" aria-label="Threads">
          <Field label="Agent">
            <select value={agentId} onChange={(e) => chooseAgent(e.currentTarget.value)}>
              {agents.data?.data.length === 0 && <option value="">No agents yet</option>}
              {agents.data?.data.map((a) => <option value={a.id}>{a.name}</option>)}
            </select>
          </Field>
          <button type="button" onClick={newThread}>New thread</button>
          <ErrorLine error={error ?? threads.error ?? agents.error} />
          <ul>
            {threads.data?.data.map((t) => (
              <li><a href={`#/chat/${t.id}`} aria-current={t.id === threadId ? "page" : undefined}>{t.id}</a><br /><small class="muted">{new Date(t.created_at).toLocaleString()}</small></li>
            ))}
          </ul>
        </aside>
        {threadId ? <Conversation threadId={threadId} agentId={agentId} key={threadId} /> : <p class="muted">Pick a thread or start a new one.</p>}
      </div>
    </Page>
  );
}

function Conversation({ threadId, agentId }: { threadId: string; agentId: string }) {
  const history = useLoad(() => loadHistory(threadId), [threadId]);
  const [live, setLive] = useState<Item[]>([]);
  const [input, setInput] = useState("");
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const liveRef = useRef<Item[]>([]);
  const endRef = useRef<HTMLDivElement>(null);
  const update = (fn: (items: Item[]) => Item[]) => {
    liveRef.current = fn(liveRef.current);
    setLive(liveRef.current);
  };
  useEffect(() => endRef.current?.scrollIntoView?.({ block: "end" }), [live, history.data]);

  const patchCall = (id: string, patch: Partial<ToolCallView>) =>
    update((items) => items.map((it) => (it.kind === "tool" && it.call.id === id ? { ...it, call: { ...it.call, ...patch } } : it)));

  const send = async (e: Event) => {
    e.preventDefault();
    const text = input.trim();
    if (!text || !agentId || running) return;
    setInput("");
    setError(null);
    setRunning(true);
    let runId: string | null = null;
    const turn = Date.now();
    update((items) => [...items, { kind: "user", text, key: `u-${turn}` }]);
    try {
      const response = await api.startRunStream(threadId, { agent_id: agentId, input: text });
      for await (const event of api.runEvents(response)) {
        const d = event.data ?? {};
        if (d.object === "run" && d.id) runId = d.id;
        switch (event.type) {
          case "message.delta": {
            const key = `a-${d.step_id}`;
            update((items) =>
              items.some((it) => it.key === key)
                ? items.map((it) => (it.key === key && it.kind === "assistant" ? { ...it, text: it.text + d.delta } : it))
                : [...items, { kind: "assistant", text: d.delta, key, runId }],
            );
            break;
          }
          case "tool_call.created":
            if (!liveRef.current.some((it) => it.kind === "tool" && it.call.id === d.tool_call_id)) {
              update((items) => [...items, { kind: "tool", key: `t-${d.tool_call_id}`, runId, call: { id: d.tool_call_id, name: d.name, arguments: d.arguments ?? "", action: d.action, state: d.action ? "waiting" : "running" } }]);
            }
            break;
          case "tool_call.completed":
            patchCall(d.tool_call_id, { state: d.ok !== false ? "done" : d.error?.code === REJECTED ? "rejected" : "failed", output: d.ok === false ? d.error : d.output });
            break;
          case "run.requires_action":
            for (const c of d.required_action?.tool_calls ?? []) patchCall(c.id, { state: "waiting", action: c.action });
            break;
          case "run.completed":
            update((items) => [...items, { kind: "status", text: "Run completed.", key: `s-${turn}`, runId }]);
            break;
          case "run.failed":
          case "run.cancelled":
          case "run.expired":
            update((items) => [...items, { kind: "status", error: true, text: `Run ${event.type.slice(4)}${d.last_error ? `: ${d.last_error.message}` : ""}`, key: `s-${turn}`, runId }]);
            break;
          case "error":
            setError(d.message ?? "The event stream broke.");
            break;
        }
      }
    } catch (err) {
      setError(errorText(err));
    } finally {
      setRunning(false);
    }
  };

  if (history.loading && !history.data) return <Loading what="Loading messages" />;
  const past = history.data ? historyItems(history.data) : [];
  /** A call of an earlier run answered from the page: wait for that run, then show the thread again. */
  const answeredFromHistory = async (runId: string) => {
    await api.GET("/v1/runs/{id}/wait", { params: { path: { id: runId }, query: { timeout_s: 30 } } });
    update(() => []);
    history.reload();
  };
  return (
    <div class="conversation">
      <ErrorLine error={history.error} />
      <Transcript items={[...past, ...live]} onAnswered={(item) => (item.key.startsWith("h-") ? answeredFromHistory(item.runId!) : patchCall(item.call.id, { state: "answered" }))} />
      <div ref={endRef} />
      <form class="composer" onSubmit={send} aria-label="Send a message">
        <label class="sr-only" for="chat-input">Message</label>
        <textarea id="chat-input" rows={2} placeholder={agentId ? "Message the agent…" : "Create an agent first"} value={input} onInput={(e) => setInput(e.currentTarget.value)}
          onKeyDown={(e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); (e.currentTarget.form as HTMLFormElement).requestSubmit(); } }} />
        <button type="submit" disabled={running || !agentId}>{running ? "Running…" : "Send"}</button>
      </form>
      {running && <p class="muted" role="status">The agent is working…</p>}
      <ErrorLine error={error} />
    </div>
  );
}
