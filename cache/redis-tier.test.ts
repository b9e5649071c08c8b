import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from '../test/kit/redis-server.ts';
import { until } from '../test/kit/until.ts';
import { RedisTier } from './redis-tier.ts';

const TIMEOUT_MS = 100;

/** Every byte value, CR LF, and bytes that are not UTF-8: what a text round trip would mangle. */
const BINARY = Buffer.concat([
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.from('\r\n$-1\r\n', 'latin1'),
  Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0x00]),
]);

/** What `fn` resolved to, and how long it took. */
async function timed<T>(fn: () => Promise<T>): Promise<{ v: T; ms: number }> {
  const t0 = performance.now();
  const v = await fn();
  return { v, ms: performance.now() - t0 };
}

describe('RedisTier', () => {
  let redis: RedisServer;
  let tier: RedisTier;

  beforeAll(async () => {
    redis = await startRedis();
    tier = new RedisTier({ url: redis.url, timeoutMs: TIMEOUT_MS });
    await until('tier connected', () => tier.up, 5_000);
  });

  afterAll(async () => {
    await tier?.close();
    await redis?.stop();
  });

  it('counts misses and hits, and the bytes its hits returned', async () => {
    expect(await tier.get('absent')).toBeUndefined();
    expect(tier.stats.misses).toBe(1);
    await tier.set('a', Buffer.from('hello'));
    expect(tier.stats.sets).toBe(1);
    expect((await tier.get('a'))?.toString()).toBe('hello');
    expect(tier.stats).toMatchObject({ hits: 1, misses: 1, bytes: 5, errors: 0, skipped: 0 });
    await tier.delete('a');
    expect(await tier.get('a')).toBeUndefined();
    expect(tier.stats.misses).toBe(2);
  });

  it('is binary safe, prefixes its keys and gives them a TTL', async () => {
    await tier.set('bin', BINARY);
    const got = await tier.get('bin');
    expect(got).toBeInstanceOf(Buffer);
    expect(got?.equals(BINARY)).toBe(true);
    const direct = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      expect((await direct.getBuffer('ks:n:bin'))?.equals(BINARY)).toBe(true);
      const ttl = await direct.ttl('ks:n:bin');
      expect(ttl).toBeGreaterThan(3_500);
      expect(ttl).toBeLessThanOrEqual(3_600);
    } finally {
      direct.disconnect();
    }
  });

  it('answers within its timeout when Redis hangs, then leaves it alone for a second', async () => {
    await tier.set('frozen', Buffer.from('x'));
    const errors = tier.stats.errors;
    process.kill(redis.pid, 'SIGSTOP');
    try {
      const { v, ms } = await timed(() => tier.get('frozen'));
      expect(v).toBeUndefined();
      expect(ms).toBeLessThan(TIMEOUT_MS * 4);
      expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 5); // it did wait for an answer
      expect(tier.stats.errors).toBe(errors + 1);
      expect(tier.up).toBe(false);
      // The breaker is open: the next calls are not even sent.
      const skipped = tier.stats.skipped;
      for (let i = 0; i < 5; i++) {
        const r = await timed(() => tier.get('frozen'));
        expect(r.v).toBeUndefined();
        expect(r.ms).toBeLessThan(TIMEOUT_MS);
      }
      expect(tier.stats.skipped).toBe(skipped + 5);
      expect(tier.stats.errors).toBe(errors + 1);
    } finally {
      process.kill(redis.pid, 'SIGCONT');
    }
    // The breaker closes after a second and the same connection answers again.
    const back = await until(
      'answers after SIGCONT',
      async () => (await tier.get('frozen'))?.toString(),
      5_000,
      { everyMs: 100 },
    );
    expect(back).toBe('x');
  });

  it('with Redis killed, every call resolves fast to nothing; it recovers by itself', async () => {
    await tier.set('old', Buffer.from('before the crash'));
    const before = { ...tier.stats };
    await redis.kill9();
    const t0 = Date.now();
    // Over more than one breaker period: both failing and skipped calls happen.
    for (let i = 0; i < 30 && Date.now() - t0 < 1_500; i++) {
      const g = await timed(() => tier.get('old'));
      expect(g.v).toBeUndefined();
      expect(g.ms).toBeLessThan(TIMEOUT_MS * 4);
      const s = await timed(() => tier.set('k', Buffer.from('v')));
      expect(s.ms).toBeLessThan(TIMEOUT_MS * 4);
      const d = await timed(() => tier.delete('k'));
      expect(d.ms).toBeLessThan(TIMEOUT_MS * 4);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(tier.up).toBe(false);
    expect(tier.stats.errors).toBeGreaterThan(before.errors);
    expect(tier.stats.skipped).toBeGreaterThan(before.skipped);
    expect(tier.stats.hits).toBe(before.hits);
    expect(tier.stats.sets).toBe(before.sets);

    await redis.restart();
    await until('tier reconnects on its own', () => tier.up, 10_000, { everyMs: 50 });
    // Restarted empty: the old key is a miss, answered by Redis (not skipped).
    const misses = tier.stats.misses;
    expect(await tier.get('old')).toBeUndefined();
    expect(tier.stats.misses).toBe(misses + 1);
    await tier.set('new', BINARY);
    expect((await tier.get('new'))?.equals(BINARY)).toBe(true);
  });

  it('never throws, even unreachable from the start or closed', async () => {
    const dead = new RedisTier({ url: 'redis://127.0.0.1:1', timeoutMs: 50 });
    try {
      const g = await timed(() => dead.get('x'));
      expect(g.v).toBeUndefined();
      expect(g.ms).toBeLessThan(200);
      await dead.set('x', Buffer.from('y'));
      await dead.delete('x');
      expect(dead.up).toBe(false);
      expect(dead.stats.errors + dead.stats.skipped).toBe(3);
    } finally {
      await dead.close();
    }
    const closing = new RedisTier({ url: redis.url });
    await until('second tier connected', () => closing.up, 5_000);
    await closing.close();
    expect(closing.up).toBe(false);
    expect(await closing.get('new')).toBeUndefined();
    expect(closing.stats.skipped).toBe(1);
  });
});
