/**
 * Configuration: CLI flags with environment twins (a flag wins). Parsing never
 * throws a stack trace at the user: every problem is a FatalError with one line.
 */
import { FatalError } from "./errors";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Config {
  command: "serve" | "migrate" | "roles" | "help" | "version";
  roles: string[];
  port: number;
  host: string;
  dataDir: string;
  databaseUrl?: string;
  /** Connections per process to PostgreSQL (postgres.js pool); the embedded store has one. */
  databasePoolSize: number;
  redisUrl?: string;
  natsUrl?: string;
  logLevel: LogLevel;
  jwtSecret?: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  modelBaseUrl: string;
  modelApiKey?: string;
  /** Subject / stream namespace on NATS and key prefix on Redis; `agentos` in production. */
  namespace: string;
  shutdownTimeoutMs: number;
  maxBodyBytes: number;
  /** Bound of the arrival of a request body, from its headers; past it 408 and the connection closes. */
  bodyTimeoutMs: number;
  /** Origins browsers may call the API from: `*` or a comma list. */
  corsOrigins: string[];
}

interface FlagSpec {
  key: keyof Config;
  env?: string;
  parse?: (value: string, flag: string) => unknown;
  help: string;
}

const LOG_LEVELS = ["debug", "info", "warn", "error"];

function parsePort(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 0 || n > 65535) throw new FatalError(`${flag}: '${value}' is not a port number (0-65535)`);
  return n;
}

function parsePositiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n <= 0) throw new FatalError(`${flag}: '${value}' is not a positive integer`);
  return n;
}

function parseUrl(schemes: string[]) {
  return (value: string, flag: string) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new FatalError(`${flag}: '${redactUrl(value)}' is not a URL`);
    }
    if (!schemes.includes(url.protocol)) {
      throw new FatalError(`${flag}: expected a ${schemes.join(" or ")} URL, got '${url.protocol}'`);
    }
    return value;
  };
}

export const FLAGS: Record<string, FlagSpec> = {
  role: { key: "roles", env: "AGENTOS_ROLE", parse: (v) => v.split(",").map((r) => r.trim()).filter(Boolean), help: "role(s) this process runs: all or a comma list (default all)" },
  port: { key: "port", env: "PORT", parse: parsePort, help: "HTTP port (default 8080)" },
  host: { key: "host", env: "HOST", help: "address to listen on (default 0.0.0.0)" },
  "data-dir": { key: "dataDir", env: "AGENTOS_DATA_DIR", help: "folder of the embedded database and generated secrets (default ./data)" },
  "database-url": { key: "databaseUrl", env: "DATABASE_URL", parse: parseUrl(["postgres:", "postgresql:"]), help: "PostgreSQL URL; without it the embedded PGlite is used" },
  "database-pool-size": { key: "databasePoolSize", env: "DATABASE_POOL_SIZE", parse: parsePositiveInt, help: "PostgreSQL connections per process (default 10)" },
  "redis-url": { key: "redisUrl", env: "REDIS_URL", parse: parseUrl(["redis:", "rediss:"]), help: "Redis URL; without it cache and rate limits are in-process" },
  "nats-url": { key: "natsUrl", env: "NATS_URL", parse: parseUrl(["nats:", "tls:", "ws:", "wss:"]), help: "NATS URL (JetStream enabled); without it the bus is in-process" },
  "log-level": {
    key: "logLevel", env: "LOG_LEVEL",
    parse: (v, flag) => {
      if (!LOG_LEVELS.includes(v)) throw new FatalError(`${flag}: '${v}' is not one of ${LOG_LEVELS.join(", ")}`);
      return v;
    },
    help: "debug | info | warn | error (default info)",
  },
  "jwt-secret": { key: "jwtSecret", env: "JWT_SECRET", help: "HS256 secret for access tokens (required with a real database)" },
  "access-token-ttl": { key: "accessTokenTtlSeconds", env: "ACCESS_TOKEN_TTL", parse: parsePositiveInt, help: "access token lifetime in seconds (default 900)" },
  "refresh-token-ttl": { key: "refreshTokenTtlSeconds", env: "REFRESH_TOKEN_TTL", parse: parsePositiveInt, help: "refresh token lifetime in seconds (default 2592000)" },
  "model-base-url": { key: "modelBaseUrl", env: "MODEL_BASE_URL", parse: parseUrl(["http:", "https:"]), help: "OpenAI-compatible API base URL (default https://api.openai.com/v1)" },
  "model-api-key": { key: "modelApiKey", env: "MODEL_API_KEY", help: "API key sent to the model server" },
  namespace: { key: "namespace", env: "AGENTOS_NAMESPACE", help: "NATS subject/stream and Redis key prefix (default agentos)" },
  "cors-origins": { key: "corsOrigins", env: "AGENTOS_CORS_ORIGINS", parse: (v) => v.split(",").map((o) => o.trim()).filter(Boolean), help: "origins allowed by CORS: * or a comma list (default *)" },
  "shutdown-timeout": { key: "shutdownTimeoutMs", env: "AGENTOS_SHUTDOWN_TIMEOUT_MS", parse: parsePositiveInt, help: "graceful drain bound in ms (default 25000)" },
  "body-timeout": { key: "bodyTimeoutMs", env: "AGENTOS_BODY_TIMEOUT_MS", parse: parsePositiveInt, help: "a request body must arrive within this many ms, or 408 (default 30000)" },
};

const DEFAULTS: Omit<Config, "command"> = {
  roles: ["all"],
  port: 8080,
  host: "0.0.0.0",
  dataDir: "./data",
  databasePoolSize: 10,
  logLevel: "info",
  accessTokenTtlSeconds: 900,
  refreshTokenTtlSeconds: 30 * 24 * 3600,
  modelBaseUrl: "https://api.openai.com/v1",
  namespace: "agentos",
  shutdownTimeoutMs: 25_000,
  maxBodyBytes: 1024 * 1024,
  bodyTimeoutMs: 30_000,
  corsOrigins: ["*"],
};

const COMMANDS = ["serve", "migrate", "roles"] as const;

export function parseConfig(argv: string[], env: Record<string, string | undefined> = process.env): Config {
  const config: Config = { ...DEFAULTS, command: "serve" } as Config;
  // Environment first, flags override.
  for (const [name, spec] of Object.entries(FLAGS)) {
    const value = spec.env ? env[spec.env] : undefined;
    if (value !== undefined && value !== "") {
      (config as any)[spec.key] = spec.parse ? spec.parse(value, spec.env!) : value;
    }
    void name;
  }
  let commandSeen = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h" || arg === "help") return { ...config, command: "help" };
    if (arg === "--version" || arg === "-v" || arg === "version") return { ...config, command: "version" };
    if (!arg.startsWith("-")) {
      if (commandSeen || !(COMMANDS as readonly string[]).includes(arg)) {
        throw new FatalError(`unknown command '${arg}' (expected one of: ${COMMANDS.join(", ")}; see --help)`);
      }
      config.command = arg as Config["command"];
      commandSeen = true;
      continue;
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    const spec = match ? FLAGS[match[1]] : undefined;
    if (!match || !spec) throw new FatalError(`unknown flag '${arg.split("=")[0]}' (see --help)`);
    let value = match[2];
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new FatalError(`--${match[1]} needs a value`);
      i++;
    }
    (config as any)[spec.key] = spec.parse ? spec.parse(value, `--${match[1]}`) : value;
  }
  return config;
}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):([^@]*)@/, "//$1:***@");
}

export function helpText(version: string): string {
  const lines = [
    `agentos ${version} — the AgentOS backend in one executable`,
    "",
    "Usage:",
    "  agentos [serve] [flags]   run the service role(s)",
    "  agentos migrate [flags]   apply schema migrations and exit",
    "  agentos roles             list the roles and what each depends on",
    "  agentos --help | --version",
    "",
    "Flags (each has an environment twin; a flag wins):",
  ];
  for (const [name, spec] of Object.entries(FLAGS)) {
    lines.push(`  --${(name + "=…").padEnd(22)} ${(spec.env ?? "").padEnd(28)} ${spec.help}`);
  }
  return lines.join("\n");
}
