/**
 * Modules in the style of dskit: ONE table of modules and their dependencies; a target
 * pulls in its transitive dependencies, cycles are rejected, each module's init runs once
 * in topological order and returns a service; stops run in reverse order.
 */
export interface Service {
  start?(): Promise<void> | void;
  /** Finish in-flight work and release resources; bounded by the caller's timeout. */
  stop?(): Promise<void> | void;
}

export interface ModuleDef<C> {
  name: string;
  deps: string[];
  description: string;
  /** Selectable with --role (the platform's backends are modules too, but internal). */
  role?: boolean;
  init?(ctx: C): Promise<Service | void> | Service | void;
}

export class ModuleGraph<C> {
  private defs = new Map<string, ModuleDef<C>>();

  constructor(defs: ModuleDef<C>[]) {
    for (const d of defs) this.defs.set(d.name, d);
    for (const d of defs) for (const dep of d.deps) if (!this.defs.has(dep)) throw new Error(`module ${d.name} depends on unknown ${dep}`);
    this.order([...this.defs.keys()]); // reject cycles up front
  }

  get(name: string) {
    return this.defs.get(name);
  }

  roles() {
    return [...this.defs.values()].filter((d) => d.role);
  }

  /** Targets plus their transitive dependencies, dependencies first. */
  order(targets: string[]): string[] {
    const out: string[] = [];
    const state = new Map<string, "visiting" | "done">();
    const visit = (name: string, path: string[]) => {
      const s = state.get(name);
      if (s === "done") return;
      if (s === "visiting") throw new Error(`dependency cycle: ${[...path, name].join(" -> ")}`);
      const def = this.defs.get(name);
      if (!def) throw new Error(`unknown module ${name}`);
      state.set(name, "visiting");
      for (const dep of def.deps) visit(dep, [...path, name]);
      state.set(name, "done");
      out.push(name);
    };
    for (const t of targets) visit(t, []);
    return out;
  }
}

export class ModuleManager<C> {
  private started: { name: string; service: Service }[] = [];

  constructor(private graph: ModuleGraph<C>) {}

  async start(targets: string[], ctx: C, onStarted?: (name: string) => void): Promise<void> {
    for (const name of this.graph.order(targets)) {
      const def = this.graph.get(name)!;
      const service = (await def.init?.(ctx)) ?? {};
      await service.start?.();
      this.started.push({ name, service });
      onStarted?.(name);
    }
  }

  /** Stops modules in reverse start order; each stop is awaited before its dependencies stop. */
  async stop(onError: (name: string, err: unknown) => void): Promise<void> {
    while (this.started.length) {
      const { name, service } = this.started.pop()!;
      try {
        await service.stop?.();
      } catch (err) {
        onError(name, err);
      }
    }
  }
}
