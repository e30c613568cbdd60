import { describe, expect, test } from "bun:test";
import { parseConfig, redactUrl } from "./config";
import { FatalError } from "./errors";
import { applyHeapGrowth, wantedHeapGrowth } from "./heap-growth";

describe("config", () => {
  test("defaults: serve, all roles, port 8080, ./data", () => {
    const c = parseConfig([], {});
    expect(c).toMatchObject({ command: "serve", roles: ["all"], port: 8080, dataDir: "./data", logLevel: "info" });
  });

  test("flags win over their environment twins", () => {
    const env = { PORT: "9000", AGENTOS_ROLE: "gateway", DATABASE_URL: "postgres://a@h/db", LOG_LEVEL: "warn" };
    expect(parseConfig([], env)).toMatchObject({ port: 9000, roles: ["gateway"], databaseUrl: "postgres://a@h/db", logLevel: "warn" });
    expect(parseConfig(["--port=9100", "--role", "auth,agents"], env)).toMatchObject({ port: 9100, roles: ["auth", "agents"] });
  });

  test("the PostgreSQL pool size: 10 by default, DATABASE_POOL_SIZE or --database-pool-size", () => {
    expect(parseConfig([], {}).databasePoolSize).toBe(10);
    expect(parseConfig([], { DATABASE_POOL_SIZE: "25" }).databasePoolSize).toBe(25);
    expect(parseConfig(["--database-pool-size=4"], { DATABASE_POOL_SIZE: "25" }).databasePoolSize).toBe(4);
    expect(parseConfig([], {}).databasePreparedStatements).toBe(true);
    expect(parseConfig([], { DATABASE_PREPARED_STATEMENTS: "false" }).databasePreparedStatements).toBe(false);
    expect(() => parseConfig(["--database-pool-size=0"], {})).toThrow("is not a positive integer");
  });

  test("commands", () => {
    expect(parseConfig(["migrate"], {}).command).toBe("migrate");
    expect(parseConfig(["roles"], {}).command).toBe("roles");
    expect(parseConfig(["--help"], {}).command).toBe("help");
    expect(parseConfig(["--version"], {}).command).toBe("version");
  });

  test.each([
    [["--port=abc"], "--port: 'abc' is not a port number"],
    [["--port=70000"], "not a port number"],
    [["--bogus"], "unknown flag '--bogus'"],
    [["frobnicate"], "unknown command 'frobnicate'"],
    [["--database-url=mysql://x"], "expected a postgres: or postgresql: URL"],
    [["--log-level=loud"], "'loud' is not one of"],
    [["--port"], "--port needs a value"],
  ])("%p is refused with one clear line", (argv, message) => {
    expect(() => parseConfig(argv as string[], {})).toThrow(FatalError);
    expect(() => parseConfig(argv as string[], {})).toThrow(message);
  });

  test("a bad environment value is refused too, naming the variable", () => {
    expect(() => parseConfig([], { PORT: "eighty" })).toThrow("PORT: 'eighty' is not a port number");
  });

  test("the JS heap growth: 0.1 with the embedded database, Bun's with PostgreSQL, or what is asked", () => {
    expect(wantedHeapGrowth(parseConfig([], {}))).toBe(0.1);
    expect(wantedHeapGrowth(parseConfig([], { DATABASE_URL: "postgres://a@h/db" }))).toBeNull();
    expect(wantedHeapGrowth(parseConfig(["--js-heap-growth=1"], { DATABASE_URL: "postgres://a@h/db" }))).toBe(1);
    expect(wantedHeapGrowth(parseConfig([], { AGENTOS_JS_HEAP_GROWTH: "0.25" }))).toBe(0.25);
    for (const bad of ["0", "0.05", "-1", "11", "1e3", "fast", ""]) expect(() => parseConfig([`--js-heap-growth=${bad}`], {})).toThrow("is not auto or a number from 0.1 to 10");
    // Already set (by the first start or by the operator): no restart, whatever the config says.
    expect(() => applyHeapGrowth({ jsHeapGrowth: 0.1 }, { BUN_JSC_heapGrowthMaxIncrease: "2" })).not.toThrow();
  });

  test("URLs are redacted in messages", () => {
    expect(redactUrl("postgres://user:hunter2@db:5432/x")).toBe("postgres://user:***@db:5432/x");
  });
});
