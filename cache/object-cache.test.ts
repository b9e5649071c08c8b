// The record level of a gateway: lease expiry, writes that wait, and reads that raced a
// write through this gateway — with a hand-driven clock and sleep.
import { describe, expect, it } from 'vitest';
import type { MetadataStore, ObjectRecord } from '../directory/model/api.ts';
import type { HotObjectRecord } from '../directory/model/hot.ts';
import { recordStamp } from '../directory/model/record-stamp.ts';
import { HotView } from './hot-view.ts';
import { ObjectCache, withObjectCache } from './object-cache.ts';

const record = (key: string, etag: string): ObjectRecord =>
  ({
    key,
    size: 1,
    etag,
    lastModified: 1,
    userMeta: {},
    chunks: [],
    owner: 'o',
  }) as unknown as ObjectRecord;

async function setup(level: HotObjectRecord['level'] = 'gateway', exclusive = false) {
  let t = 10_000;
  const slept: number[] = [];
  const hot: HotObjectRecord = {
    bucket: 'b',
    key: 'k',
    volumeId: 1,
    needleId: '5',
    cookie: 1,
    size: 1,
    level,
    since: 0,
    reads: 0,
  };
  let current: ObjectRecord | null = record('k', 'v1');
  // Answers renewals as a directory does: by the record current when the report arrives.
  const view = new HotView({
    source: {
      reportReads: async (r) => ({
        objects: [hot],
        extra: [],
        periodMs: 1,
        leaseMs: 1_000,
        ...(r.renew
          ? { renewed: r.renew.map((w) => current != null && recordStamp(current) === w[2]) }
          : {}),
      }),
    },
    gateway: 'g',
    reportMs: 1_000,
    leaseMs: 1_000,
    exclusive,
    now: () => t,
  });
  for (let i = 0; i < 5; i++) {
    await view.refresh();
    t += 1_000;
  }
  const cache = new ObjectCache({
    view,
    maxBytes: 1 << 20,
    now: () => t,
    sleep: async (ms) => {
      slept.push(ms);
    },
  });
  let loads = 0;
  let gate: Promise<void> | undefined;
  const inner = {
    async getObject() {
      loads++;
      const seen = current;
      await gate;
      return seen;
    },
    async putObject(_b: string, rec: ObjectRecord) {
      const prev = current;
      current = rec;
      return prev;
    },
    async deleteObject() {
      const prev = current;
      current = null;
      return prev;
    },
  } as unknown as MetadataStore;
  const meta = withObjectCache(inner, cache);
  return {
    meta,
    cache,
    slept,
    advance: (ms: number) => {
      t += ms;
    },
    loads: () => loads,
    now: () => t,
    view,
    /** A write through another gateway: this one's copy is not dropped. */
    elsewhere: (rec: ObjectRecord | null) => {
      current = rec;
    },
    hold: () => {
      let open!: () => void;
      gate = new Promise((r) => {
        open = r;
      });
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

describe('ObjectCache', () => {
  it('answers a hot object from its copy until the lease runs out', async () => {
    const s = await setup();
    expect((await s.meta.getObject('b', 'k'))?.etag).toBe('v1');
    expect((await s.meta.getObject('b', 'k'))?.etag).toBe('v1');
    expect(s.loads()).toBe(1);
    s.advance(999);
    await s.meta.getObject('b', 'k');
    expect(s.loads()).toBe(1);
    s.advance(1);
    await s.meta.getObject('b', 'k');
    expect(s.loads()).toBe(2);
  });

  it('a write drops the copy and waits out the other gateways’ leases before it returns', async () => {
    const s = await setup();
    await s.meta.getObject('b', 'k');
    await s.meta.putObject('b', record('k', 'v2'));
    expect(s.slept).toEqual([1_025]);
    expect((await s.meta.getObject('b', 'k'))?.etag).toBe('v2');
    await s.meta.deleteObject('b', 'k');
    expect(await s.meta.getObject('b', 'k')).toBeNull();
    expect(s.slept).toHaveLength(2);
  });

  it('objects below gateway level are never answered from a copy and writes do not wait', async () => {
    const s = await setup('store');
    await s.meta.getObject('b', 'k');
    await s.meta.getObject('b', 'k');
    expect(s.loads()).toBe(2);
    await s.meta.putObject('b', record('k', 'v2'));
    expect(s.slept).toEqual([]);
  });

  it('a read that a write overlapped does not leave its old answer behind', async () => {
    const s = await setup();
    const open = s.hold();
    const read = s.meta.getObject('b', 'k'); // reads v1, held
    await s.meta.putObject('b', record('k', 'v2'));
    open();
    expect((await read)?.etag).toBe('v1'); // it started before the write: fine to be old
    expect((await s.meta.getObject('b', 'k'))?.etag).toBe('v2');
  });

  it('a report renews the leases of copies still current, and only those', async () => {
    const s = await setup();
    await s.meta.getObject('b', 'k'); // lease until +1000
    s.advance(600);
    await s.meta.getObject('b', 'k'); // used: a renewal candidate
    await s.view.refresh(); // sent at +600, confirmed: lease until +1600
    s.advance(900);
    expect((await s.meta.getObject('b', 'k'))?.etag).toBe('v1');
    expect(s.loads()).toBe(1);
    expect(s.cache.stats.renewed).toBe(1);
    // Written elsewhere: the next renewal is refused, the copy runs out with its lease.
    s.elsewhere(record('k', 'v2'));
    await s.view.refresh();
    s.advance(100); // +1600
    expect((await s.meta.getObject('b', 'k'))?.etag).toBe('v2');
    expect(s.loads()).toBe(2);
  });

  it('a copy not used lately is not renewed, and one replaced meanwhile keeps its own lease', async () => {
    const s = await setup();
    await s.meta.getObject('b', 'k');
    s.advance(2_001);
    await s.view.refresh(); // idle past the renewal window: not asked for
    expect(s.cache.stats.renewed).toBe(0);
    expect(s.cache.collect(s.now())).toBeUndefined();
    // A renewal whose copy was dropped by a local write in the meantime changes nothing.
    await s.meta.getObject('b', 'k');
    const batch = s.cache.collect(s.now())!;
    expect(batch.renew).toHaveLength(1);
    await s.meta.putObject('b', record('k', 'v3'));
    s.cache.renewed(batch, [true], 1e12);
    expect(s.cache.stats.renewed).toBe(0);
  });

  it('the only gateway keeps its copy until its own write drops it: no lease, no renewal', async () => {
    const s = await setup('gateway', true);
    await s.meta.getObject('b', 'k');
    s.advance(60_000);
    expect((await s.meta.getObject('b', 'k'))?.etag).toBe('v1');
    expect(s.loads()).toBe(1);
    expect(s.cache.collect(s.now())).toBeUndefined();
    await s.meta.putObject('b', record('k', 'v2'));
    expect(s.slept).toEqual([]);
    expect((await s.meta.getObject('b', 'k'))?.etag).toBe('v2');
    expect(s.loads()).toBe(2);
  });
});
