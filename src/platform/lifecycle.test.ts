import { describe, expect, test } from "bun:test";
import { ModuleGraph, ModuleManager } from "./lifecycle";
import { moduleGraph } from "../roles/modules";

describe("module graph", () => {
  test("a target pulls in its dependencies, dependencies first", () => {
    const g = new ModuleGraph([
      { name: "db", deps: [], description: "" },
      { name: "bus", deps: [], description: "" },
      { name: "auth", deps: ["db", "bus"], description: "", role: true },
      { name: "gateway", deps: ["bus"], description: "", role: true },
      { name: "all", deps: ["auth", "gateway"], description: "", role: true },
    ]);
    expect(g.order(["gateway"])).toEqual(["bus", "gateway"]);
    expect(g.order(["all"])).toEqual(["db", "bus", "auth", "gateway", "all"]);
  });

  test("cycles and unknown dependencies are rejected when the table is built", () => {
    expect(() => new ModuleGraph([{ name: "a", deps: ["b"], description: "" }, { name: "b", deps: ["a"], description: "" }])).toThrow("dependency cycle");
    expect(() => new ModuleGraph([{ name: "a", deps: ["nope"], description: "" }])).toThrow("unknown nope");
  });

  test("every module inits before any starts (local services exist before anything calls them), then starts in order, stops in reverse", async () => {
    const events: string[] = [];
    const mod = (name: string, deps: string[]) => ({
      name, deps, description: "",
      init: () => {
        events.push(`init ${name}`);
        return { start: () => void events.push(`start ${name}`), stop: () => void events.push(`stop ${name}`) };
      },
    });
    const g = new ModuleGraph([mod("db", []), mod("a", ["db"]), mod("b", ["db", "a"])]);
    const m = new ModuleManager(g);
    await m.start(["a", "b"], {});
    await m.stop(() => {});
    expect(events).toEqual(["init db", "init a", "init b", "start db", "start a", "start b", "stop b", "stop a", "stop db"]);
  });

  test("a failed start stops every module that was initialised, in reverse", async () => {
    const events: string[] = [];
    const mod = (name: string, deps: string[], fail = false) => ({
      name, deps, description: "",
      init: () => ({
        start: () => {
          if (fail) throw new Error(`${name} failed`);
        },
        stop: () => void events.push(`stop ${name}`),
      }),
    });
    const m = new ModuleManager(new ModuleGraph([mod("db", []), mod("a", ["db"], true), mod("b", ["a"])]));
    await expect(m.start(["b"], {})).rejects.toThrow("a failed");
    await m.stop(() => {});
    expect(events).toEqual(["stop b", "stop a", "stop db"]);
  });

  test("each module reports its own health, which is what /readyz shows", async () => {
    let bus: string | null = null;
    const m = new ModuleManager(new ModuleGraph([
      { name: "db", deps: [], description: "", init: () => ({ health: () => null }) },
      { name: "bus", deps: [], description: "", init: () => ({ health: () => bus }) },
      { name: "role", deps: ["db", "bus"], description: "", init: () => ({}) },
    ]));
    await m.start(["role"], {});
    const report = async () => Object.fromEntries(await Promise.all(m.healthChecks().map(async ([name, fn]) => [name, await fn()])));
    expect(await report()).toEqual({ db: null, bus: null });
    bus = "nats disconnected for 3s";
    expect(await report()).toEqual({ db: null, bus: "nats disconnected for 3s" });
    await m.stop(() => {});
    expect(m.healthChecks()).toEqual([]);
  });

  test("the real table has no cycle and `all` covers every role", () => {
    const all = moduleGraph.order(["all"]);
    for (const role of moduleGraph.roles()) expect(all).toContain(role.name);
  });
});
