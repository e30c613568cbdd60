import Redis from "ioredis";
import type { Logger } from "../logging";
import type { Cache, RateLimitResult } from "./index";
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

export class RedisCache implements Cache {
  readonly kind = "redis";
  private constructor(private redis: Redis, private prefix: string) {}

  static async connect(url: string, namespace: string, log: Logger): Promise<RedisCache> {
    const redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: 5000,
      maxRetriesPerRequest: 2,
      enableOfflineQueue: true,
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
    return new RedisCache(redis, `${namespace}:`);
  }

  async get<T>(key: string): Promise<T | undefined> {
    const raw = await this.redis.get(this.prefix + key);
    return raw === null ? undefined : (JSON.parse(raw) as T);
  }

  async set(key: string, value: unknown, ttlMs: number) {
    await this.redis.set(this.prefix + key, JSON.stringify(value), "PX", Math.max(1, Math.round(ttlMs)));
  }

  async del(key: string) {
    await this.redis.del(this.prefix + key);
  }

  async rateLimit(key: string, limit: number, windowMs: number, take = 1): Promise<RateLimitResult> {
    const now = Date.now();
    const window = Math.floor(now / windowMs);
    const k = `${this.prefix}rl:${key}`;
    const [granted, prev, cur] = (await (this.redis as any).agentosRateLimit(`${k}:${window}`, `${k}:${window - 1}`, limit, windowMs, now, take)) as number[];
    const result = slidingWindow(prev, cur, now, limit, windowMs, take);
    // The script decided; slidingWindow only derives the headers from the same inputs.
    return { ...result, allowed: granted > 0, granted };
  }

  async problem() {
    if (this.redis.status !== "ready") return `redis ${this.redis.status}`;
    return null;
  }

  async close() {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
