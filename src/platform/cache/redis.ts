import Redis from "ioredis";
import type { Logger } from "../logging";
import { backendUnavailable } from "../outage";
import { MemoryCache, type Cache, type RateLimitResult } from "./index";
import { slidingWindow } from "./sliding-window";

/**
 * The sliding-window counter of `slidingWindow()` as one Lua script, so that check and
 * increment are atomic across every gateway sharing this Redis.
 * KEYS[1] current window key, KEYS[2] previous window key; ARGV: limit, windowMs, nowMs, take.
 * Returns {granted, prev, cur} with the counts read before the increment.
 */
const RATE_LIMIT_LUA = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local take = tonumber(ARGV[4])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local windowStart = math.floor(now / window) * window
local weight = 1 - (now - windowStart) / window
local count = math.floor(prev * weight) + cur
if count >= limit then
  return {0, prev, cur}
end
local granted = math.min(take, limit - count)
redis.call('INCRBY', KEYS[1], granted)
redis.call('PEXPIRE', KEYS[1], window * 2)
return {granted, prev, cur}
`;

/**
 * While Redis is unreachable nothing waits for it: commands fail at once (no offline queue,
 * a 1 s command timeout), the client reconnects by itself every ≤ 2 s, and rate limits are
 * counted in this process instead (see `rateLimit`). Values (get/set/del) need Redis: they
 * throw 503 `backend_unavailable`.
 */
export class RedisCache implements Cache {
  readonly kind = "redis";
  /** Counters used while Redis is down: each process enforces the limits on its own. */
  private local = new MemoryCache();
  private degradedSince: number | null = null;

  private constructor(private redis: Redis, private prefix: string, private log: Logger) {}

  static async connect(url: string, namespace: string, log: Logger): Promise<RedisCache> {
    const redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: 2000,
      commandTimeout: 1000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      // Never give up reconnecting; a command meanwhile fails fast (no offline queue).
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    redis.on("error", (err) => log.debug("redis error", { error: err.message }));
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      redis.disconnect();
      throw err;
    }
    redis.defineCommand("agentosRateLimit", { numberOfKeys: 2, lua: RATE_LIMIT_LUA });
    return new RedisCache(redis, `${namespace}:`, log);
  }

  /** Runs a command when Redis is connected; otherwise (or when it fails) throws the 503. */
  private async command<T>(run: () => Promise<T>): Promise<T> {
    if (this.redis.status !== "ready") throw backendUnavailable("cache", `redis ${this.redis.status}`);
    try {
      return await run();
    } catch (err) {
      throw Object.assign(backendUnavailable("cache", (err as Error).name === "ReplyError" ? "redis error" : "redis unreachable"), { cause: err });
    }
  }

  async get<T>(key: string): Promise<T | undefined> {
    const raw = await this.command(() => this.redis.get(this.prefix + key));
    return raw === null ? undefined : (JSON.parse(raw) as T);
  }

  async set(key: string, value: unknown, ttlMs: number) {
    await this.command(() => this.redis.set(this.prefix + key, JSON.stringify(value), "PX", Math.max(1, Math.round(ttlMs))));
  }

  async del(key: string) {
    await this.command(() => this.redis.del(this.prefix + key));
  }

  /**
   * Shared across gateways through Redis. While Redis is down the limits are counted in this
   * process (fail-local, neither open nor closed): an API that answers is worth more than an
   * exact global count, and the bound stays (limit × gateways) instead of none. Logged once.
   */
  async rateLimit(key: string, limit: number, windowMs: number, take = 1): Promise<RateLimitResult> {
    try {
      const result = await this.command(() => this.sharedRateLimit(key, limit, windowMs, take));
      if (this.degradedSince !== null) {
        this.log.info("redis available again: rate limits are shared again", { degraded_ms: Date.now() - this.degradedSince });
        this.degradedSince = null;
      }
      return result;
    } catch (err) {
      if (this.degradedSince === null) {
        this.degradedSince = Date.now();
        this.log.warn("redis unavailable: rate limits are counted per process until it is back", { error: (err as Error).message });
      }
      return this.local.rateLimit(key, limit, windowMs, take);
    }
  }

  private async sharedRateLimit(key: string, limit: number, windowMs: number, take: number): Promise<RateLimitResult> {
    const now = Date.now();
    const window = Math.floor(now / windowMs);
    const k = `${this.prefix}rl:${key}`;
    const [granted, prev, cur] = (await (this.redis as any).agentosRateLimit(`${k}:${window}`, `${k}:${window - 1}`, limit, windowMs, now, take)) as number[];
    const result = slidingWindow(prev, cur, now, limit, windowMs, take);
    // The script decided; slidingWindow only derives the headers from the same inputs.
    return { ...result, allowed: take === 0 ? result.allowed : granted > 0, granted };
  }

  async problem() {
    if (this.redis.status !== "ready") return `redis unavailable (${this.redis.status}); rate limits are counted per process meanwhile`;
    return null;
  }

  async close() {
    await this.local.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
