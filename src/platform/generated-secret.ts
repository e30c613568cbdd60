/** Secrets the embedded default generates once into the data dir (mode 0600), so they survive restarts. */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomSecret } from "./hash";
import type { Logger } from "./logging";

/** The secret in `<dataDir>/<file>`, generated (with `warning` logged) when there is none yet. */
export function generatedSecret(dataDir: string, file: string, log: Logger, warning: string): string {
  const path = join(dataDir, file);
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  mkdirSync(dataDir, { recursive: true });
  const secret = randomSecret(48);
  writeFileSync(path, secret + "\n", { mode: 0o600 });
  chmodSync(path, 0o600);
  log.warn(warning, { file: path });
  return secret;
}
