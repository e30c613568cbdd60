#!/usr/bin/env bun
/**
 * The `agentos` command: serve | migrate | roles | --help | --version. Every start-up
 * problem ends the process with one line on stderr and exit code 1, never a stack trace.
 *
 * Only the config is imported up front: each command imports what it runs (`import()`, a chunk
 * of its own in the binary), so `--help` loads no backend client and a role no other role's code.
 */
import { helpText, parseConfig, type Config } from "./platform/config";
import { FatalError } from "./platform/errors";
import { applyHeapGrowth } from "./platform/heap-growth";
import { VERSION } from "./version";

function fail(message: string): never {
  process.stderr.write(`agentos: ${message}\n`);
  process.exit(1);
}

async function migrate(config: Config) {
  const [{ createLogger }, { openDatabase }] = await Promise.all([import("./platform/logging"), import("./platform/db")]);
  const log = createLogger(config.logLevel);
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, log });
  try {
    const applied = await database.migrate();
    process.stdout.write(applied.length ? `applied: ${applied.join(", ")}\n` : "database is up to date\n");
  } finally {
    await database.close();
  }
}

async function listRoles() {
  const { moduleGraph } = await import("./roles/modules");
  for (const def of moduleGraph.roles()) {
    const deps = def.deps.length ? def.deps.join(", ") : "-";
    const calls = def.uses?.length ? def.uses.join(", ") : "-";
    process.stdout.write(`${def.name.padEnd(10)} needs: ${deps.padEnd(32)} calls: ${calls.padEnd(40)} ${def.description}\n`);
  }
}

async function serve(config: Config) {
  const { startProcess } = await import("./server");
  const running = await startProcess(config);
  let signals = 0;
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      process.stderr.write(`agentos: second ${signal}, exiting without draining\n`);
      process.exit(130);
    }
    running.shutdown(signal).then(
      () => process.exit(0),
      (err) => fail(`shutdown failed: ${(err as Error).message}`),
    );
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
}

async function main() {
  const config = parseConfig(process.argv.slice(2));
  switch (config.command) {
    case "help":
      process.stdout.write(helpText(VERSION) + "\n");
      return;
    case "version":
      process.stdout.write(`agentos ${VERSION}\n`);
      return;
    case "roles":
      return listRoles();
    case "migrate":
      await migrate(config);
      process.exit(0);
    case "serve":
      applyHeapGrowth(config); // may re-execute this process; nothing has started yet
      return serve(config);
  }
}

// A failure inside a library's own async work (not awaited by us) must also end in one line.
process.on("unhandledRejection", (err) => fail(`unexpected error: ${(err as Error)?.message ?? String(err)}`));
process.on("uncaughtException", (err) => fail(`unexpected error: ${err?.message ?? String(err)}`));

main().catch((err) => {
  if (err instanceof FatalError) fail(err.message);
  fail(`${(err as Error)?.message ?? String(err)}`);
});
