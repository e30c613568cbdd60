/**
 * Cache and rate-limit store: in-process on the embedded default, Redis when REDIS_URL is
 * set (shared by every gateway). Values are JSON; every key lives under the namespace.
 */
import { FatalError } from "../errors";
import { redactUrl } from "../config";
import type { Logger } from "../logging";
import { slidingWindow } from "./sliding-window";

export { slidingWindow };

export interface RateLimitResult {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Unix seconds at which the current window ends. */
  resetAt: number;
  /** Milliseconds until a request would be allowed again (0 when allowed). */
  retryAfterMs: number;
  /** How many of the `take` requested were granted (0 when not allowed). */
  granted: number;
}

export interface Cache {
  readonly kind: "memory" | "redis";
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown, ttlMs: number): Promise<void>;
  del(key: string): Promise<void>;
  /**
   * Sliding-window counter (the previous window weighted by its overlap + the current one),
   * checked and incremented atomically. `take` > 1 reserves several requests at once; `take` 0
   * only checks (is the limit reached?) without counting.
   */
  rateLimit(key: string, limit: number, windowMs: number, take?: number): Promise<RateLimitResult>;
  problem(): Promise<string | null>;
  close(): Promise<void>;
}

export class MemoryCache implements Cache {
  readonly kind = "memory";
  private entries = new Map<string, { value: unknown; expiresAt: number }>();
  private sweeper: ReturnType<typeof setInterval>;

  constructor(private maxEntries = 100_000) {
    this.sweeper = setInterval(() => this.sweep(), 30_000);
    this.sweeper.unref?.();
  }

  private sweep() {
    const now = Date.now();
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
  }

  async get<T>(key: string): Promise<T | undefined> {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return structuredClone(e.value) as T;
  }

  async set(key: string, value: unknown, ttlMs: number) {
    if (this.entries.size >= this.maxEntries) this.sweep();
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value: structuredClone(value), expiresAt: Date.now() + ttlMs });
  }

  async del(key: string) {
    this.entries.delete(key);
  }

  async rateLimit(key: string, limit: number, windowMs: number, take = 1): Promise<RateLimitResult> {
    const now = Date.now();
    const window = Math.floor(now / windowMs);
    const cur = this.counter(`${key}:${window}`, windowMs * 2);
    const prev = this.entries.get(`${key}:${window - 1}`)?.value as number | undefined;
    const result = slidingWindow(prev ?? 0, cur.value as number, now, limit, windowMs, take);
    cur.value = (cur.value as number) + result.granted;
    return result;
  }

  private counter(key: string, ttlMs: number) {
    let e = this.entries.get(key);
    if (!e || e.expiresAt <= Date.now()) {
      e = { value: 0, expiresAt: Date.now() + ttlMs };
      this.entries.set(key, e);
    }
    return e;
  }

  async problem() {
    return null;
  }

  async close() {
    clearInterval(this.sweeper);
  }
}

export async function openCache(opts: { url?: string; namespace: string; log: Logger }): Promise<Cache> {
  if (!opts.url) return new MemoryCache();
  const { RedisCache } = await import("./redis");
  try {
    return await RedisCache.connect(opts.url, opts.namespace, opts.log);
  } catch (err) {
    throw new FatalError(`cannot reach Redis at ${redactUrl(opts.url)}: ${(err as Error).message}`);
  }
}
