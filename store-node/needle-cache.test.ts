import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUTH_HEADER, InternalAuth } from '../common/internal-auth.ts';
import { payload } from '../common/payload.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { LocalNeedleStore, type NeedleRef } from './api.ts';
import { StoreClient } from './client.ts';
import { type CachedRead, NeedleCache, type NeedleCacheOptions } from './needle-cache.ts';
import { StoreServer } from './server.ts';
import { Store } from './store.ts';
import { volumePaths } from './volume-load.ts';

const CACHE: NeedleCacheOptions = {
  bytes: 1024 * 1024,
  maxObjectBytes: 64 * 1024,
  highWatermark: 0.95,
  lowWatermark: 0.8,
  periodMs: 0,
};

let dir: string;
let store: Store;
let needles: LocalNeedleStore;

async function openStore(cache: NeedleCacheOptions | null = CACHE): Promise<void> {
  dir = tempDir();
  store = await Store.open(dir, {
    compactCheckMs: 0,
    scrubIntervalMs: 0,
    compression: 'off',
    cache: cache ?? undefined,
  });
  await store.createVolume(1);
  needles = new LocalNeedleStore(store);
}

afterEach(async () => {
  await store.close();
});

/**
 * Overwrites the needle's bytes in the volume file: from then on a read from disk fails
 * its checksum, so only a cached copy can answer with the original bytes.
 */
function damageOnDisk(data: Buffer): void {
  const file = volumePaths(dir, 1).dat;
  const bytes = fs.readFileSync(file);
  const at = bytes.indexOf(data);
  expect(at).toBeGreaterThan(0);
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, Buffer.alloc(16, 0x5a), 0, 16, at + 8);
  } finally {
    fs.closeSync(fd);
  }
}

describe('store needle cache', () => {
  beforeEach(() => openStore());

  it('keeps a needle on a fill hint and serves it from memory after', async () => {
    const ref = { volumeId: 1, needleId: 10n, cookie: 77 };
    const data = payload(10n, 5000);
    await needles.put(ref, data);
    expect((await needles.get(ref)).data.equals(data)).toBe(true);
    // No hint: a miss, nothing admitted.
    expect(store.cache!.stats).toMatchObject({ hits: 0, misses: 1, entries: 0, fills: 0 });
    expect((await needles.get(ref, undefined, { cache: 'fill' })).data.equals(data)).toBe(true);
    expect(store.cache!.stats).toMatchObject({ misses: 2, entries: 1, bytes: 5000, fills: 1 });
    damageOnDisk(data);
    await expect(store.volume(1).read(ref.needleId, ref.cookie)).rejects.toMatchObject({
      code: 'NeedleCorrupt',
    });
    // Without a hint a cached copy is still used; ranges are cut from it.
    expect((await needles.get(ref)).data.equals(data)).toBe(true);
    const part = await needles.get(ref, { start: 4990, end: 9999 });
    expect(part.size).toBe(5000);
    expect(part.data.equals(data.subarray(4990))).toBe(true);
    await expect(needles.get(ref, { start: 5000, end: 5001 })).rejects.toMatchObject({
      code: 'InvalidRange',
    });
    expect(store.cache!.stats.hits).toBe(3);
    // The cookie is part of the key: a wrong one is not answered from memory.
    await expect(needles.get({ ...ref, cookie: 78 })).rejects.toMatchObject({
      code: 'CookieMismatch',
    });
  });

  it('drops its copy on a drop hint (the gateways took it over), after answering', async () => {
    const ref = { volumeId: 1, needleId: 11n, cookie: 1 };
    const data = payload(11n, 3000);
    await needles.put(ref, data);
    await needles.get(ref, undefined, { cache: 'fill' });
    damageOnDisk(data);
    expect((await needles.get(ref, undefined, { cache: 'drop' })).data.equals(data)).toBe(true);
    expect(store.cache!.stats).toMatchObject({ entries: 0, bytes: 0, drops: 1 });
    await expect(needles.get(ref)).rejects.toMatchObject({ code: 'NeedleCorrupt' });
  });

  it('never answers for a deleted needle, whichever path deleted it', async () => {
    const a = { volumeId: 1, needleId: 12n, cookie: 5 };
    const b = { volumeId: 1, needleId: 13n, cookie: 6 };
    await needles.put(a, payload(12n, 100));
    await needles.put(b, payload(13n, 100));
    await needles.get(a, undefined, { cache: 'fill' });
    await needles.get(b, undefined, { cache: 'fill' });
    expect(store.cache!.stats.entries).toBe(2);
    await needles.delete(a);
    expect(store.cache!.stats).toMatchObject({ entries: 1, invalidated: 1 });
    await expect(needles.get(a)).rejects.toMatchObject({ code: 'NoSuchNeedle' });
    // A tombstone written straight to the volume (as a sync with deletes does) bypasses
    // Store.delete: the liveness check on the hit still refuses the copy.
    await store.volume(1).delete(b.needleId);
    await expect(needles.get(b)).rejects.toMatchObject({ code: 'NoSuchNeedle' });
    expect(store.cache!.stats).toMatchObject({ entries: 0, invalidated: 2 });
    // And compaction (which drops the tombstoned needles) leaves nothing to answer from.
    await store.compact(1);
    await expect(needles.get(a, undefined, { cache: 'fill' })).rejects.toMatchObject({
      code: 'NoSuchNeedle',
    });
    expect(store.cache!.stats.entries).toBe(0);
  });

  it('does not cache needles past maxObjectBytes', async () => {
    const ref = { volumeId: 1, needleId: 14n, cookie: 1 };
    const data = payload(14n, CACHE.maxObjectBytes + 1);
    await needles.put(ref, data);
    expect((await needles.get(ref, undefined, { cache: 'fill' })).data.equals(data)).toBe(true);
    const part = await needles.get(ref, { start: 10, end: 19 }, { cache: 'fill' });
    expect(part.data.equals(data.subarray(10, 20))).toBe(true);
    expect(store.cache!.stats).toMatchObject({ entries: 0, bytes: 0, fills: 0 });
  });

  it('fills from a ranged read with the whole needle', async () => {
    const ref = { volumeId: 1, needleId: 15n, cookie: 9 };
    const data = payload(15n, 4000);
    await needles.put(ref, data);
    const part = await needles.get(ref, { start: 100, end: 199 }, { cache: 'fill' });
    expect(part.data.equals(data.subarray(100, 200))).toBe(true);
    expect(store.cache!.stats).toMatchObject({ entries: 1, bytes: 4000 });
    damageOnDisk(data);
    expect((await needles.get(ref)).data.equals(data)).toBe(true);
  });

  it('drops entries no fill hint refreshed within a period (a timer on the store)', async () => {
    await store.close();
    await openStore({ ...CACHE, periodMs: 40 });
    const ref = { volumeId: 1, needleId: 16n, cookie: 1 };
    await needles.put(ref, payload(16n, 100));
    await needles.get(ref, undefined, { cache: 'fill' });
    expect(store.cache!.stats.entries).toBe(1);
    const deadline = Date.now() + 5_000;
    while (store.cache!.stats.entries > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(store.cache!.stats).toMatchObject({ entries: 0, aged: 1 });
  });

  it('without the cache option there is no cache and reads work as before', async () => {
    await store.close();
    await openStore(null);
    const ref = { volumeId: 1, needleId: 17n, cookie: 1 };
    await needles.put(ref, Buffer.from('plain'));
    expect(store.cache).toBeNull();
    const got = await needles.get(ref, undefined, { cache: 'fill' });
    expect(got.data.toString()).toBe('plain');
  });
});

describe('NeedleCache ageing (injected clock)', () => {
  it('keeps what was hinted during the last full period and drops the rest', async () => {
    let now = 0;
    const live = new Set(['1/1', '1/2']);
    const cache = new NeedleCache(
      { ...CACHE, periodMs: 1000 },
      (r) => live.has(`${r.volumeId}/${r.needleId}`),
      { now: () => now, timer: false },
    );
    const disk = (n: number) => async (): Promise<CachedRead> => ({
      data: Buffer.alloc(n, 1),
      size: n,
      compressed: false,
    });
    const a: NeedleRef = { volumeId: 1, needleId: 1n, cookie: 1 };
    const b: NeedleRef = { volumeId: 1, needleId: 2n, cookie: 1 };
    await cache.read(a, undefined, 'fill', disk(10));
    await cache.read(b, undefined, 'fill', disk(20));
    now = 1500;
    await cache.read(a, undefined, 'fill', disk(10)); // still hot: refreshed
    await cache.read(b, undefined, undefined, disk(20)); // read, but not hinted
    now = 2000;
    expect(cache.age()).toBe(1);
    expect([cache.has(a), cache.has(b)]).toEqual([true, false]);
    now = 3000;
    expect(cache.age()).toBe(1); // a got no hint in (2000, 3000]
    expect(cache.stats).toMatchObject({ entries: 0, bytes: 0, aged: 2, hits: 2, fills: 2 });
    // An entry whose needle is gone goes at the next inspection even if recently hinted.
    await cache.read(a, undefined, 'fill', disk(10));
    live.delete('1/1');
    expect(cache.age()).toBe(1);
    cache.close();
  });
});

describe('the x-ks-cache hint over HTTP', () => {
  it('is sent by StoreClient.get, honoured by the server, and shown at GET /cache', async () => {
    await openStore();
    const auth = new InternalAuth('test-cluster-secret-0123456789');
    const server = new StoreServer({ store, auth, maxNeedleSize: 1024 * 1024 });
    const port = (await server.listen('127.0.0.1', 0)).port;
    const client = new StoreClient(`http://127.0.0.1:${port}`, auth);
    try {
      const ref = { volumeId: 1, needleId: 20n, cookie: 3 };
      const data = payload(20n, 2048);
      await client.put(ref, data);
      await client.get(ref);
      expect((await client.cacheStatus()).cache).toMatchObject({ entries: 0, misses: 1 });
      await client.get(ref, undefined, { cache: 'fill' });
      damageOnDisk(data);
      const part = await client.get(ref, { start: 1000, end: 1999 });
      expect(part.data.equals(data.subarray(1000, 2000))).toBe(true);
      const st = await client.cacheStatus();
      expect(st.cache).toMatchObject({ entries: 1, bytes: 2048, fills: 1, hits: 1 });
      expect(st.extra).toEqual({ count: 0, bytes: 0, needles: [] });
      await client.get(ref, undefined, { cache: 'drop' });
      expect((await client.cacheStatus()).cache).toMatchObject({ entries: 0, drops: 1 });
      // Anything else in the header is refused, not ignored.
      const path = `/volumes/1/needles/20?cookie=3`;
      const bad = await fetch(`http://127.0.0.1:${port}${path}`, {
        headers: { 'x-ks-cache': 'keep', [AUTH_HEADER]: auth.sign('GET', path) },
      });
      expect(bad.status).toBe(400);
      // /cache is signed like /status.
      expect((await fetch(`http://127.0.0.1:${port}/cache`)).status).toBe(403);
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`, {
        headers: { authorization: `Bearer ${auth.metricsToken}` },
      });
      const text = await metrics.text();
      expect(text).toContain('kubestorage_cache_entries{level="store"} 0');
      expect(text).toContain('kubestorage_cache_hits_total{level="store"} 2');
      expect(text).toContain('kubestorage_cache_promotions_total{level="store"} 1');
      expect(text).toContain('kubestorage_store_extra_needles 0');
    } finally {
      await client.close();
      await server.close();
    }
  });
});
