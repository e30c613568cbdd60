/** The console's one API client (sdk/client.ts, same origin) and small helpers around it. */
import { useEffect, useState } from "preact/hooks";
import { AgentOSError, createAgentOS, unwrap, type Session } from "../sdk/client";

const listeners = new Set<(s: Session | null) => void>();
export const api = createAgentOS({ baseUrl: "", onSession: (s) => listeners.forEach((l) => l(s)) });
export { unwrap };

/** The current session (re-renders on login, refresh and logout). */
export function useSession(): Session | null {
  const [session, setSession] = useState(api.session());
  useEffect(() => {
    listeners.add(setSession);
    return () => void listeners.delete(setSession);
  }, []);
  return session;
}

export function errorText(err: unknown): string {
  if (err instanceof AgentOSError) return `${err.error.message} (${err.error.code})`;
  return err instanceof Error ? err.message : String(err);
}

/** Loads `load()` on mount and whenever `deps` change; `reload()` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (err) => live && setState({ error: errorText(err), loading: false }),
    );
    return () => void (live = false);
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export const formatDate = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : "—");
