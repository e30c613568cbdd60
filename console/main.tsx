/**
 * The AgentOS console: a single page over the public API (sdk/client.ts), served by the binary
 * at /console. Hash routes (#/agents, #/chat/<thread>, #/runs/<run>…) so the server needs one
 * HTML document only; focus moves to each page's heading on navigation for keyboard and
 * screen-reader users.
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, useSession } from "./api";
import { AgentPage, AgentsPage } from "./agents";
import { ChatPage } from "./chat";
import { RunPage } from "./run";
import { ApiKeysPage, MembersPage, ToolsPage, UsagePage, WebhooksPage } from "./pages";
import { ActionForm, Field, Page } from "./ui";
import "./styles.css";

const NAV: [string, string][] = [
  ["#/agents", "Agents"],
  ["#/chat", "Chat"],
  ["#/tools", "Tools"],
  ["#/usage", "Usage"],
  ["#/webhooks", "Webhooks"],
  ["#/keys", "API keys"],
  ["#/members", "Members"],
];

function useRoute(): string[] {
  const parse = () => location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const onHash = () => setRoute(parse());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  return route;
}

function AuthPage({ mode }: { mode: "login" | "signup" }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [name, setName] = useState("");
  const signup = mode === "signup";
  return (
    <main id="main" class="auth">
      <Page title={signup ? "Create your account" : "Log in to AgentOS"}>
        <ActionForm
          submit={signup ? "Sign up" : "Log in"}
          label={signup ? "Sign up" : "Log in"}
          action={async () => {
            await (signup ? api.signup(email, password, name || undefined) : api.login(email, password));
            location.hash = "#/agents";
          }}
        >
          {signup && (
            <Field label="Name">
              <input name="name" autocomplete="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
            </Field>
          )}
          <Field label="Email">
            <input name="email" type="email" required autocomplete="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
          </Field>
          <Field label="Password" hint={signup ? "At least 8 characters." : undefined}>
            <input name="password" type="password" required minLength={signup ? 8 : undefined} autocomplete={signup ? "new-password" : "current-password"} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          </Field>
        </ActionForm>
        <p>
          {signup ? <>Have an account? <a href="#/login">Log in</a></> : <>New here? <a href="#/signup">Create an account</a></>}
        </p>
        <p class="muted">Tokens are kept in this tab's memory only: reloading the page logs you out.</p>
      </Page>
    </main>
  );
}

function Shell({ route }: { route: string[] }) {
  const [menuOpen, setMenuOpen] = useState(false);
  const [section, id] = route;
  useEffect(() => {
    setMenuOpen(false);
    document.getElementById("page-title")?.focus();
  }, [route.join("/")]);
  let page;
  switch (section) {
    case "agents":
      page = id ? <AgentPage id={id} /> : <AgentsPage />;
      break;
    case "chat":
      page = <ChatPage threadId={id} />;
      break;
    case "runs":
      page = <RunPage id={id} />;
      break;
    case "tools":
      page = <ToolsPage />;
      break;
    case "usage":
      page = <UsagePage />;
      break;
    case "webhooks":
      page = <WebhooksPage />;
      break;
    case "keys":
      page = <ApiKeysPage />;
      break;
    case "members":
      page = <MembersPage />;
      break;
    default:
      page = <AgentsPage />;
  }
  const current = `#/${section ?? "agents"}`;
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("page-title")?.focus(); }}>Skip to content</a>
      <header class="top">
        <span class="brand">AgentOS</span>
        <button type="button" class="menu-toggle" aria-expanded={menuOpen} aria-controls="nav" onClick={() => setMenuOpen(!menuOpen)}>Menu</button>
        <nav id="nav" aria-label="Console" class={menuOpen ? "open" : ""}>
          <ul>
            {NAV.map(([href, label]) => (
              <li><a href={href} aria-current={current === href ? "page" : undefined}>{label}</a></li>
            ))}
          </ul>
          <button type="button" class="secondary" onClick={async () => { await api.logout(); location.hash = "#/login"; }}>Log out</button>
        </nav>
      </header>
      <main id="main">{page}</main>
    </div>
  );
}

function App() {
  const session = useSession();
  const route = useRoute();
  if (!session) return <AuthPage mode={route[0] === "signup" ? "signup" : "login"} />;
  return <Shell route={route} />;
}

render(<App />, document.getElementById("app")!);
