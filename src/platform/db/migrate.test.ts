/** Migrations: applied once, idempotent, and safe when several processes start at once. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrations } from "../../../schema/migrations";
import { createTestDatabase, describeReal } from "../../../test/support/backends";
import { silentLogger } from "../logging";
import { openDatabase } from "./index";
import { pendingMigrations } from "./migrate";

const ALL = migrations.map((m) => m.tag);

describe("migrations on the embedded database", () => {
  test("applied at first open, nothing pending after, data kept across reopen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentos-mig-"));
    try {
      const a = await openDatabase({ dataDir: dir, log: silentLogger });
      expect(await pendingMigrations(a.db)).toEqual(ALL);
      expect(await a.migrate()).toEqual(ALL);
      expect(await a.migrate()).toEqual([]);
      await a.db.execute("insert into organizations (id, name) values ('org_x', 'kept')" as any);
      await a.close();
      const b = await openDatabase({ dataDir: dir, log: silentLogger });
      expect(await pendingMigrations(b.db)).toEqual([]);
      const rows: any = await b.db.execute("select name from organizations where id = 'org_x'" as any);
      expect(rows.rows[0].name).toBe("kept");
      await b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

await describeReal("migrations on PostgreSQL", () => {
  test("four processes migrating at once: each migration applied exactly once", async () => {
    const database = await createTestDatabase();
    try {
      const dbs = await Promise.all([1, 2, 3, 4].map(() => openDatabase({ url: database.url, dataDir: "/nonexistent", log: silentLogger })));
      const applied = await Promise.all(dbs.map((d) => d.migrate()));
      expect(applied.flat().sort()).toEqual([...ALL].sort());
      expect(await pendingMigrations(dbs[0].db)).toEqual([]);
      await Promise.all(dbs.map((d) => d.close()));
    } finally {
      await database.drop();
    }
  });

  test("an unreachable database is one clear error", async () => {
    await expect(openDatabase({ url: "postgres://postgres@127.0.0.1:1/x", dataDir: "/x", log: silentLogger })).rejects.toThrow(/cannot reach PostgreSQL at postgres:\/\/postgres@127.0.0.1:1\/x/);
  });
});
