/**
 * Modules in the style of dskit: ONE table of modules and their dependencies; a target
 * pulls in its transitive dependencies, cycles are rejected. Start has two phases: every
 * module's init runs once in topological order (registering what others will call), then
 * every service starts in the same order (consuming queues, serving RPC); stops run in
 * reverse start order.
 */
export interface Service {
  start?(): Promise<void> | void;
  /** Finish in-flight work and release resources; bounded by the caller's timeout. */
  stop?(): Promise<void> | void;
  /** Null when healthy, otherwise why not: what /readyz reports for the module. */
  health?(): Promise<string | null> | string | null;
}

export interface ModuleDef<C> {
  name: string;
  deps: string[];
  /** Other modules it calls at run time (documentation and client scoping; not start order). */
  uses?: string[];
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
      const service = (await this.graph.get(name)!.init?.(ctx)) ?? {};
      // Stopped (in reverse) on shutdown or failure even if its start never ran: init may hold resources.
      this.started.push({ name, service });
    }
    for (const { name, service } of [...this.started]) {
      await service.start?.();
      onStarted?.(name);
    }
  }

  /** The health checks of the started modules, by module name. */
  healthChecks(): [string, () => Promise<string | null> | string | null][] {
    return this.started.filter((m) => m.service.health).map((m) => [m.name, () => m.service.health!()]);
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
