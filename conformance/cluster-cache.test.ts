// Issue 14 on a real cluster (`kubestorage cluster up --redis auto`: 3 directory replicas,
// 4 stores, 2 gateways, a redis-server, each its own process), thresholds scaled down:
//
//  3. Coherence under fire: a writer overwrites and deletes hot keys through one gateway
//     while readers read them through the other, with the cache hot: no read returns
//     anything older than the last write acknowledged before the read started.
//  4. Redis faults: redis-server kill -9'd during a read/write load and started again
//     empty: no request fails beyond the SDK's retry, no read is stale, the L2 serves again.
//  5. Extra replicas appear in the directory's tables while an object is hot (and on the
//     stores named there), a store holding one dies without losing a read, and they are
//     gone from tables and stores after the object cools.
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { startRedisServer } from '../cache/redis-process.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { killPid } from '../test/kit/processes.ts';
import { startCluster, type TestCluster, until } from './cluster-util.ts';

const RUN = process.env.KUBESTORAGE_TEST_DIRECTORY !== 'raft';
const BUCKET = 'hot';
const PERIOD_MS = 8_000;
const REPLICATE_AT = 20;
const CACHE_AT = 40;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What every GET/PUT/DELETE of the fire tests did, to judge staleness afterwards. */
class History {
  /** Per key: writes in the order they were issued (seq = index). */
  readonly writes = new Map<string, { kind: 'put' | 'delete'; startedAt: number }[]>();
  /** Per key: the seq of the last acknowledged write. */
  readonly acked = new Map<string, number>();
  readonly reads: {
    key: string;
    ackedAtStart: number;
    got: number | 'missing';
    endedAt: number;
  }[] = [];
  failures: string[] = [];

  begin(key: string, kind: 'put' | 'delete'): number {
    const list = this.writes.get(key) ?? [];
    list.push({ kind, startedAt: performance.now() });
    this.writes.set(key, list);
    return list.length - 1;
  }

  ack(key: string, seq: number): void {
    if ((this.acked.get(key) ?? -1) < seq) this.acked.set(key, seq);
  }

  /** Reads that returned something older than the last write acknowledged at their start. */
  stale(): string[] {
    const bad: string[] = [];
    for (const r of this.reads) {
      const n = r.ackedAtStart;
      if (n < 0) continue;
      const w = this.writes.get(r.key)!;
      if (r.got === 'missing') {
        // Fine if that write was a delete, or a later delete had been issued by the end.
        const ok =
          w[n]!.kind === 'delete' ||
          w.some((x, i) => i > n && x.kind === 'delete' && x.startedAt <= r.endedAt);
        if (!ok) bad.push(`${r.key}: 404 after put #${n} was acknowledged`);
      } else if (r.got < n) {
        bad.push(`${r.key}: read put #${r.got} after #${n} was acknowledged`);
      }
    }
    return bad;
  }
}

const body = (key: string, seq: number) => Buffer.from(`${key}#${seq}#${'x'.repeat(3000)}`);

async function put(s3: S3Client, h: History, key: string): Promise<void> {
  const seq = h.begin(key, 'put');
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body(key, seq) }));
  h.ack(key, seq);
}

async function del(s3: S3Client, h: History, key: string): Promise<void> {
  const seq = h.begin(key, 'delete');
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
  h.ack(key, seq);
}

async function read(s3: S3Client, h: History, key: string): Promise<void> {
  const ackedAtStart = h.acked.get(key) ?? -1;
  let got: number | 'missing';
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    const text = Buffer.from(await r.Body!.transformToByteArray()).toString();
    const [k, seq] = text.split('#');
    if (k !== key) throw new Error(`GET ${key} returned the bytes of ${k}`);
    got = Number(seq);
  } catch (e) {
    if ((e as { name?: string }).name !== 'NoSuchKey') throw e;
    got = 'missing';
  }
  h.reads.push({ key, ackedAtStart, got, endedAt: performance.now() });
}

/** Runs `fn` in `width` loops until `ms` passed; failures are recorded, not thrown. */
async function loops(h: History, width: number, ms: number, fn: (i: number) => Promise<void>) {
  const end = Date.now() + ms;
  await Promise.all(
    Array.from({ length: width }, async (_, i) => {
      for (let n = 0; Date.now() < end && n < 100_000; n++) {
        await fn(i).catch((e: unknown) => {
          h.failures.push(String((e as Error).message ?? e));
        });
      }
    }),
  );
}

/** A gateway's counter, scraped with the metrics token of `secret` (the cluster's). */
async function gatewayMetric(
  url: string,
  secret: string,
  name: string,
  level: string,
): Promise<number> {
  const authorization = `Bearer ${new InternalAuth(secret).metricsToken}`;
  const text = await (await fetch(`${url}/_ks/metrics`, { headers: { authorization } })).text();
  const m = new RegExp(`^${name}\\{level="${level}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe.runIf(RUN)('the two-level cache on a real cluster', () => {
  let c: TestCluster;
  const saved = { ...process.env };
  beforeAll(async () => {
    // Every process `cluster up` starts reads these (config env): a fast report cycle.
    process.env.KUBESTORAGE_CACHE_REPORT_MS = '200';
    process.env.KUBESTORAGE_CACHE_LEASE_MS = '500';
    c = await startCluster('cache', [
      '--redis',
      'auto',
      '--cache-period-ms',
      String(PERIOD_MS),
      '--replicate-threshold',
      String(REPLICATE_AT),
      '--cache-threshold',
      String(CACHE_AT),
      '--offline-after-ms',
      '1500',
    ]);
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    await c.s3[0]!.send(new CreateBucketCommand({ Bucket: BUCKET }));
  }, 120_000);
  afterAll(async () => {
    await c?.close();
  });

  /** Reads `keys` through gateway `g` until the directory has them all at `level`. */
  async function heat(keys: string[], level: 'replicas' | 'gateway', g = 1) {
    const h = new History();
    await until(
      `${keys.join(',')} at ${level} level`,
      async () => {
        await Promise.all(keys.map((k) => read(c.s3[g]!, h, k)));
        const hot = await c.meta.listHotObjects();
        return keys.every((k) => hot.some((o) => o.key === k && o.level === level));
      },
      60_000,
      20,
    );
  }

  it('3: no stale read under a writer overwriting and deleting hot keys', async () => {
    onTestFailed(() => console.log(c.logTail()));
    const keys = ['k0', 'k1', 'k2', 'k3'];
    const h = new History();
    for (const k of keys) await put(c.s3[0]!, h, k);
    await heat(keys, 'gateway');
    const hitsBefore = await gatewayMetric(
      c.file.gateways[1]!,
      c.file.secret,
      'kubestorage_cache_hits_total',
      'gateway-records',
    );
    const writer = loops(h, keys.length, 12_000, async (i) => {
      const k = keys[i]!;
      if (Math.random() < 0.25) await del(c.s3[0]!, h, k);
      else await put(c.s3[0]!, h, k);
    });
    const readers = loops(h, 8, 12_000, async () => {
      await read(c.s3[1]!, h, keys[Math.floor(Math.random() * keys.length)]!);
    });
    await Promise.all([writer, readers]);
    const hitsAfter = await gatewayMetric(
      c.file.gateways[1]!,
      c.file.secret,
      'kubestorage_cache_hits_total',
      'gateway-records',
    );
    const writes = [...h.writes.values()].reduce((a, w) => a + w.length, 0);
    console.log(
      `coherence under fire: ${writes} writes, ${h.reads.length} reads, ${hitsAfter - hitsBefore} answered from gateway record copies, ${h.stale().length} stale`,
    );
    expect(h.failures).toEqual([]);
    expect(h.stale()).toEqual([]);
    expect(writes).toBeGreaterThan(10);
    // The cache was hot all along: reads kept being answered from record copies, although
    // every write drops them.
    expect(hitsAfter - hitsBefore).toBeGreaterThan(20);
  }, 120_000);

  it('4: redis kill -9 and an empty restart: no failed request, no stale read, L2 back', async () => {
    onTestFailed(() => console.log(c.logTail()));
    const redis = c.file.redis!;
    expect(redis.pid).toBeGreaterThan(0);
    const keys = ['r0', 'r1', 'r2'];
    const h = new History();
    for (const k of keys) await put(c.s3[0]!, h, k);
    await heat(keys, 'gateway', 0);
    await heat(keys, 'gateway', 1);
    const l2 = () =>
      Promise.all(
        c.file.gateways.map((g) =>
          gatewayMetric(g, c.file.secret, 'kubestorage_cache_hits_total', 'redis'),
        ),
      );
    const load = Promise.all([
      loops(h, 2, 9_000, async (i) => {
        const k = keys[i % keys.length]!;
        if (Math.random() < 0.2) await del(c.s3[i % 2]!, h, k);
        else await put(c.s3[i % 2]!, h, k);
      }),
      loops(h, 6, 9_000, async (i) => {
        await read(c.s3[i % 2]!, h, keys[Math.floor(Math.random() * keys.length)]!);
      }),
    ]);
    await sleep(2_000);
    killPid(redis.pid!);
    await sleep(2_000);
    const port = Number(new URL(redis.url).port);
    const again = await startRedisServer({ port });
    try {
      await load;
      expect(h.failures).toEqual([]);
      expect(h.stale()).toEqual([]);
      // The restarted, empty Redis fills and serves again without anyone's help: a hot
      // object read through gateway 0 (which puts its bytes into Redis) and then first
      // read through gateway 1 comes to gateway 1 from Redis.
      const before = (await l2()).reduce((a, b) => a + b, 0);
      const h3 = new History();
      await put(c.s3[0]!, h3, 'r9');
      await heat(['r9'], 'gateway', 0);
      // Both gateways learn the level from their next tables (every 200 ms).
      await sleep(1_500);
      for (let i = 0; i < 3; i++) await read(c.s3[0]!, h3, 'r9');
      await sleep(300);
      await read(c.s3[1]!, h3, 'r9');
      expect((await l2()).reduce((a, b) => a + b, 0)).toBeGreaterThan(before);
      console.log(
        `redis faults: ${h.reads.length} reads, ${[...h.writes.values()].reduce((a, w) => a + w.length, 0)} writes, 0 failed, 0 stale`,
      );
    } finally {
      // down() stops the PID in cluster.json, which is the killed one: stop this one here.
      await again.stop();
    }
  }, 120_000);

  it('5: extra replicas in the tables while hot, survive a store death, gone once cool', async () => {
    onTestFailed(() => console.log(c.logTail()));
    const h = new History();
    await put(c.s3[0]!, h, 'x/hot');
    await heat(['x/hot'], 'replicas');
    const rec = await until(
      'an extra replica listed',
      async () =>
        (await c.meta.listExtraReplicas()).find((x) => x.key === 'x/hot' && x.stores.length > 0),
      30_000,
    );
    const vol = await c.meta.getVolume(rec.volumeId);
    for (const s of rec.stores) {
      expect(vol?.replicas).not.toContain(s);
      const listed = await c.store(s).listExtra();
      expect(
        listed.needles.some(
          (n) => String(n.needleId) === rec.needleId && n.volumeId === rec.volumeId,
        ),
      ).toBe(true);
    }
    // A store holding an extra copy dies: every read still answers the right bytes.
    const victim = rec.stores[0]!;
    await c.killStore(victim);
    const h2 = new History();
    h2.begin('x/hot', 'put');
    h2.ack('x/hot', 0);
    await loops(h2, 4, 3_000, async (i) => read(c.s3[i % 2]!, h2, 'x/hot'));
    expect(h2.failures).toEqual([]);
    expect(h2.reads.every((r) => r.got === 0)).toBe(true);
    // Cool: no reads for two periods; the copies leave the tables and the stores.
    const gone = await until(
      'the extra replicas removed after cooling',
      async () => {
        const x = await c.meta.listExtraReplicas();
        const hot = await c.meta.listHotObjects();
        return !x.some((e) => e.key === 'x/hot') && !hot.some((o) => o.key === 'x/hot') && x;
      },
      4 * PERIOD_MS,
      500,
    );
    expect(gone).toBeDefined();
    // The copies themselves go a few report cycles after their entries.
    for (const s of rec.stores.filter((id) => id !== victim)) {
      await until(
        `the extra copy gone from ${s}`,
        async () =>
          !(await c.store(s).listExtra()).needles.some((n) => String(n.needleId) === rec.needleId),
        10_000,
      );
    }
  }, 120_000);
});
