// The lease rules of cache/README.md as HotView applies them, on a hand-driven clock.
import { describe, expect, it } from 'vitest';
import type { HotObjectRecord, HotSnapshot, ReadReport } from '../directory/model/hot.ts';
import { HotView } from './hot-view.ts';

const rec = (key: string, level: HotObjectRecord['level']): HotObjectRecord => ({
  bucket: 'b',
  key,
  volumeId: 1,
  needleId: String(key.length + 10),
  cookie: 7,
  size: 4,
  level,
  since: 0,
  reads: 0,
});

function setup(exclusive = false) {
  let t = 1_000;
  const reports: ReadReport[] = [];
  let table: HotSnapshot = { objects: [], extra: [], periodMs: 60_000, leaseMs: 1_000 };
  let fail = false;
  const view = new HotView({
    source: {
      async reportReads(r) {
        reports.push(r);
        if (fail) throw new Error('directory down');
        return table;
      },
    },
    gateway: 'g1',
    reportMs: 500,
    leaseMs: 1_000,
    exclusive,
    now: () => t,
  });
  return {
    view,
    reports,
    set: (objects: HotObjectRecord[]) => {
      table = { ...table, objects };
    },
    fail: (f: boolean) => {
      fail = f;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe('HotView', () => {
  it('caches an object only once every other gateway has had time to learn it is hot', async () => {
    const s = setup();
    s.set([rec('hot', 'gateway')]);
    await s.view.refresh();
    expect(s.view.mayCache('b', 'hot')).toBe(false);
    expect(s.view.mustWait('b', 'hot')).toBe(true);
    // Tables keep coming; after staleMs (4 reports) since the first one, it may cache.
    for (let i = 0; i < 4; i++) {
      s.advance(500);
      await s.view.refresh();
    }
    expect(s.view.mayCache('b', 'hot')).toBe(true);
    expect(s.view.mayCache('b', 'cold')).toBe(false);
    expect(s.view.mustWait('b', 'cold')).toBe(false);
  });

  it('cooling: no more caching, writers still wait; a stale table makes every write wait', async () => {
    const s = setup();
    s.set([rec('k', 'cooling'), rec('s', 'store')]);
    await s.view.refresh();
    expect(s.view.mayCache('b', 'k')).toBe(false);
    expect(s.view.mustWait('b', 'k')).toBe(true);
    expect(s.view.mustWait('b', 's')).toBe(false);
    s.fail(true);
    s.advance(1_999);
    await s.view.refresh().catch(() => {});
    expect(s.view.mustWait('b', 's')).toBe(false);
    s.advance(1);
    expect(s.view.fresh()).toBe(false);
    expect(s.view.mustWait('b', 'anything')).toBe(true);
  });

  it('reports the counts since the last report, and keeps them when a report fails', async () => {
    const s = setup();
    s.view.count('b', 'x');
    s.view.count('b', 'x');
    s.view.count('b', 'y\nz');
    s.fail(true);
    await expect(s.view.refresh()).rejects.toThrow(/down/);
    s.view.count('b', 'x');
    s.fail(false);
    await s.view.refresh();
    const last = s.reports.at(-1)!;
    expect(new Map(last.counts.map(([b, k, n]) => [`${b}/${k}`, n]))).toEqual(
      new Map([
        ['b/x', 3],
        ['b/y\nz', 1],
      ]),
    );
    await s.view.refresh();
    expect(s.reports.at(-1)!.counts).toEqual([]);
  });

  it('exclusive (embedded): caches at once and never waits', async () => {
    const s = setup(true);
    s.set([rec('hot', 'gateway')]);
    await s.view.refresh();
    expect(s.view.mayCache('b', 'hot')).toBe(true);
    expect(s.view.mustWait('b', 'hot')).toBe(false);
  });
});
