/**
 * The module table tells the truth about role-to-role calls: every `clients.<role>` a role's
 * code names is declared in its `uses` (controllers — routes.ts, live.ts — are the gateway's), and at
 * run time a role that reaches for an undeclared client gets an error at once.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ARCHITECTURE_MD, renderArchitecture } from "../../scripts/architecture";
import { scopeClients, type Clients } from "./clients";
import { ROLE_MODULES } from "./modules";

const ROLES_DIR = import.meta.dir;
const usesOf = (role: string) => ROLE_MODULES.find((r) => r.name === role)!.uses;
/** Files of a role that the gateway mounts (HTTP controllers and streams). */
const isController = (file: string) => file.endsWith("routes.ts") || file.endsWith("live.ts");

function clientsNamedIn(dir: string, pick: (file: string) => boolean): Set<string> {
  const found = new Set<string>();
  for (const entry of readdirSync(dir, { recursive: true }) as string[]) {
    if (!entry.endsWith(".ts") || entry.endsWith(".test.ts") || !pick(entry)) continue;
    const code = readFileSync(join(dir, entry), "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (const m of code.matchAll(/\bclients\.(agents|auth|billing|memory|notify|tools)\b/g)) found.add(m[1]);
  }
  return found;
}

describe("the module table's role calls", () => {
  test("every client a role's code names is declared in its uses", () => {
    const controllers = new Set<string>();
    for (const role of ROLE_MODULES) {
      const dir = join(ROLES_DIR, role.name);
      const own = clientsNamedIn(dir, (f) => !isController(f));
      expect([role.name, [...own].filter((c) => !role.uses.includes(c as keyof Clients))]).toEqual([role.name, []]);
      for (const c of clientsNamedIn(dir, isController)) controllers.add(c);
    }
    // Controllers are mounted on the gateway: their calls are the gateway's.
    expect([...controllers].filter((c) => !usesOf("gateway").includes(c as keyof Clients))).toEqual([]);
  });

  test("uses names only roles that serve a contract", () => {
    const serving = ROLE_MODULES.filter((r) => r.rpc).map((r) => r.name);
    for (const role of ROLE_MODULES) for (const used of role.uses) expect(serving).toContain(used);
  });

  test("ARCHITECTURE.md's module graph is the table's (bun run scripts/architecture.ts rewrites it)", () => {
    const current = readFileSync(ARCHITECTURE_MD, "utf8");
    expect(renderArchitecture(current)).toBe(current);
  });

  test("an undeclared client throws naming the role and the fix", () => {
    const clients = { memory: { ok: true }, billing: { ok: true } } as unknown as Clients;
    const scoped = scopeClients(clients, "worker", ["memory"]);
    expect(scoped.memory as unknown).toEqual({ ok: true });
    expect(() => scoped.billing).toThrow(/role worker calls p\.clients\.billing but does not declare it/);
  });
});
