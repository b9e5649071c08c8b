import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ByteLru } from './lru.ts';
import { registerCacheMetrics } from './metrics.ts';

/** The value of one sample in exposition text, or undefined when there is none. */
function sample(text: string, name: string, level: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{level="${level}"} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('registerCacheMetrics', () => {
  it('reports several levels on one registry, read at each scrape', async () => {
    const registry = new client.Registry();
    const store = new ByteLru<Buffer>({ maxBytes: 1_000, sizeOf: (b) => b.length });
    registerCacheMetrics(registry, 'store', () => store.stats);
    const redis = { hits: 7, misses: 3, bytes: 4096, entries: 0, evictions: 0, errors: 2 };
    registerCacheMetrics(registry, 'redis', () => redis);

    store.set('a', Buffer.alloc(300));
    store.set('b', Buffer.alloc(200));
    store.get('a');
    store.get('a');
    store.get('zz');
    let text = await registry.metrics();
    expect(sample(text, 'kubestorage_cache_hits_total', 'store')).toBe(2);
    expect(sample(text, 'kubestorage_cache_misses_total', 'store')).toBe(1);
    expect(sample(text, 'kubestorage_cache_bytes', 'store')).toBe(500);
    expect(sample(text, 'kubestorage_cache_entries', 'store')).toBe(2);
    expect(sample(text, 'kubestorage_cache_evictions_total', 'store')).toBe(0);
    expect(sample(text, 'kubestorage_cache_hits_total', 'redis')).toBe(7);
    expect(sample(text, 'kubestorage_cache_misses_total', 'redis')).toBe(3);
    expect(sample(text, 'kubestorage_cache_bytes', 'redis')).toBe(4096);
    expect(sample(text, 'kubestorage_cache_errors_total', 'redis')).toBe(2);
    // Fields a level does not have give no sample (not a misleading zero).
    expect(sample(text, 'kubestorage_cache_errors_total', 'store')).toBeUndefined();
    expect(sample(text, 'kubestorage_cache_promotions_total', 'redis')).toBeUndefined();
    expect(text).toContain('# TYPE kubestorage_cache_hits_total counter');
    expect(text).toContain('# TYPE kubestorage_cache_bytes gauge');

    // The next scrape sees the new numbers, not the sum of both scrapes.
    store.set('c', Buffer.alloc(500)); // 1000 bytes > 950: evicts b (no hits)
    redis.hits = 8;
    text = await registry.metrics();
    expect(sample(text, 'kubestorage_cache_hits_total', 'redis')).toBe(8);
    expect(sample(text, 'kubestorage_cache_evictions_total', 'store')).toBe(1);
    expect(sample(text, 'kubestorage_cache_evicted_bytes_total', 'store')).toBe(200);
    expect(sample(text, 'kubestorage_cache_bytes', 'store')).toBe(800);
  });

  it('keeps registries apart, and a level can be replaced or removed', async () => {
    const r1 = new client.Registry();
    const r2 = new client.Registry();
    const base = { misses: 0, bytes: 0, entries: 0, evictions: 0 };
    registerCacheMetrics(r1, 'gateway', () => ({ ...base, hits: 1, promotions: 4 }));
    const stop = registerCacheMetrics(r2, 'gateway', () => ({ ...base, hits: 2 }));
    registerCacheMetrics(r1, 'gateway', () => ({ ...base, hits: 3, promotions: 5 }));
    const t1 = await r1.metrics();
    expect(sample(t1, 'kubestorage_cache_hits_total', 'gateway')).toBe(3);
    expect(sample(t1, 'kubestorage_cache_promotions_total', 'gateway')).toBe(5);
    expect(sample(await r2.metrics(), 'kubestorage_cache_hits_total', 'gateway')).toBe(2);
    stop();
    expect(sample(await r2.metrics(), 'kubestorage_cache_hits_total', 'gateway')).toBeUndefined();
  });
});
