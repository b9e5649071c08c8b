import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteLru } from './lru.ts';

/** Values are their own size, so a test reads sizes straight off them. */
function lru(maxBytes = 1000, extra: { onEvict?: (k: string, v: number) => void } = {}) {
  return new ByteLru<number>({ maxBytes, sizeOf: (v) => v, ...extra });
}

const fill = (c: ByteLru<number>, keys: string[], size = 100) => {
  for (const k of keys) expect(c.set(k, size)).toBe(true);
};

describe('ByteLru', () => {
  it('evicts nothing up to the high watermark, then down to the low one', () => {
    const evicted: string[] = [];
    const c = lru(1000, { onEvict: (k) => evicted.push(k) });
    fill(c, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    expect(c.bytes).toBe(900);
    expect(c.size).toBe(9);
    expect(c.stats.evictions).toBe(0);
    // 1000 > 950: a pass, down to <= 800, so two entries of 100 go.
    fill(c, ['j']);
    expect(c.bytes).toBe(800);
    expect(c.size).toBe(8);
    expect(evicted).toEqual(['a', 'b']);
    expect(c.stats).toMatchObject({ evictions: 2, evictedBytes: 200, bytes: 800, entries: 8 });
    // Back under the high watermark: room for 150 more bytes without another pass.
    fill(c, ['k'], 150);
    expect(c.stats.evictions).toBe(2);
    expect(c.bytes).toBe(950);
  });

  it('evicts the lowest hit counts first, least recently used first among equals', () => {
    const evicted: string[] = [];
    const c = lru(1000, { onEvict: (k) => evicted.push(k) });
    fill(c, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    const reads: Record<string, number> = { a: 3, b: 1, c: 2, e: 1, f: 2, g: 4, h: 1, i: 5 };
    for (const [k, n] of Object.entries(reads)) for (let r = 0; r < n; r++) c.get(k);
    // d has no hit; b, e, h one each, read in that order (b least recently used).
    fill(c, ['j'], 300); // 1200 bytes: evict to <= 800, i.e. 400 bytes, 4 entries.
    expect(evicted).toEqual(['d', 'b', 'e', 'h']);
    expect(c.keys().sort()).toEqual(['a', 'c', 'f', 'g', 'i', 'j']);
  });

  it('orders equal hit counts by use: get makes an entry recent, peek does not', () => {
    const evicted: string[] = [];
    const c = lru(1000, { onEvict: (k) => evicted.push(k) });
    fill(c, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    for (const k of c.keys()) c.get(k); // one hit each, order unchanged
    c.get('a'); // two hits now: kept
    c.get('a');
    c.get('b'); // b has two hits too
    expect(c.peek('c')).toBe(100); // no hit, no move: c stays least recently used
    c.set('d', 100); // replaced: d becomes most recent, keeps its one hit
    expect(c.hitsOf('d')).toBe(1);
    fill(c, ['x'], 200); // 1000 bytes: evict 200
    expect(evicted).toEqual(['c', 'e']); // one hit each, least recently used
    expect(c.keys()).toEqual(['f', 'g', 'h', 'a', 'b', 'd', 'x']);
  });

  it('never evicts the entry it is setting, even when all others were read', () => {
    const c = lru(1000);
    fill(c, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    for (const k of c.keys()) c.get(k);
    fill(c, ['new']);
    expect(c.has('new')).toBe(true);
    expect(c.bytes).toBe(800);
  });

  it('counts hits and misses on get only', () => {
    const c = lru();
    c.set('a', 10);
    expect(c.get('a')).toBe(10);
    expect(c.get('a')).toBe(10);
    expect(c.get('zz')).toBeUndefined();
    expect(c.peek('a')).toBe(10);
    expect(c.peek('zz')).toBeUndefined();
    expect(c.has('a')).toBe(true);
    expect(c.hitsOf('a')).toBe(2);
    expect(c.hitsOf('zz')).toBe(0);
    expect(c.stats).toMatchObject({ hits: 2, misses: 1, sets: 1 });
  });

  it('accounts bytes through replacement, delete and clear; replacement keeps hits', () => {
    const c = lru();
    c.set('a', 100);
    c.set('b', 50);
    c.get('a');
    c.set('a', 300);
    expect(c.bytes).toBe(350);
    expect(c.size).toBe(2);
    expect(c.hitsOf('a')).toBe(1);
    expect(c.delete('b')).toBe(true);
    expect(c.delete('b')).toBe(false);
    expect(c.bytes).toBe(300);
    expect(c.stats).toMatchObject({ bytes: 300, entries: 1, sets: 3 });
    c.clear();
    expect(c.bytes).toBe(0);
    expect(c.size).toBe(0);
    expect(c.stats.entries).toBe(0);
    expect(c.has('a')).toBe(false);
  });

  it('refuses an entry larger than the low watermark, dropping what the key held', () => {
    const c = lru(1000);
    expect(c.set('ok', 800)).toBe(true); // exactly the low watermark
    expect(c.set('big', 801)).toBe(false);
    expect(c.has('big')).toBe(false);
    expect(c.bytes).toBe(800);
    expect(c.set('ok', 900)).toBe(false);
    expect(c.has('ok')).toBe(false);
    expect(c.bytes).toBe(0);
    expect(c.stats.sets).toBe(1);
  });

  it('rejects impossible options and sizes', () => {
    expect(() => lru(-1)).toThrow(RangeError);
    expect(
      () =>
        new ByteLru<number>({
          maxBytes: 10,
          lowWatermark: 0.9,
          highWatermark: 0.5,
          sizeOf: (v) => v,
        }),
    ).toThrow(RangeError);
    expect(() => lru().set('a', Number.NaN)).toThrow(RangeError);
    expect(() => lru().set('a', -1)).toThrow(RangeError);
  });

  it('an eviction pass is O(n log n): 20 000 entries evict in well under a second', () => {
    const c = new ByteLru<number>({ maxBytes: 20_000, sizeOf: () => 1 });
    for (let i = 0; i < 19_000; i++) c.set(`k${i}`, i);
    for (let i = 0; i < 19_000; i += 3) c.get(`k${i}`);
    const t0 = performance.now();
    c.set('last', 0); // 19 001 > 19 000: one pass down to 16 000
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(c.bytes).toBe(16_000);
    // Every entry read survived: the 3 001 evicted were all among the unread.
    for (let i = 0; i < 19_000; i += 3) expect(c.has(`k${i}`)).toBe(true);
  });

  it('property: bytes is the sum of present sizes, under the high watermark after a set', () => {
    const op = fc.oneof(
      fc.record({
        op: fc.constant('set' as const),
        key: fc.integer({ min: 0, max: 15 }),
        size: fc.integer({ min: 0, max: 400 }),
      }),
      fc.record({ op: fc.constant('get' as const), key: fc.integer({ min: 0, max: 15 }) }),
      fc.record({ op: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 15 }) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2_000 }),
        fc.double({ min: 0.1, max: 1, noNaN: true }),
        fc.double({ min: 0.1, max: 1, noNaN: true }),
        fc.array(op, { maxLength: 120 }),
        (maxBytes, w1, w2, ops) => {
          const [low, high] = w1 <= w2 ? [w1, w2] : [w2, w1];
          // What the cache should hold: last accepted value per key, minus what it evicted.
          const model = new Map<string, number>();
          const c = new ByteLru<number>({
            maxBytes,
            lowWatermark: low,
            highWatermark: high,
            sizeOf: (v) => v,
            onEvict: (k) => model.delete(k),
          });
          for (const o of ops) {
            const key = `k${o.key}`;
            if (o.op === 'set') {
              if (c.set(key, o.size)) model.set(key, o.size);
              else model.delete(key);
              expect(c.bytes).toBeLessThanOrEqual(high * maxBytes);
            } else if (o.op === 'get') {
              expect(c.get(key)).toBe(model.get(key));
            } else {
              expect(c.delete(key)).toBe(model.delete(key));
            }
            let sum = 0;
            for (const k of c.keys()) sum += c.peek(k) as number;
            expect(c.bytes).toBe(sum);
            expect(c.stats.bytes).toBe(sum);
            expect(c.size).toBe(model.size);
            expect(c.stats.entries).toBe(model.size);
            expect(new Map(c.keys().map((k) => [k, c.peek(k)]))).toEqual(model);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
