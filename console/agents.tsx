/** Agents: list and create; one agent's settings, tools, core memory blocks and archival memories (with search). */
import { useState } from "preact/hooks";
import type { Ok } from "../sdk/client";
import { api, formatDate, unwrap, useLoad } from "./api";

type Agent = Ok<"/v1/agents/{id}", "get">;
import { ActionForm, ErrorLine, Field, Loading, Page, Table } from "./ui";


async function listTools() {
  const [custom, builtin] = await Promise.all([api.GET("/v1/tools", { params: { query: { limit: 100 } } }).then(unwrap), api.GET("/v1/tools/builtin").then(unwrap)]);
  return [...custom.data.map((t) => ({ id: t.id, name: t.name, note: t.requires_approval ? `${t.kind}, needs approval` : t.kind })), ...builtin.data.map((t) => ({ id: t.id, name: t.name, note: "builtin" }))];
}

function ToolPicker({ selected, onChange }: { selected: string[]; onChange: (ids: string[]) => void }) {
  const tools = useLoad(listTools);
  if (tools.loading && !tools.data) return <Loading what="Loading tools" />;
  return (
    <fieldset class="tool-picker">
      <legend>Tools</legend>
      <ErrorLine error={tools.error} />
      {tools.data?.length === 0 && <p class="muted">No tools yet: add one on the Tools page.</p>}
      {tools.data?.map((t) => (
        <label class="check">
          <input type="checkbox" name="tools" value={t.id} checked={selected.includes(t.id)} onChange={(e) => onChange(e.currentTarget.checked ? [...selected, t.id] : selected.filter((x) => x !== t.id))} />
          {t.name} <span class="muted">({t.note})</span>
        </label>
      ))}
    </fieldset>
  );
}

export function AgentsPage() {
  const agents = useLoad(() => api.GET("/v1/agents", { params: { query: { limit: 100 } } }).then(unwrap));
  const [name, setName] = useState("");
  const [model, setModel] = useState("gpt-4o-mini");
  const [instructions, setInstructions] = useState("You are a helpful assistant.");
  const [tools, setTools] = useState<string[]>([]);
  const [human, setHuman] = useState("");
  return (
    <Page title="Agents">
      <ErrorLine error={agents.error} />
      {agents.data ? (
        <Table
          caption="Agents"
          rows={agents.data.data}
          empty="No agents yet: create the first one below."
          columns={[
            ["Name", (a) => <a href={`#/agents/${a.id}`}>{a.name}</a>],
            ["Model", (a) => a.model],
            ["Tools", (a) => a.tools.length],
            ["Created", (a) => formatDate(a.created_at)],
            ["", (a) => <a class="button-link" href={`#/chat?agent=${a.id}`} onClick={(e) => { e.preventDefault(); sessionStorage.setItem("agentos.chat.agent", a.id); location.hash = "#/chat"; }}>Chat</a>],
          ]}
        />
      ) : (
        <Loading />
      )}
      <h2>New agent</h2>
      <ActionForm
        submit="Create agent"
        label="New agent"
        action={async () => {
          const memory_blocks = human ? [{ label: "human", value: human }] : undefined;
          const agent = unwrap(await api.POST("/v1/agents", { body: { name, model, instructions, tools, ...(memory_blocks ? { memory_blocks } : {}) } }));
          location.hash = `#/agents/${agent.id}`;
        }}
      >
        <Field label="Name"><input name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} /></Field>
        <Field label="Model" hint="Any model your OpenAI-compatible server knows."><input name="model" required value={model} onInput={(e) => setModel(e.currentTarget.value)} /></Field>
        <Field label="Instructions"><textarea name="instructions" rows={4} value={instructions} onInput={(e) => setInstructions(e.currentTarget.value)} /></Field>
        <Field label="Memory block “human”" hint="Optional: what the agent should know about its user."><textarea name="human" rows={2} value={human} onInput={(e) => setHuman(e.currentTarget.value)} /></Field>
        <ToolPicker selected={tools} onChange={setTools} />
      </ActionForm>
    </Page>
  );
}

function AgentSettings({ agent, onSaved }: { agent: Agent; onSaved: () => void }) {
  const [name, setName] = useState<string>(agent.name);
  const [model, setModel] = useState<string>(agent.model);
  const [instructions, setInstructions] = useState<string>(agent.instructions);
  const [tools, setTools] = useState<string[]>(agent.tools);
  const [saved, setSaved] = useState(false);
  return (
    <ActionForm
      submit="Save agent"
      label="Agent settings"
      action={async () => {
        setSaved(false);
        unwrap(await api.PATCH("/v1/agents/{id}", { params: { path: { id: agent.id } }, body: { name, model, instructions, tools } }));
        setSaved(true);
        onSaved();
      }}
    >
      <Field label="Name"><input name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} /></Field>
      <Field label="Model"><input name="model" required value={model} onInput={(e) => setModel(e.currentTarget.value)} /></Field>
      <Field label="Instructions"><textarea name="instructions" rows={6} value={instructions} onInput={(e) => setInstructions(e.currentTarget.value)} /></Field>
      <ToolPicker selected={tools} onChange={setTools} />
      {saved && <p class="ok" role="status">Saved.</p>}
    </ActionForm>
  );
}

function MemoryBlocks({ agentId }: { agentId: string }) {
  const blocks = useLoad(() => api.GET("/v1/agents/{id}/memory/blocks", { params: { path: { id: agentId } } }).then(unwrap), [agentId]);
  const [label, setLabel] = useState("");
  const [value, setValue] = useState("");
  return (
    <section aria-labelledby="blocks-title">
      <h2 id="blocks-title">Core memory blocks</h2>
      <ErrorLine error={blocks.error} />
      {blocks.data?.data.map((b) => <BlockEditor agentId={agentId} block={b} key={b.id} />)}
      {blocks.data?.data.length === 0 && <p class="muted">No memory blocks.</p>}
      <ActionForm
        submit="Add block"
        label="New memory block"
        action={async () => {
          unwrap(await api.PUT("/v1/agents/{id}/memory/blocks/{label}", { params: { path: { id: agentId, label } }, body: { value } }));
          setLabel("");
          setValue("");
          blocks.reload();
        }}
      >
        <Field label="Label"><input name="label" required pattern="[A-Za-z0-9_\-]+" value={label} onInput={(e) => setLabel(e.currentTarget.value)} /></Field>
        <Field label="Value"><textarea name="value" rows={2} value={value} onInput={(e) => setValue(e.currentTarget.value)} /></Field>
      </ActionForm>
    </section>
  );
}

function BlockEditor({ agentId, block }: { agentId: string; block: { label: string; value: string; limit: number | string } }) {
  const [value, setValue] = useState(block.value);
  const [saved, setSaved] = useState(false);
  return (
    <ActionForm
      submit={`Save “${block.label}”`}
      label={`Memory block ${block.label}`}
      action={async () => {
        unwrap(await api.PUT("/v1/agents/{id}/memory/blocks/{label}", { params: { path: { id: agentId, label: block.label } }, body: { value } }));
        setSaved(true);
      }}
    >
      <Field label={`${block.label} (limit ${block.limit} characters)`}>
        <textarea rows={3} value={value} onInput={(e) => { setSaved(false); setValue(e.currentTarget.value); }} />
      </Field>
      {saved && <p class="ok" role="status">Saved.</p>}
    </ActionForm>
  );
}

function Memories({ agentId }: { agentId: string }) {
  const [query, setQuery] = useState("");
  const [applied, setApplied] = useState("");
  const [content, setContent] = useState("");
  const memories = useLoad(
    () => api.GET("/v1/agents/{id}/memories", { params: { path: { id: agentId }, query: applied ? { query: applied, limit: 50 } : { limit: 50 } } }).then(unwrap),
    [agentId, applied],
  );
  return (
    <section aria-labelledby="memories-title">
      <h2 id="memories-title">Archival memories</h2>
      <form class="search" role="search" onSubmit={(e) => { e.preventDefault(); setApplied(query.trim()); }}>
        <label class="sr-only" for="memory-query">Search memories</label>
        <input id="memory-query" type="search" placeholder="Search memories" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        <button type="submit">Search</button>
      </form>
      <ErrorLine error={memories.error} />
      {memories.data && (
        <Table
          caption="Archival memories"
          rows={memories.data.data}
          empty={applied ? `Nothing matches “${applied}”.` : "No memories yet."}
          columns={[
            ["Memory", (m) => m.content],
            ...(applied ? ([["Score", (m: any) => (m.score ?? 0).toFixed(3)]] as [string, (m: any) => string][]) : []),
            ["Created", (m) => formatDate(m.created_at)],
            ["", (m) => (
              <button type="button" class="secondary" onClick={async () => { unwrap(await api.DELETE("/v1/agents/{id}/memories/{memory_id}", { params: { path: { id: agentId, memory_id: m.id } } })); memories.reload(); }}>
                Delete<span class="sr-only"> memory</span>
              </button>
            )],
          ]}
        />
      )}
      <ActionForm
        submit="Add memory"
        label="New memory"
        action={async () => {
          unwrap(await api.POST("/v1/agents/{id}/memories", { params: { path: { id: agentId } }, body: { content } }));
          setContent("");
          memories.reload();
        }}
      >
        <Field label="New memory"><textarea name="content" required rows={2} value={content} onInput={(e) => setContent(e.currentTarget.value)} /></Field>
      </ActionForm>
    </section>
  );
}

export function AgentPage({ id }: { id: string }) {
  const agent = useLoad(() => api.GET("/v1/agents/{id}", { params: { path: { id } } }).then(unwrap), [id]);
  return (
    <Page title={agent.data ? `Agent: ${agent.data.name}` : "Agent"} actions={<a class="button-link" href="#/chat" onClick={() => sessionStorage.setItem("agentos.chat.agent", id)}>Chat with this agent</a>}>
      <ErrorLine error={agent.error} />
      {agent.data ? (
        <div class="columns">
          <div>
            <AgentSettings agent={agent.data} onSaved={agent.reload} key={agent.data.id} />
          </div>
          <div>
            <MemoryBlocks agentId={id} />
            <Memories agentId={id} />
          </div>
        </div>
      ) : (
        <Loading />
      )}
      <p><a href="#/agents">← All agents</a></p>
    </Page>
  );
}
