/**
 * Configuration: CLI flags with environment twins (a flag wins). Parsing never
 * throws a stack trace at the user: every problem is a FatalError with one line.
 */
import { FatalError } from "./errors";
import { MIN_INTERNAL_KEY_BYTES } from "./rpc-seal";

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
  /** Named prepared statements for parameterised queries (off behind a pooler that cannot keep them, e.g. PgBouncer < 1.21 in transaction mode). */
  databasePreparedStatements: boolean;
  /** Bound of one PostgreSQL connection attempt: a request during an outage fails within it. */
  databaseConnectTimeoutMs: number;
  redisUrl?: string;
  natsUrl?: string;
  /** NATS credentials and TLS (credentials in NATS_URL work too; flags win over the URL). */
  natsUser?: string;
  natsPassword?: string;
  natsToken?: string;
  /** A NATS `.creds` file (JWT + nkey seed) or an nkey seed file. */
  natsCredsFile?: string;
  natsNkeyFile?: string;
  /** CA bundle that signed the NATS server's certificate (turns TLS on), and a client certificate for mTLS. */
  natsCaFile?: string;
  natsCertFile?: string;
  natsKeyFile?: string;
  /** Seals RPC between processes (HMAC-SHA256 signature + encryption); required for split roles. */
  internalKey?: string;
  /** Subjects `nats` tools may use: customer tool workers live under it, never under the namespace. */
  toolsSubjectPrefix: string;
  /** OpenTelemetry (the standard OTEL_* variables): spans are exported only with an endpoint. */
  otlpEndpoint?: string;
  otlpTracesEndpoint?: string;
  otlpHeaders?: string;
  /** Default `agentos-<roles>`, so a split trace shows which process did what. */
  otelServiceName?: string;
  otelTracesSampler: string;
  otelTracesSamplerArg?: string;
  logLevel: LogLevel;
  jwtSecret?: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  modelBaseUrl: string;
  modelApiKey?: string;
  /** Embedding model of archival memory (`none`: keyword search only). */
  embeddingModel: string;
  /** OpenAI-compatible base URL of `/embeddings`; default: the model server. */
  embeddingBaseUrl?: string;
  /** How often rows still without an embedding (an outage at insert) are filled in. */
  embeddingBackfillIntervalMs: number;
  /** AES-256-GCM key of secrets at rest (provider API keys, MCP server headers); generated into the data dir on the embedded default. */
  secretKey?: string;
  /** Former secret keys (comma list): still decrypt, never encrypt — rotation. */
  secretKeyPrevious: string[];
  /** Subject / stream namespace on NATS and key prefix on Redis; `agentos` in production. */
  namespace: string;
  shutdownTimeoutMs: number;
  maxBodyBytes: number;
  /** Bound of the arrival of a request body, from its headers; past it 408 and the connection closes. */
  bodyTimeoutMs: number;
  /** Origins browsers may call the API from: `*` or a comma list. */
  corsOrigins: string[];
  /** Run orchestration (operational knobs; tests shorten them). */
  runLeaseMs: number;
  requiresActionTimeoutMs: number;
  reconcileIntervalMs: number;
  requeueAfterMs: number;
  workerConcurrency: number;
  runAckWaitMs: number;
  modelTimeoutMs: number;
  modelMaxRetries: number;
  modelBackoffMs: number;
  deltaFlushMs: number;
  /** Tool calls of one model turn executed at once (parallel_tool_calls). */
  toolCallConcurrency: number;
  /** Bun's own bound of concurrent outgoing HTTP requests (read by Bun at start-up). */
  maxHttpRequests: number;
  /** JSC's heapGrowthMaxIncrease for this process, or `auto` (see platform/heap-growth.ts). */
  jsHeapGrowth: number | "auto";
  /** Webhook delivery. */
  webhookRetryBaseMs: number;
  webhookRetryMaxMs: number;
  webhookMaxAttempts: number;
  webhookTimeoutMs: number;
  webhookPollMs: number;
  /** An Idempotency-Key claim older than this with no response is taken over by a retry. */
  idempotencyStaleMs: number;
  /** Most message writes sent to the database as one statement (group commit, src/platform/db/batcher.ts). */
  messageBatchMax: number;
  scheduleIntervalMs: number;
  scheduleMisfireGraceMs: number;
  /** JSON merged over the default plans and model prices (validated by the billing role). */
  planLimitsJson?: string;
  modelPricesJson?: string;
  /**
   * Let http tools and webhooks reach loopback, private, link-local and metadata addresses.
   * Off by default: on, any tenant can make the server call its internal network (SSRF).
   */
  allowPrivateTargets: boolean;
  /** Answer hot reads (a cached agent for a cached token) before the framework; see http/fast-path.ts. */
  httpFastPath: boolean;
}

interface FlagSpec {
  key: keyof Config;
  env?: string;
  parse?: (value: string, flag: string) => unknown;
  help: string;
  /** A bare `--flag` means true (`--flag=false` still works). */
  boolean?: true;
}

const LOG_LEVELS = ["debug", "info", "warn", "error"];

function parseInternalKey(value: string, flag: string): string {
  if (Buffer.byteLength(value, "utf8") < MIN_INTERNAL_KEY_BYTES) {
    throw new FatalError(`${flag}: the internal key must be at least ${MIN_INTERNAL_KEY_BYTES} bytes (e.g. \`openssl rand -base64 48\`)`);
  }
  return value;
}

/** Secret keys are passphrases of at least 32 characters (hashed into the 256-bit AES key). */
export const MIN_SECRET_KEY_LENGTH = 32;

function parseSecretKey(value: string, flag: string): string {
  if (value.length < MIN_SECRET_KEY_LENGTH) throw new FatalError(`${flag}: the secret key must be at least ${MIN_SECRET_KEY_LENGTH} characters (e.g. \`openssl rand -base64 32\`)`);
  return value;
}

function parseSecretKeyList(value: string, flag: string): string[] {
  return value.split(",").map((k) => k.trim()).filter(Boolean).map((k) => parseSecretKey(k, flag));
}

const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"];

function parseSampler(value: string, flag: string): string {
  if (!SAMPLERS.includes(value)) throw new FatalError(`${flag}: '${value}' is not one of ${SAMPLERS.join(", ")}`);
  return value;
}

/** `tools.` or `acme.tools.`: plain subject tokens ending in a dot, nothing NATS or AgentOS reserves. */
function parseSubjectPrefix(value: string, flag: string): string {
  if (!/^([A-Za-z0-9_-]+\.)+$/.test(value)) throw new FatalError(`${flag}: '${value}' is not a subject prefix (dot-separated tokens ending in '.', e.g. tools.)`);
  if (/^(_INBOX|\$)/i.test(value)) throw new FatalError(`${flag}: '${value}' lies under a NATS system prefix`);
  return value;
}

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

/** `auto` or a growth from 0.1 to 10 (JSC's heapGrowthMaxIncrease; Bun sets 2; near 0 the heap collects without end). */
function parseHeapGrowth(value: string, flag: string): number | "auto" {
  if (value === "auto") return value;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n < 0.1 || n > 10) throw new FatalError(`${flag}: '${value}' is not auto or a number from 0.1 to 10`);
  return n;
}

function parseNonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new FatalError(`${flag}: '${value}' is not a non-negative integer`);
  return n;
}

function parseJsonObject(value: string, flag: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new FatalError(`${flag}: not valid JSON`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new FatalError(`${flag}: must be a JSON object`);
  return value;
}

function parseBoolean(value: string, flag: string): boolean {
  if (/^(true|1|yes|on)$/i.test(value)) return true;
  if (/^(false|0|no|off)$/i.test(value)) return false;
  throw new FatalError(`${flag}: '${value}' is not true or false`);
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
  "database-prepared-statements": {
    key: "databasePreparedStatements", env: "DATABASE_PREPARED_STATEMENTS", parse: parseBoolean, boolean: true,
    help: "prepare parameterised queries once per connection (default true; false behind PgBouncer in transaction mode)",
  },
  "database-connect-timeout": { key: "databaseConnectTimeoutMs", env: "DATABASE_CONNECT_TIMEOUT_MS", parse: parsePositiveInt, help: "bound of a PostgreSQL connection attempt in ms (default 1500)" },
  "redis-url": { key: "redisUrl", env: "REDIS_URL", parse: parseUrl(["redis:", "rediss:"]), help: "Redis URL; without it cache and rate limits are in-process" },
  "nats-url": { key: "natsUrl", env: "NATS_URL", parse: parseUrl(["nats:", "tls:", "ws:", "wss:"]), help: "NATS URL (JetStream enabled); without it the bus is in-process" },
  "nats-user": { key: "natsUser", env: "NATS_USER", help: "NATS user (or put user:password in NATS_URL)" },
  "nats-password": { key: "natsPassword", env: "NATS_PASSWORD", help: "NATS password" },
  "nats-token": { key: "natsToken", env: "NATS_TOKEN", help: "NATS token (or put it in NATS_URL as nats://TOKEN@host)" },
  "nats-creds": { key: "natsCredsFile", env: "NATS_CREDS", help: "NATS .creds file (JWT + nkey seed, decentralised auth)" },
  "nats-nkey": { key: "natsNkeyFile", env: "NATS_NKEY", help: "file holding a NATS nkey seed (SU…)" },
  "nats-ca": { key: "natsCaFile", env: "NATS_CA", help: "CA bundle of the NATS server's certificate; turns TLS on (also tls:// URLs)" },
  "nats-cert": { key: "natsCertFile", env: "NATS_CERT", help: "client certificate for NATS mutual TLS" },
  "nats-key": { key: "natsKeyFile", env: "NATS_KEY", help: "client key for NATS mutual TLS" },
  "internal-key": { key: "internalKey", env: "AGENTOS_INTERNAL_KEY", parse: parseInternalKey, help: "secret (>= 32 bytes) sealing RPC between processes; required for split roles" },
  "tools-subject-prefix": { key: "toolsSubjectPrefix", env: "AGENTOS_TOOLS_SUBJECT_PREFIX", parse: parseSubjectPrefix, help: "subject prefix nats tools must use (default tools.)" },
  "otlp-endpoint": { key: "otlpEndpoint", env: "OTEL_EXPORTER_OTLP_ENDPOINT", parse: parseUrl(["http:", "https:"]), help: "OTLP/HTTP collector base URL: export trace spans (<url>/v1/traces)" },
  "otlp-traces-endpoint": { key: "otlpTracesEndpoint", env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", parse: parseUrl(["http:", "https:"]), help: "full OTLP/HTTP traces URL (wins over --otlp-endpoint)" },
  "otlp-headers": { key: "otlpHeaders", env: "OTEL_EXPORTER_OTLP_HEADERS", help: "headers sent to the collector: k=v,k2=v2" },
  "otel-service-name": { key: "otelServiceName", env: "OTEL_SERVICE_NAME", help: "service.name of the spans (default agentos-<roles>)" },
  "otel-traces-sampler": { key: "otelTracesSampler", env: "OTEL_TRACES_SAMPLER", parse: parseSampler, help: "always_on | always_off | traceidratio | parentbased_* (default parentbased_always_on)" },
  "otel-traces-sampler-arg": { key: "otelTracesSamplerArg", env: "OTEL_TRACES_SAMPLER_ARG", help: "the ratio (0-1) of traceidratio samplers" },
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
  "embedding-model": { key: "embeddingModel", env: "AGENTOS_EMBEDDING_MODEL", help: "embedding model of archival memory search; none = keyword search only" },
  "embedding-base-url": { key: "embeddingBaseUrl", env: "AGENTOS_EMBEDDING_BASE_URL", parse: parseUrl(["http:", "https:"]), help: "OpenAI-compatible base URL of /embeddings (default: --model-base-url)" },
  "embedding-backfill-interval": { key: "embeddingBackfillIntervalMs", env: "AGENTOS_EMBEDDING_BACKFILL_INTERVAL_MS", parse: parsePositiveInt, help: "ms between fills of memories still without an embedding" },
  "secret-key": { key: "secretKey", env: "AGENTOS_SECRET_KEY", parse: parseSecretKey, help: "key (>= 32 chars) encrypting secrets at rest: provider API keys, MCP server headers (generated in the data dir on the embedded default)" },
  "secret-key-previous": { key: "secretKeyPrevious", env: "AGENTOS_SECRET_KEY_PREVIOUS", parse: parseSecretKeyList, help: "former secret keys, comma-separated: still decrypt during a rotation (default none)" },
  namespace: { key: "namespace", env: "AGENTOS_NAMESPACE", help: "NATS subject/stream and Redis key prefix (default agentos)" },
  "cors-origins": { key: "corsOrigins", env: "AGENTOS_CORS_ORIGINS", parse: (v) => v.split(",").map((o) => o.trim()).filter(Boolean), help: "origins allowed by CORS: * or a comma list (default *)" },
  "allow-private-targets": {
    key: "allowPrivateTargets", env: "AGENTOS_ALLOW_PRIVATE_TARGETS", parse: parseBoolean, boolean: true,
    help: "let http tools and webhooks call loopback/private/metadata addresses (development only: SSRF risk; default false)",
  },
  "http-fast-path": {
    key: "httpFastPath", env: "AGENTOS_HTTP_FAST_PATH", parse: parseBoolean, boolean: true,
    help: "answer GET /v1/agents/:id from the gateway's caches before the framework when everything it needs is in memory (default true; off with tracing)",
  },
  "run-lease": { key: "runLeaseMs", env: "AGENTOS_RUN_LEASE_MS", parse: parsePositiveInt, help: "ms a worker owns a run without renewing (renewed every third)" },
  "requires-action-timeout": { key: "requiresActionTimeoutMs", env: "AGENTOS_REQUIRES_ACTION_TIMEOUT_MS", parse: parsePositiveInt, help: "ms a run may wait in requires_action before it expires" },
  "reconcile-interval": { key: "reconcileIntervalMs", env: "AGENTOS_RECONCILE_INTERVAL_MS", parse: parsePositiveInt, help: "ms between scans for runs whose doorbell was lost" },
  "requeue-after": { key: "requeueAfterMs", env: "AGENTOS_REQUEUE_AFTER_MS", parse: parsePositiveInt, help: "ms without progress before a queued run is rung again" },
  "worker-concurrency": { key: "workerConcurrency", env: "AGENTOS_WORKER_CONCURRENCY", parse: parsePositiveInt, help: "runs one worker process executes at once" },
  "run-ack-wait": { key: "runAckWaitMs", env: "AGENTOS_RUN_ACK_WAIT_MS", parse: parsePositiveInt, help: "JetStream ack wait of a run doorbell in ms (extended while the run executes)" },
  "model-timeout": { key: "modelTimeoutMs", env: "AGENTOS_MODEL_TIMEOUT_MS", parse: parsePositiveInt, help: "ms one model request may take" },
  "model-max-retries": { key: "modelMaxRetries", env: "AGENTOS_MODEL_MAX_RETRIES", parse: parseNonNegativeInt, help: "retries of a model request on 429, 5xx and timeouts" },
  "model-backoff": { key: "modelBackoffMs", env: "AGENTOS_MODEL_BACKOFF_MS", parse: parseNonNegativeInt, help: "first retry delay of a model request in ms (doubles, with jitter)" },
  "delta-flush": { key: "deltaFlushMs", env: "AGENTOS_DELTA_FLUSH_MS", parse: parseNonNegativeInt, help: "ms over which message.delta events are coalesced into one" },
  "tool-call-concurrency": { key: "toolCallConcurrency", env: "AGENTOS_TOOL_CALL_CONCURRENCY", parse: parsePositiveInt, help: "tool calls of one model turn a run executes at once (parallel_tool_calls)" },
  "max-http-requests": { key: "maxHttpRequests", env: "BUN_CONFIG_MAX_HTTP_REQUESTS", parse: parsePositiveInt, help: "Bun's bound of concurrent outgoing HTTP requests: set the environment variable (Bun reads it at start)" },
  "js-heap-growth": {
    key: "jsHeapGrowth", env: "AGENTOS_JS_HEAP_GROWTH", parse: parseHeapGrowth,
    help: "how far the JS heap may grow past its last collection (JSC heapGrowthMaxIncrease; Bun's is 2); auto = 0.1 with the embedded database, Bun's otherwise; set by re-executing once at start",
  },
  "webhook-retry-base": { key: "webhookRetryBaseMs", env: "AGENTOS_WEBHOOK_RETRY_BASE_MS", parse: parsePositiveInt, help: "first webhook retry delay in ms (doubles, with jitter)" },
  "webhook-retry-max": { key: "webhookRetryMaxMs", env: "AGENTOS_WEBHOOK_RETRY_MAX_MS", parse: parsePositiveInt, help: "longest webhook retry delay in ms" },
  "webhook-max-attempts": { key: "webhookMaxAttempts", env: "AGENTOS_WEBHOOK_MAX_ATTEMPTS", parse: parsePositiveInt, help: "attempts before a webhook delivery is marked failed" },
  "webhook-timeout": { key: "webhookTimeoutMs", env: "AGENTOS_WEBHOOK_TIMEOUT_MS", parse: parsePositiveInt, help: "ms a webhook receiver has to answer" },
  "webhook-poll": { key: "webhookPollMs", env: "AGENTOS_WEBHOOK_POLL_MS", parse: parsePositiveInt, help: "ms between looks for due webhook deliveries" },
  "schedule-interval": { key: "scheduleIntervalMs", env: "AGENTOS_SCHEDULE_INTERVAL_MS", parse: parsePositiveInt, help: "ms between the scheduler's scans for due schedules (agents role)" },
  "schedule-misfire-grace": {
    key: "scheduleMisfireGraceMs", env: "AGENTOS_SCHEDULE_MISFIRE_GRACE_MS", parse: parsePositiveInt,
    help: "ms after its time a fire still counts as on time; later it was missed and follows the schedule's misfire_policy",
  },
  "idempotency-stale": { key: "idempotencyStaleMs", env: "AGENTOS_IDEMPOTENCY_STALE_MS", parse: parsePositiveInt, help: "ms after which an unanswered Idempotency-Key claim is taken over" },
  "message-batch-max": {
    key: "messageBatchMax", env: "AGENTOS_MESSAGE_BATCH_MAX", parse: parsePositiveInt,
    help: "most concurrent message writes committed as one statement (1 = off: one statement per message, concurrently; default 64)",
  },
  "plan-limits": { key: "planLimitsJson", env: "AGENTOS_PLAN_LIMITS", parse: parseJsonObject, help: "JSON merged over the plans' limits, e.g. {\"free\":{\"runs_per_month\":500}}" },
  "model-prices": { key: "modelPricesJson", env: "AGENTOS_MODEL_PRICES", parse: parseJsonObject, help: "JSON merged over the model prices (cents per 1M tokens)" },
  "shutdown-timeout": { key: "shutdownTimeoutMs", env: "AGENTOS_SHUTDOWN_TIMEOUT_MS", parse: parsePositiveInt, help: "graceful drain bound in ms (default 25000)" },
  "body-timeout": { key: "bodyTimeoutMs", env: "AGENTOS_BODY_TIMEOUT_MS", parse: parsePositiveInt, help: "a request body must arrive within this many ms, or 408 (default 30000)" },
};

const DEFAULTS: Omit<Config, "command"> = {
  roles: ["all"],
  port: 8080,
  host: "0.0.0.0",
  dataDir: "./data",
  databasePoolSize: 10,
  databasePreparedStatements: true,
  databaseConnectTimeoutMs: 1500,
  logLevel: "info",
  accessTokenTtlSeconds: 900,
  refreshTokenTtlSeconds: 30 * 24 * 3600,
  modelBaseUrl: "https://api.openai.com/v1",
  embeddingModel: "text-embedding-3-small",
  embeddingBackfillIntervalMs: 30_000,
  secretKeyPrevious: [],
  namespace: "agentos",
  toolsSubjectPrefix: "tools.",
  otelTracesSampler: "parentbased_always_on",
  shutdownTimeoutMs: 25_000,
  maxBodyBytes: 1024 * 1024,
  bodyTimeoutMs: 30_000,
  corsOrigins: ["*"],
  allowPrivateTargets: false,
  httpFastPath: true,
  runLeaseMs: 30_000,
  requiresActionTimeoutMs: 24 * 3600_000,
  reconcileIntervalMs: 5_000,
  requeueAfterMs: 60_000,
  workerConcurrency: 64,
  runAckWaitMs: 60_000,
  modelTimeoutMs: 120_000,
  modelMaxRetries: 3,
  modelBackoffMs: 500,
  deltaFlushMs: 50,
  toolCallConcurrency: 8,
  maxHttpRequests: 256,
  jsHeapGrowth: "auto",
  webhookRetryBaseMs: 5_000,
  webhookRetryMaxMs: 3_600_000,
  webhookMaxAttempts: 10,
  webhookTimeoutMs: 10_000,
  webhookPollMs: 1_000,
  idempotencyStaleMs: 60_000,
  messageBatchMax: 64,
  scheduleIntervalMs: 1_000,
  scheduleMisfireGraceMs: 60_000,
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
    if (value === undefined && spec.boolean) value = "true";
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
    // The default comes from DEFAULTS (one place) unless the help line already says it.
    const fallback = (DEFAULTS as Record<string, unknown>)[spec.key];
    const shown = /\(default /.test(spec.help) || fallback === undefined ? "" : ` (default ${Array.isArray(fallback) ? fallback.join(",") : String(fallback)})`;
    lines.push(`  --${(name + "=…").padEnd(26)} ${(spec.env ?? "").padEnd(34)} ${spec.help}${shown}`);
  }
  return lines.join("\n");
}
