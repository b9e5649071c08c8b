// The hot-object policy over a real LevelMetadata with a fake clock and no stores (the
// embedded server's case: levels only, no extra replicas).
import { afterEach, describe, expect, it } from 'vitest';
import { HotView } from '../../cache/hot-view.ts';
import { DEFAULT_CONFIG } from '../../common/config.ts';
import { createLogger } from '../../common/log.ts';
import { testObject } from '../../test/kit/records.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { LevelMetadata } from '../engine/meta-level.ts';
import { MetadataError } from '../model/api.ts';
import type { HotObjectRecord, ReadReport } from '../model/hot.ts';
import { recordStamp } from '../model/record-stamp.ts';
import { type ExtraReplicaOps, Hotness } from './hotness.ts';

const PERIOD = 60_000;
const cache = {
  ...DEFAULT_CONFIG.cache,
  periodMs: PERIOD,
  replicateThreshold: 10,
  cacheThreshold: 20,
  maxObjectBytes: 1000,
  reportMs: 100,
  leaseMs: 500,
};
/** 2 × 4 × reportMs + leaseMs */
const COOLING = 1300;
const log = createLogger('hotness-test', 'silent');

let meta: LevelMetadata;
let t: number;
let leader: boolean;
const open: LevelMetadata[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) await m.close();
});

async function setup(
  start = 100 * PERIOD,
  over: Partial<typeof cache> = {},
  extra?: ExtraReplicaOps,
  barrier?: () => Promise<void>,
): Promise<Hotness> {
  meta = await LevelMetadata.open(tempDir());
  open.push(meta);
  await meta.createBucket({ name: 'b', owner: 'alice', createdAt: 1, region: 'r' });
  t = start;
  leader = true;
  return new Hotness({
    meta,
    cache: { ...cache, ...over },
    log,
    now: () => t,
    isLeader: () => leader,
    extra,
    barrier,
  });
}

/** A one-chunk object on needle `needle` of volume 1. */
const put = (key: string, needle: string, size = 100, chunks = 1) =>
  meta.putObject(
    'b',
    testObject(key, `e-${needle}`, {
      size,
      chunks: Array.from({ length: chunks }, (_, i) => ({
        volumeId: 1,
        needleId: String(Number(needle) + i),
        cookie: 7,
        size: size / chunks,
      })),
    }),
  );

const report = (h: Hotness, counts: Record<string, number>, gateway = 'g1') =>
  h.report({ gateway, counts: Object.entries(counts).map(([k, n]) => ['b', k, n]) });

async function table(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const r of await meta.listHotObjects()) {
    out[r.key] = r.level === 'cooling' ? `cooling>${r.next ?? 'off'}` : r.level;
  }
  return out;
}

const rec = async (key: string): Promise<HotObjectRecord | undefined> =>
  (await meta.listHotObjects()).find((r) => r.key === key);

describe('Hotness: levels by reads this period', () => {
  it('puts fit objects past each threshold on the table, and no others', async () => {
    const h = await setup();
    await put('warm', '1');
    await put('cold', '2');
    await put('hot', '3');
    await put('chunked', '10', 200, 2);
    await put('large', '20', 5000);
    await report(h, { warm: 10, cold: 9, hot: 25, chunked: 50, large: 50, missing: 50 });
    await h.tick();
    expect(await table()).toEqual({ warm: 'replicas', hot: 'store' });
    const warm = await rec('warm');
    expect(warm).toMatchObject({ volumeId: 1, needleId: '1', cookie: 7, size: 100, since: t });
    expect(warm?.reads).toBe(10);
  });

  it('sums the counts of every gateway and report within the period', async () => {
    const h = await setup();
    await put('a', '1');
    await report(h, { a: 4 }, 'g1');
    await report(h, { a: 3 }, 'g2');
    await h.tick();
    expect(await table()).toEqual({});
    await report(h, { a: 3 }, 'g1');
    await h.tick();
    expect(await table()).toEqual({ a: 'replicas' });
    expect(h.status().top).toEqual([{ bucket: 'b', key: 'a', reads: 10 }]);
    expect(h.stats.reports).toBe(3);
  });

  it('promotes to gateway after another cacheThreshold reads at store level', async () => {
    const h = await setup();
    await put('a', '1');
    await report(h, { a: 12 });
    await h.tick();
    expect(await table()).toEqual({ a: 'replicas' });
    await report(h, { a: 10 }); // 22: store, counted from here
    await h.tick();
    expect(await table()).toEqual({ a: 'store' });
    expect((await rec('a'))?.reads).toBe(22);
    await report(h, { a: 19 }); // 19 since: not yet
    await h.tick();
    expect(await table()).toEqual({ a: 'store' });
    await report(h, { a: 1 });
    await h.tick();
    expect(await table()).toEqual({ a: 'gateway' });
    expect(h.stats.promotions).toBe(1);
  });

  it('answers reports with the committed table and the timings', async () => {
    const h = await setup();
    await put('a', '1');
    await report(h, { a: 30 });
    await h.tick();
    const snap = await report(h, {});
    expect(snap.objects.map((r) => [r.key, r.level])).toEqual([['a', 'store']]);
    expect(snap).toMatchObject({ extra: [], periodMs: PERIOD, leaseMs: 500 });
    const bad = [
      { gateway: '', counts: [] },
      { gateway: 'g', counts: [['b', 'k', 1.5]] },
      { gateway: 'g', counts: 'x' },
      { gateway: 'g', counts: [], stats: { hits: 'many' } },
      { gateway: 'g', counts: [], renew: [['b', 'k']] },
    ];
    for (const r of bad) {
      const e = await h.report(r as unknown as ReadReport).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(MetadataError);
      expect((e as MetadataError).code).toBe('PreconditionFailed');
    }
  });
});

describe('Hotness: lease renewals', () => {
  it('confirms exactly the copies that are still the current record', async () => {
    const h = await setup();
    await put('a', '1');
    await put('c', '3');
    const a = (await meta.getObject('b', 'a'))!;
    const c = (await meta.getObject('b', 'c'))!;
    await put('c', '4'); // overwritten since the gateway's copy was read
    const snap = await h.report({
      gateway: 'g1',
      counts: [],
      renew: [
        ['b', 'a', recordStamp(a)],
        ['b', 'c', recordStamp(c)],
        ['b', 'gone', recordStamp(a)],
      ],
    });
    expect(snap.renewed).toEqual([true, false, false]);
    await meta.deleteObject('b', 'a');
    const after = await h.report({
      gateway: 'g1',
      counts: [],
      renew: [['b', 'a', recordStamp(a)]],
    });
    expect(after.renewed).toEqual([false]);
    expect((await report(h, {})).renewed).toBeUndefined();
  });

  it('stamps a record the same whatever the order of its fields, and differently per version', () => {
    const r = testObject('k', 'e1', { size: 3 });
    const shuffled = Object.fromEntries(Object.entries(r).reverse()) as typeof r;
    expect(recordStamp(shuffled)).toBe(recordStamp(r));
    expect(recordStamp({ ...r, lastModified: r.lastModified + 1 })).not.toBe(recordStamp(r));
    expect(recordStamp({ ...r, userMeta: { a: 'b' } })).not.toBe(recordStamp(r));
  });
});

describe("Hotness: a period's end", () => {
  it('steps each object down by the reads of the period that ended', async () => {
    const h = await setup();
    for (const [i, k] of [
      'g-warm',
      'g-cold',
      'g-stays',
      's-warm',
      's-cold',
      'r-cold',
      'r-stays',
    ].entries()) {
      await put(k, String(i + 1));
    }
    // Everything to its level within period 100.
    await report(h, { 'g-warm': 20, 'g-cold': 20, 'g-stays': 20, 's-warm': 20, 's-cold': 20 });
    await report(h, { 'r-cold': 10, 'r-stays': 10 });
    await h.tick();
    await report(h, { 'g-warm': 20, 'g-cold': 20, 'g-stays': 20 });
    await h.tick();
    expect(await table()).toMatchObject({ 'g-warm': 'gateway', 's-warm': 'store' });
    // Period 101: these are the reads that decide at its end.
    t = 101 * PERIOD;
    await report(h, { 'g-warm': 15, 'g-cold': 3, 'g-stays': 20, 's-warm': 12, 's-cold': 9 });
    await report(h, { 'r-stays': 10 });
    await h.tick(); // period 100 ended: everything had its reads there
    expect(Object.keys(await table())).toHaveLength(7);
    t = 102 * PERIOD + 5;
    await h.tick();
    expect(await table()).toEqual({
      'g-warm': 'cooling>replicas',
      'g-cold': 'cooling>off',
      'g-stays': 'gateway',
      's-warm': 'replicas',
      'r-stays': 'replicas',
    });
    expect(h.stats.demotions).toBe(5);
    // Cooling lasts 2 × 4 × reportMs + leaseMs from when it began.
    t += COOLING - 1;
    await h.tick();
    expect((await table())['g-warm']).toBe('cooling>replicas');
    t += 1;
    await h.tick();
    const after = await table();
    expect(after['g-warm']).toBe('replicas');
    expect(after['g-cold']).toBeUndefined();
  });

  it('keeps a store-level object that stays hot, and promotes it by this period alone', async () => {
    const h = await setup();
    await put('a', '1');
    await report(h, { a: 30 });
    await h.tick();
    t = 101 * PERIOD;
    await report(h, { a: 19 });
    await h.tick();
    expect(await table()).toEqual({ a: 'store' });
    await report(h, { a: 1 }); // 20 this period, all since it (already) was at store level
    await h.tick();
    expect(await table()).toEqual({ a: 'gateway' });
  });

  it('demotes nothing at the end of a period it counted only part of', async () => {
    const h = await setup(100 * PERIOD + 30_000);
    await put('a', '1');
    await put('b', '2');
    await meta.putHotObject({
      bucket: 'b',
      key: 'b',
      volumeId: 1,
      needleId: '2',
      cookie: 7,
      size: 100,
      level: 'gateway',
      since: 1,
      reads: 0,
    });
    await report(h, { a: 10 });
    await h.tick();
    t = 101 * PERIOD; // period 100 ended, seen from its middle: b had reads we never saw
    await h.tick();
    expect(await table()).toEqual({ a: 'replicas', b: 'gateway' });
    t = 102 * PERIOD; // period 101 was seen whole, without reads
    await h.tick();
    expect(await table()).toEqual({ b: 'cooling>off' });
  });

  it('counts from nothing on a new leadership, and not at all while not leading', async () => {
    const h = await setup();
    await put('a', '1');
    await report(h, { a: 9 });
    leader = false;
    await report(h, { a: 100 });
    await h.tick();
    expect(await table()).toEqual({});
    expect(h.status().top).toEqual([]);
    leader = true;
    await report(h, { a: 9 });
    await h.tick();
    expect(await table()).toEqual({}); // 9, not 18 or 118
    await report(h, { a: 1 });
    await h.tick();
    expect(await table()).toEqual({ a: 'replicas' });
  });

  it('does nothing with caching off', async () => {
    const h = await setup(100 * PERIOD, { enabled: false });
    await put('a', '1');
    await report(h, { a: 1000 });
    await h.tick();
    expect(await table()).toEqual({});
    expect(h.stats.reports).toBe(0);
  });
});

describe('Hotness: writes to hot objects', () => {
  it('re-points an overwritten object at its new needle, keeping its level', async () => {
    const h = await setup();
    await put('a', '1');
    await report(h, { a: 25 });
    await h.tick();
    await put('a', '50', 300);
    // The gateway that wrote it says so with its next report.
    await h.report({ gateway: 'g1', counts: [], written: [['b', 'a']] });
    await h.tick();
    expect(await rec('a')).toMatchObject({ level: 'store', needleId: '50', size: 300 });
  });

  it('catches a write no gateway reported on its next full pass', async () => {
    const h = await setup();
    await put('a', '1');
    await report(h, { a: 25 });
    await h.tick();
    await put('a', '50', 300);
    for (let i = 0; i < 25 && (await rec('a'))?.needleId !== '50'; i++) await h.tick();
    expect(await rec('a')).toMatchObject({ level: 'store', needleId: '50', size: 300 });
  });

  it('takes an object off the table when deleted or no longer fit, through cooling from gateway', async () => {
    const h = await setup();
    await put('gw', '1');
    await put('st', '2');
    await put('rp', '3');
    await report(h, { gw: 20, st: 20, rp: 10 });
    await h.tick();
    await report(h, { gw: 20 });
    await h.tick();
    expect(await table()).toEqual({ gw: 'gateway', st: 'store', rp: 'replicas' });
    await meta.deleteObject('b', 'gw');
    await put('st', '60', 200, 2); // now two chunks
    await put('rp', '70', 5000); // now too large
    await h.report({
      gateway: 'g1',
      counts: [],
      written: [
        ['b', 'gw'],
        ['b', 'st'],
        ['b', 'rp'],
      ],
    });
    await h.tick();
    expect(await table()).toEqual({ gw: 'cooling>off' });
    t += COOLING;
    await h.tick();
    expect(await table()).toEqual({});
  });

  it('brings a cooling object back at the level its reads earn, once cooled', async () => {
    const h = await setup();
    await put('a', '1');
    await report(h, { a: 20 });
    await h.tick();
    await report(h, { a: 20 });
    await h.tick();
    expect(await table()).toEqual({ a: 'gateway' });
    t = 101 * PERIOD;
    await h.tick(); // 40 reads in period 100: stays
    t = 102 * PERIOD;
    await h.tick(); // period 101 without reads: cooling, then off
    expect(await table()).toEqual({ a: 'cooling>off' });
    await report(h, { a: 25 });
    await h.tick();
    expect(await table()).toEqual({ a: 'cooling>store' });
    t += COOLING;
    await h.tick();
    expect(await rec('a')).toMatchObject({ level: 'store', reads: 25 });
  });
});

describe('Hotness: extra replicas (stores faked in memory)', () => {
  /** Stores s1…s5: s1, s2 hold volume 1; copies live in `held`. */
  async function withStores(up = { alive: true }, barrier?: () => Promise<void>) {
    const held = new Map<string, Set<string>>();
    const nodes: Array<[string, string, number]> = [
      ['s1', 'z1', 0],
      ['s2', 'z2', 0],
      ['s3', 'z1', 0],
      ['s4', 'z3', 100],
      ['s5', 'z3', 50],
    ];
    const url = (id: string) => `http://${id}.test`;
    const idOf = (u: string) => new URL(u).hostname.split('.')[0]!;
    const h = await setup(
      100 * PERIOD,
      { maxExtraReplicas: 2 },
      {
        alive: () => up.alive,
        used: (id) => nodes.find((n) => n[0] === id)?.[2] ?? 0,
        read: async (u) => {
          if (!['s1', 's2'].includes(idOf(u))) throw new Error('not a holder');
          return Buffer.from('bytes');
        },
        write: async (u, ref) => {
          held.get(idOf(u))!.add(`${ref.volumeId}/${ref.needleId}`);
        },
        remove: async (u, ref) => {
          held.get(idOf(u))!.delete(`${ref.volumeId}/${ref.needleId}`);
        },
        list: async (u) =>
          [...held.get(idOf(u))!].map((k) => {
            const [v, n] = k.split('/');
            return { volumeId: Number(v), needleId: n!, cookie: 7 };
          }),
      },
      barrier,
    );
    for (const [id, zone] of nodes) {
      held.set(id, new Set());
      await meta.registerNode({
        id,
        url: url(id),
        zone,
        capacity: 1000,
        state: 'online',
        registeredAt: 1,
        stateSince: 1,
      });
    }
    await meta.createVolume({
      id: 1,
      replicas: ['s1', 's2'],
      replicaCount: 2,
      state: 'writable',
      createdAt: 1,
      version: 1,
    });
    const copies = (k: string) => [...held].filter(([, s]) => s.has(k)).map(([id]) => id);
    return { h, held, copies };
  }

  it('copies to distinct zones first, least used next, lists them, and removes them when cold', async () => {
    const { h, copies } = await withStores();
    await put('a', '1');
    await report(h, { a: 10 });
    await h.tick();
    await h.idle();
    const [x] = await meta.listExtraReplicas();
    // Zones z1, z2 hold the volume: s5 (z3, less used than s4) first, then the least used.
    expect(x).toMatchObject({ volumeId: 1, needleId: '1', bucket: 'b', key: 'a' });
    expect([...x!.stores].sort()).toEqual(['s3', 's5']);
    expect(copies('1/1').sort()).toEqual(['s3', 's5']);
    expect(h.stats.extraAdded).toBe(2);

    // Period 100 ended with 10 reads; period 101 with none: off the table, entry gone at
    // once, the copies once gateways' tables have moved on (4 × reportMs).
    t = 101 * PERIOD;
    await h.tick();
    t = 102 * PERIOD;
    await h.tick();
    expect(await meta.listHotObjects()).toEqual([]);
    expect(await meta.listExtraReplicas()).toEqual([]);
    expect(copies('1/1').sort()).toEqual(['s3', 's5']);
    t += 400;
    await h.tick();
    expect(copies('1/1')).toEqual([]);
    expect(h.stats.extraRemoved).toBe(2);
  });

  it('makes no new copies for an object at gateway level, and keeps copying the others', async () => {
    const up = { alive: false };
    const { h, copies } = await withStores(up);
    await put('a', '1');
    await report(h, { a: 20 });
    await h.tick(); // store level; no copy: no source store is alive yet
    await h.idle();
    expect(await table()).toEqual({ a: 'store' });
    await report(h, { a: 20 });
    up.alive = true;
    await put('b', '2');
    await report(h, { b: 10 });
    await h.tick();
    await h.idle();
    expect(await table()).toEqual({ a: 'gateway', b: 'replicas' });
    expect(copies('1/1')).toEqual([]);
    expect(copies('1/2')).toHaveLength(2);
    expect((await meta.listExtraReplicas()).map((x) => x.key)).toEqual(['b']);
  });

  it('a gateway kept up by delta answers holds the same table as a full answer', async () => {
    // Leader mode (a barrier): answers from memory, deltas against the version held.
    const { h } = await withStores(undefined, async () => {});
    const deltas = { n: 0 };
    const view = new HotView({
      source: {
        reportReads: async (r) => {
          const snap = await h.report(r);
          if (snap.delta) deltas.n++;
          return snap;
        },
      },
      gateway: 'g1',
      reportMs: 100,
      leaseMs: 500,
      now: () => t,
    });
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    for (const [i, k] of keys.entries()) await put(k, String(100 + 10 * i));
    let seed = 7;
    const rng = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const sorted = <T>(xs: T[]) => xs.map((x) => JSON.stringify(x)).sort();
    for (let step = 0; step < 60; step++) {
      const k = keys[rng(keys.length)]!;
      const what = rng(10);
      if (what < 6) await report(h, { [k]: 1 + rng(25) }, 'g2');
      else if (what === 6) await put(k, String(1000 + step * 10));
      else if (what === 7) await meta.deleteObject('b', k);
      else if (what === 8) t += PERIOD / 3;
      else t += COOLING;
      await h.tick();
      await h.idle();
      await h.tick();
      const snap = await h.report({ gateway: 'probe', counts: [] });
      await view.refresh();
      const got = view.table();
      expect(sorted(got.objects)).toEqual(sorted(snap.objects));
      expect(sorted(got.extra)).toEqual(sorted(snap.extra));
      for (const o of snap.objects) {
        expect(view.byNeedleId(o.volumeId, o.needleId)).toEqual(o);
      }
    }
    expect(deltas.n).toBeGreaterThan(20); // the others: unchanged
    expect(view.table().objects.length).toBeGreaterThan(0);
  });

  it('drops stores that are no longer online, and sweeps copies no entry lists', async () => {
    const { h, held, copies } = await withStores();
    await put('a', '1');
    held.get('s4')!.add('1/99'); // left behind by an earlier leader
    await report(h, { a: 10 });
    await h.tick(); // first sweep: 1/99 suspected
    await h.idle();
    await meta.setNodeState('s5', 'offline', t);
    t += 1;
    await h.tick();
    await h.idle();
    // s5 dropped; s4 (z3 now free, the only candidate left) takes its place.
    const [x] = await meta.listExtraReplicas();
    expect(x?.stores).not.toContain('s5');
    expect(x?.stores).toContain('s3');
    expect(copies('1/99')).toEqual(['s4']); // not yet: seen once
    t += 30 * 400; // the next sweep
    await h.tick();
    expect(copies('1/99')).toEqual([]);
    expect(copies('1/1')).toContain('s4');
  });
});
