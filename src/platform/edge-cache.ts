/**
 * An in-process read cache for hot resources, kept coherent across processes by the bus:
 * whoever changes a resource calls `invalidate(key)`, which drops it here and publishes the
 * key on `<ns>.cache.<kind>.changed` so every other process drops it too. Bus messages are
 * at-most-once, so entries also expire after `ttlMs`, which bounds staleness after a lost
 * invalidation. Concurrent misses for one key share one load, and a load that overlaps an
 * invalidation is not stored (a generation counter per key), so a stale read cannot be
 * cached after the change that replaced it.
 */
import type { Bus } from "./bus";

export interface EdgeCache<T> {
  /** The value (a copy: callers may change it), loaded on a miss. */
  get(key: string, load: () => Promise<T>): Promise<T>;
  /**
   * The cached value as JSON text, serialised once per entry; undefined on a miss. The hot
   * read answers with it directly: no copy, no re-validation, no serialisation per request.
   */
  cachedJson(key: string): string | undefined;
  /** Drops `key` in every process (locally at once, elsewhere over the bus). */
  invalidate(key: string): void;
  close(): void;
  readonly size: number;
}

/**
 * The caches of this process by subject: an invalidation drops the key here at once, before
 * the bus carries it (over NATS a process hears its own message only after a round trip, and
 * the next read on the gateway that made the change must not see the old value).
 */
const localDrops = new Map<string, Set<(key: string) => void>>();
function dropLocally(subject: string, key: string) {
  for (const drop of localDrops.get(subject) ?? []) drop(key);
}

export function edgeCacheSubject(kind: string) {
  return `cache.${kind}.changed`;
}

export function createEdgeCache<T>(bus: Bus, kind: string, opts: { ttlMs?: number; max?: number } = {}): EdgeCache<T> {
  const ttlMs = opts.ttlMs ?? 30_000;
  const max = opts.max ?? 50_000;
  const entries = new Map<string, { value: T; until: number; json?: string }>();
  const loading = new Map<string, Promise<T>>();
  const generations = new Map<string, number>();
  const subject = bus.subject(edgeCacheSubject(kind));

  const drop = (key: string) => {
    entries.delete(key);
    loading.delete(key);
    generations.set(key, (generations.get(key) ?? 0) + 1);
    if (generations.size > max) generations.clear();
  };
  const unsubscribeBus = bus.subscribe<{ key: string }>(subject, (msg) => {
    if (typeof msg.data?.key === "string") drop(msg.data.key);
  });
  if (!localDrops.has(subject)) localDrops.set(subject, new Set());
  localDrops.get(subject)!.add(drop);
  const unsubscribe = () => {
    unsubscribeBus();
    localDrops.get(subject)?.delete(drop);
  };

  return {
    get(key, load) {
      const hit = entries.get(key);
      if (hit && hit.until > Date.now()) return Promise.resolve(structuredClone(hit.value));
      const pending = loading.get(key);
      if (pending) return pending.then((v) => structuredClone(v));
      const generation = generations.get(key) ?? 0;
      const promise = load().then(
        (value) => {
          if ((generations.get(key) ?? 0) === generation) {
            if (entries.size >= max) entries.clear();
            entries.set(key, { value, until: Date.now() + ttlMs });
          }
          if (loading.get(key) === promise) loading.delete(key);
          return value;
        },
        (err) => {
          if (loading.get(key) === promise) loading.delete(key);
          throw err;
        },
      );
      loading.set(key, promise);
      return promise.then((v) => structuredClone(v));
    },
    cachedJson(key) {
      const hit = entries.get(key);
      if (!hit || hit.until <= Date.now()) return undefined;
      return (hit.json ??= JSON.stringify(hit.value));
    },
    invalidate(key) {
      dropLocally(subject, key);
      bus.publish(subject, { key });
    },
    close: unsubscribe,
    get size() {
      return entries.size;
    },
  };
}

/** Publishes an invalidation without holding a cache (a role that changes what another caches). */
export function publishInvalidation(bus: Bus, kind: string, key: string) {
  const subject = bus.subject(edgeCacheSubject(kind));
  dropLocally(subject, key);
  bus.publish(subject, { key });
}
