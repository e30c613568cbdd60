/** Tools, usage and cost, webhooks with their deliveries, API keys, members. */
import { useState } from "preact/hooks";
import { api, formatDate, unwrap, useLoad } from "./api";
import { ActionForm, BarChart, ErrorLine, Field, Json, Loading, Page, Table } from "./ui";
import type { paths } from "../sdk/client";

/** The event types a webhook may subscribe to, as the API documents them. */
type WebhookEventTypes = NonNullable<NonNullable<paths["/v1/webhooks"]["post"]["requestBody"]>["content"]["application/json"]["event_types"]>;

const DEFAULT_PARAMETERS = JSON.stringify({ type: "object", properties: { q: { type: "string" } } }, null, 2);

export function ToolsPage() {
  const tools = useLoad(() => api.GET("/v1/tools", { params: { query: { limit: 100 } } }).then(unwrap));
  const builtin = useLoad(() => api.GET("/v1/tools/builtin").then(unwrap));
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [url, setUrl] = useState("");
  const [parameters, setParameters] = useState(DEFAULT_PARAMETERS);
  const [approval, setApproval] = useState(false);
  return (
    <Page title="Tools">
      <ErrorLine error={tools.error ?? builtin.error} />
      {tools.data ? (
        <Table
          caption="Your tools"
          rows={tools.data.data}
          empty="No tools yet."
          columns={[
            ["Name", (t) => t.name],
            ["Kind", (t) => t.kind],
            ["Target", (t) => String((t.config as any)?.url ?? (t.config as any)?.subject ?? "—")],
            ["Approval", (t) => (t.requires_approval ? "required" : "no")],
            ["", (t) => <button type="button" class="secondary" onClick={async () => { unwrap(await api.DELETE("/v1/tools/{id}", { params: { path: { id: t.id }, query: { force: true } } })); tools.reload(); }}>Delete<span class="sr-only"> {t.name}</span></button>],
          ]}
        />
      ) : (
        <Loading />
      )}
      <h2>New HTTP tool</h2>
      <ActionForm
        submit="Create tool"
        label="New HTTP tool"
        action={async () => {
          const schema = JSON.parse(parameters);
          unwrap(await api.POST("/v1/tools", { body: { name, description, kind: "http", config: { url }, parameters: schema, requires_approval: approval } }));
          setName("");
          setDescription("");
          setUrl("");
          setApproval(false);
          tools.reload();
        }}
      >
        <Field label="Name" hint="Letters, digits, _ and -; the model calls the tool by this name."><input name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} /></Field>
        <Field label="Description"><input name="description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} /></Field>
        <Field label="URL" hint="AgentOS POSTs the call's arguments here, signed."><input name="url" type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} /></Field>
        <Field label="Parameters (JSON Schema)"><textarea name="parameters" rows={5} class="mono" value={parameters} onInput={(e) => setParameters(e.currentTarget.value)} /></Field>
        <label class="check"><input type="checkbox" name="requires_approval" checked={approval} onChange={(e) => setApproval(e.currentTarget.checked)} /> Requires approval before each call</label>
      </ActionForm>
      <h2>Built-in tools</h2>
      {builtin.data && <Table caption="Built-in tools" rows={builtin.data.data} empty="None." columns={[["Name", (t) => t.name], ["Description", (t) => t.description]]} />}
    </Page>
  );
}

async function loadUsage() {
  const [byDay, byAgent, plan, invoices, agents] = await Promise.all([
    api.GET("/v1/billing/usage", { params: { query: { group_by: "day" } } }).then(unwrap),
    api.GET("/v1/billing/usage", { params: { query: { group_by: "agent" } } }).then(unwrap),
    api.GET("/v1/billing/plan").then(unwrap),
    api.GET("/v1/billing/invoices", { params: { query: { limit: 1 } } }).then(unwrap),
    api.GET("/v1/agents", { params: { query: { limit: 100 } } }).then(unwrap),
  ]);
  const names = new Map(agents.data.map((a) => [a.id, a.name]));
  return { byDay, byAgent, plan, invoice: invoices.data[0], names };
}

function PlanForm({ current, plans, onChanged }: { current: string; plans: { plan: string }[]; onChanged: () => void }) {
  const [plan, setPlan] = useState(current);
  return (
    <ActionForm
      submit="Change plan"
      label="Plan"
      class="card form inline-form"
      action={async () => {
        unwrap(await api.PUT("/v1/billing/plan", { body: { plan: plan as "free" | "pro" | "business" | "enterprise" } }));
        onChanged();
      }}
    >
      <Field label="Plan">
        <select value={plan} onChange={(e) => setPlan(e.currentTarget.value)}>
          {plans.map((p) => <option value={p.plan}>{p.plan}</option>)}
        </select>
      </Field>
    </ActionForm>
  );
}

export function UsagePage() {
  const usage = useLoad(loadUsage);
  const u = usage.data;
  return (
    <Page title="Usage and cost" actions={<button type="button" class="secondary" onClick={usage.reload}>Refresh</button>}>
      <ErrorLine error={usage.error} />
      {!u ? (
        <Loading />
      ) : (
        <>
          <dl class="facts card">
            <div><dt>Plan</dt><dd>{u.plan.plan}</dd></div>
            <div><dt>Period</dt><dd>{new Date(u.plan.period.start).toLocaleDateString()} – {new Date(u.plan.period.end).toLocaleDateString()}</dd></div>
            <div><dt>Runs</dt><dd>{Number(u.plan.usage.runs).toLocaleString()} / {Number(u.plan.limits.runs_per_month).toLocaleString()}</dd></div>
            <div><dt>Tokens</dt><dd>{Number(u.plan.usage.tokens).toLocaleString()} / {Number(u.plan.limits.tokens_per_month).toLocaleString()}</dd></div>
            <div><dt>Cost this period</dt><dd>{u.invoice ? `$${(Number(u.invoice.total_cents) / 100).toFixed(2)}` : "—"}</dd></div>
          </dl>
          <PlanForm current={u.plan.plan} plans={u.plan.available_plans} onChanged={usage.reload} />
          <div class="charts">
            <BarChart title="Tokens per day" unit="tokens" items={u.byDay.data.map((r) => ({ label: r.key ? r.key.slice(0, 10) : "—", value: Number(r.total_tokens) }))} />
            <BarChart title="Runs per day" unit="runs" items={u.byDay.data.map((r) => ({ label: r.key ? r.key.slice(0, 10) : "—", value: Number(r.runs) }))} />
            <BarChart title="Tokens per agent" unit="tokens" items={u.byAgent.data.map((r) => ({ label: (r.key && u.names.get(r.key)) ?? r.key ?? "—", value: Number(r.total_tokens) }))} />
            <BarChart title="Cost per day" unit="¢" items={u.byDay.data.map((r) => ({ label: r.key ? r.key.slice(0, 10) : "—", value: Math.round(Number(r.cost_cents) * 10_000) / 10_000 }))} />
            <BarChart title="Cost per agent" unit="¢" items={u.byAgent.data.map((r) => ({ label: (r.key && u.names.get(r.key)) ?? r.key ?? "—", value: Math.round(Number(r.cost_cents) * 10_000) / 10_000 }))} />
            <BarChart title="Cost per model (this period)" unit="¢" items={(u.invoice?.line_items ?? []).map((l: any) => ({ label: l.model ?? l.description, value: Math.round(Number(l.amount_cents) * 100) / 100 }))} />
          </div>
          <h2>Per agent</h2>
          <Table
            caption="Usage per agent"
            rows={u.byAgent.data}
            empty="No usage yet."
            columns={[
              ["Agent", (r) => (r.key && u.names.get(r.key)) ?? r.key ?? "—"],
              ["Runs", (r) => r.runs],
              ["Model calls", (r) => r.model_calls],
              ["Tool calls", (r) => r.tool_calls],
              ["Prompt tokens", (r) => r.prompt_tokens],
              ["Completion tokens", (r) => r.completion_tokens],
              ["Cost (¢)", (r) => (Math.round(Number(r.cost_cents) * 10_000) / 10_000).toString()],
            ]}
          />
        </>
      )}
    </Page>
  );
}

function Deliveries({ webhookId }: { webhookId: string }) {
  const deliveries = useLoad(() => api.GET("/v1/webhooks/{id}/deliveries", { params: { path: { id: webhookId }, query: { limit: 20, order: "desc" } } }).then(unwrap), [webhookId]);
  return (
    <section aria-label="Deliveries">
      <ErrorLine error={deliveries.error} />
      {deliveries.data && (
        <Table
          caption="Deliveries"
          rows={deliveries.data.data}
          empty="No deliveries yet."
          columns={[
            ["Event", (d) => d.event_type],
            ["Status", (d) => <span class={`badge status-${d.status}`}>{d.status}</span>],
            ["Attempts", (d) => d.attempts],
            ["Last response", (d) => { const last: any = d.attempt_log.at(-1); return last ? `${last.status_code ?? last.error ?? "—"} in ${last.latency_ms ?? "?"} ms` : "—"; }],
            ["Created", (d) => formatDate(d.created_at)],
          ]}
        />
      )}
      <button type="button" class="secondary" onClick={deliveries.reload}>Refresh deliveries</button>
    </section>
  );
}

export function WebhooksPage() {
  const hooks = useLoad(() => api.GET("/v1/webhooks", { params: { query: { limit: 100 } } }).then(unwrap));
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <Page title="Webhooks">
      <ErrorLine error={hooks.error} />
      {!hooks.data ? <Loading /> : hooks.data.data.length === 0 && <p class="muted">No webhooks yet.</p>}
      {hooks.data?.data.map((h) => (
        <article class="card" aria-label={`Webhook ${h.url}`}>
          <header class="row">
            <strong class="break">{h.url}</strong>
            <span class="badge">{h.active ? "active" : "inactive"}</span>
          </header>
          <p class="muted">Events: {h.event_types.length ? h.event_types.join(", ") : "all"} · created {formatDate(h.created_at)}</p>
          <div class="row">
            <button type="button" aria-expanded={open === h.id} onClick={() => setOpen(open === h.id ? null : h.id)}>{open === h.id ? "Hide deliveries" : "Show deliveries"}</button>
            <button type="button" class="danger" onClick={async () => { unwrap(await api.DELETE("/v1/webhooks/{id}", { params: { path: { id: h.id } } })); hooks.reload(); }}>Delete</button>
          </div>
          {open === h.id && <Deliveries webhookId={h.id} />}
        </article>
      ))}
      <h2>New webhook</h2>
      {secret && (
        <div class="card notice" role="status">
          <p>Signing secret (shown once; verify the <code>x-agentos-signature</code> header with it):</p>
          <Json value={secret} />
        </div>
      )}
      <ActionForm
        submit="Create webhook"
        label="New webhook"
        action={async () => {
          // Free text, checked by the API (an unknown type is a 400 listing the valid ones).
          const event_types = events.split(",").map((s) => s.trim()).filter(Boolean) as WebhookEventTypes;
          const hook = unwrap(await api.POST("/v1/webhooks", { body: { url, ...(event_types.length ? { event_types } : {}) } }));
          setSecret(hook.secret);
          setUrl("");
          hooks.reload();
        }}
      >
        <Field label="URL"><input name="url" type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} /></Field>
        <Field label="Event types" hint="Comma-separated, e.g. run.completed, run.failed; empty = all."><input name="event_types" value={events} onInput={(e) => setEvents(e.currentTarget.value)} /></Field>
      </ActionForm>
    </Page>
  );
}

export function ApiKeysPage() {
  const keys = useLoad(() => api.GET("/v1/api-keys", { params: { query: { limit: 100 } } }).then(unwrap));
  const [name, setName] = useState("");
  const [created, setCreated] = useState<string | null>(null);
  return (
    <Page title="API keys">
      <ErrorLine error={keys.error} />
      {keys.data ? (
        <Table
          caption="API keys"
          rows={keys.data.data}
          empty="No API keys yet."
          columns={[
            ["Name", (k) => k.name],
            ["Prefix", (k) => <code>{k.prefix}…</code>],
            ["Created", (k) => formatDate(k.created_at)],
            ["Last used", (k) => formatDate(k.last_used_at)],
            ["Expires", (k) => formatDate(k.expires_at)],
            ["", (k) => <button type="button" class="danger" onClick={async () => { unwrap(await api.DELETE("/v1/api-keys/{id}", { params: { path: { id: k.id } } })); keys.reload(); }}>Revoke<span class="sr-only"> {k.name}</span></button>],
          ]}
        />
      ) : (
        <Loading />
      )}
      {created && (
        <div class="card notice" role="status">
          <p>Your new key (shown once — copy it now):</p>
          <Json value={created} />
        </div>
      )}
      <ActionForm
        submit="Create key"
        label="New API key"
        action={async () => {
          const key = unwrap(await api.POST("/v1/api-keys", { body: { name } }));
          setCreated(key.key);
          setName("");
          keys.reload();
        }}
      >
        <Field label="Key name"><input name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} /></Field>
      </ActionForm>
    </Page>
  );
}

export function MembersPage() {
  const members = useLoad(() => api.GET("/v1/organization/members", { params: { query: { limit: 100 } } }).then(unwrap));
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<"member" | "owner">("member");
  return (
    <Page title="Members">
      <ErrorLine error={members.error} />
      {members.data ? (
        <Table caption="Members" rows={members.data.data} empty="No members." columns={[["Email", (m) => m.email], ["Name", (m) => m.name ?? "—"], ["Role", (m) => m.role], ["Since", (m) => formatDate(m.created_at)]]} />
      ) : (
        <Loading />
      )}
      <h2>Add a member</h2>
      <ActionForm
        submit="Add member"
        label="Add a member"
        action={async () => {
          unwrap(await api.POST("/v1/organization/members", { body: { email, role } }));
          setEmail("");
          members.reload();
        }}
      >
        <Field label="Email" hint="An existing AgentOS user."><input name="email" type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} /></Field>
        <Field label="Role">
          <select value={role} onChange={(e) => setRole(e.currentTarget.value as "member" | "owner")}>
            <option value="member">member</option>
            <option value="owner">owner</option>
          </select>
        </Field>
      </ActionForm>
    </Page>
  );
}
