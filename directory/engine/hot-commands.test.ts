// The hot-object tables (model/hot.ts) through LevelMetadata: what the embedded directory
// and every Raft replica apply, and what a person walking the LevelDB sees.
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import type { ExtraReplicaRecord, HotObjectRecord } from '../model/hot.ts';
import { LevelMetadata } from './meta-level.ts';

async function withStore<T>(fn: (m: LevelMetadata, dir: string) => Promise<T>): Promise<T> {
  const dir = tempDir();
  const m = await LevelMetadata.open(dir);
  try {
    return await fn(m, dir);
  } finally {
    await m.close();
  }
}

const hot = (key: string, over: Partial<HotObjectRecord> = {}): HotObjectRecord => ({
  bucket: 'photos',
  key,
  volumeId: 3,
  needleId: '42',
  cookie: 7,
  size: 100,
  level: 'replicas',
  since: 1_000,
  reads: 600,
  ...over,
});

const xrep = (needleId: string, stores: string[], volumeId = 3): ExtraReplicaRecord => ({
  volumeId,
  needleId,
  cookie: 7,
  stores,
  bucket: 'photos',
  key: `k${needleId}`,
});

const failure = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: Error) => e.message,
  );

describe('hot-object table', () => {
  it('stores, replaces, lists in bucket/key order, and deletes records', async () => {
    await withStore(async (m) => {
      await m.putHotObject(hot('b.jpg'));
      await m.putHotObject(hot('a.jpg', { level: 'store' }));
      await m.putHotObject(hot('x', { bucket: 'art' }));
      expect((await m.listHotObjects()).map((r) => `${r.bucket}/${r.key}`)).toEqual([
        'art/x',
        'photos/a.jpg',
        'photos/b.jpg',
      ]);
      // Replaced whole.
      await m.putHotObject(hot('b.jpg', { level: 'cooling', next: 'replicas', reads: 0 }));
      const b = (await m.listHotObjects()).find((r) => r.key === 'b.jpg');
      expect(b).toEqual(hot('b.jpg', { level: 'cooling', next: 'replicas', reads: 0 }));
      await m.deleteHotObject('photos', 'a.jpg');
      await m.deleteHotObject('photos', 'never-there'); // nothing to do, no error
      expect((await m.listHotObjects()).map((r) => r.key)).toEqual(['x', 'b.jpg']);
    });
  });

  it('stores the declared fields only, and `next` for cooling records only', async () => {
    await withStore(async (m) => {
      await m.putHotObject({ ...hot('a'), next: 'store', extra: 'field' } as HotObjectRecord);
      await m.putHotObject(hot('c', { level: 'cooling' })); // no next: null
      const [a, c] = await m.listHotObjects();
      expect(a).toEqual(hot('a'));
      expect(a).not.toHaveProperty('next');
      expect(c?.next).toBeNull();
    });
  });

  it('refuses malformed records, changing nothing', async () => {
    await withStore(async (m) => {
      const bad: Array<[string, Partial<HotObjectRecord>]> = [
        ['level', { level: 'hot' as never }],
        ['needleId', { needleId: '12a' }],
        ['needleId', { needleId: '18446744073709551616' }], // 2^64
        ['volumeId', { volumeId: 0 }],
        ['cookie', { cookie: -1 }],
        ['size', { size: 1.5 }],
        ['bucket', { bucket: '' }],
        ['key', { key: '' }],
        ['next', { level: 'cooling', next: 'gateway' as never }],
      ];
      for (const [field, over] of bad) {
        expect(await failure(m.putHotObject(hot('k', over))), field).toMatch(field);
      }
      expect(await failure(m.putHotObject(hot('k', { bucket: 'a\x00b' })))).not.toBe('ok');
      expect(await failure(m.deleteHotObject('', 'k'))).toMatch('bucket');
      expect(await m.listHotObjects()).toEqual([]);
    });
  });
});

describe('extra-replica table', () => {
  it('sets, replaces, lists by volume then numeric needle id, and deletes on empty stores', async () => {
    await withStore(async (m) => {
      await m.setExtraReplicas(xrep('10', ['s1']));
      await m.setExtraReplicas(xrep('9', ['s2', 's3']));
      await m.setExtraReplicas(xrep('5', ['s1'], 12));
      expect((await m.listExtraReplicas()).map((r) => `${r.volumeId}/${r.needleId}`)).toEqual([
        '3/9', // 9 before 10: ids are padded, so key order is numeric order
        '3/10',
        '12/5',
      ]);
      await m.setExtraReplicas(xrep('10', ['s1', 's4']));
      expect((await m.listExtraReplicas()).find((r) => r.needleId === '10')?.stores).toEqual([
        's1',
        's4',
      ]);
      await m.setExtraReplicas(xrep('9', []));
      await m.setExtraReplicas(xrep('77', [])); // deleting what is not there
      expect((await m.listExtraReplicas()).map((r) => r.needleId)).toEqual(['10', '5']);
    });
  });

  it('refuses malformed entries', async () => {
    await withStore(async (m) => {
      expect(await failure(m.setExtraReplicas(xrep('1', ['s1', 's1'])))).toMatch('distinct');
      expect(await failure(m.setExtraReplicas(xrep('1', ['bad id'])))).toMatch('store id');
      expect(await failure(m.setExtraReplicas(xrep('x', ['s1'])))).toMatch('needleId');
      expect(
        await failure(m.setExtraReplicas({ ...xrep('1', ['s1']), stores: 's1' as never })),
      ).toMatch('stores');
      expect(await m.listExtraReplicas()).toEqual([]);
    });
  });
});

describe('in the database', () => {
  it('lives under hot/ and xrep/ keys a person can read', async () => {
    const dir = tempDir();
    const m = await LevelMetadata.open(dir);
    await m.putHotObject(hot('cat.jpg'));
    await m.setExtraReplicas(xrep('42', ['s2']));
    await m.close();
    const db = new ClassicLevel<string, string>(dir, { valueEncoding: 'utf8' });
    try {
      const rows = await db.iterator({ gte: 'hot/', lt: 'xrep0' }).all();
      expect(rows.map(([k]) => k)).toEqual([
        'hot/photos\x00cat.jpg',
        'xrep/0000000003/00000000000000000042',
      ]);
      expect(JSON.parse(rows[1]![1])).toEqual(xrep('42', ['s2']));
    } finally {
      await db.close();
    }
  });
});
