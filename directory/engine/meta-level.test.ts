import { ClassicLevel } from 'classic-level';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { testObject, testPart, testUpload } from '../../test/kit/records.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { MetadataError } from '../model/api.ts';
import * as K from './keys.ts';
import { LevelMetadata } from './meta-level.ts';

// ---- helpers ----

function cmpBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const obj = testObject;
const part = testPart;
const upload = (bucket: string, key: string, uploadId: string) => testUpload(bucket, key, uploadId);

async function withStore<T>(
  fn: (m: LevelMetadata, dir: string) => Promise<T>,
  dir = tempDir(),
): Promise<T> {
  const m = await LevelMetadata.open(dir);
  try {
    return await fn(m, dir);
  } finally {
    await m.close();
  }
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MetadataError) return e.code;
    return `Error: ${(e as Error).message}`;
  }
  return 'ok';
}

async function bucket(m: LevelMetadata, name: string, owner = 'alice'): Promise<void> {
  await m.createBucket({ name, owner, createdAt: 1, region: 'us-east-1' });
}

// ---- keys ----

const charArb = fc.constantFrom(
  'a',
  'b',
  'z',
  '/',
  '%',
  '+',
  ' ',
  '~',
  '\x00',
  '\x01',
  '\x7f',
  'é',
  'ß',
  '😀',
  '\u{10FFFF}',
  '\uFFFF',
  '\uE000',
  '中',
);
const strArb = (min: number, max: number) =>
  fc.array(charArb, { minLength: min, maxLength: max }).map((a) => a.join(''));

describe('keys', () => {
  it('escaped components keep byte order and never prefix each other', () => {
    fc.assert(
      fc.property(strArb(0, 6), strArb(0, 6), strArb(0, 3), strArb(0, 3), (a, b, x, y) => {
        const ea = K.esc(K.bytes(a)) + K.TERM + K.bytes(x);
        const eb = K.esc(K.bytes(b)) + K.TERM + K.bytes(y);
        const want = cmpBytes(a, b) || cmpBytes(x, y);
        expect(Math.sign(ea < eb ? -1 : ea > eb ? 1 : 0)).toBe(Math.sign(want));
        if (a !== b) expect(eb.startsWith(K.esc(K.bytes(a)) + K.TERM)).toBe(false);
        expect(K.text(K.unesc(K.esc(K.bytes(a))))).toBe(a);
      }),
    );
  });

  it('successor is above every extension and at most the next sibling', () => {
    fc.assert(
      fc.property(strArb(1, 5), strArb(0, 4), (p, tail) => {
        const s = K.successor(K.bytes(p));
        expect(K.bytes(p + tail) < s).toBe(true);
        expect(K.bytes(p) < s).toBe(true);
      }),
    );
    expect(K.successor('a\xff\xff')).toBe('b');
    expect(() => K.successor('\xff')).toThrow();
  });

  it('rejects lone surrogates, empty keys and NUL in bucket names', () => {
    expect(() => K.objectKey('b', 'x\ud800')).toThrow();
    expect(() => K.objectKey('b', '')).toThrow();
    expect(() => K.bucketKey('a\x00b')).toThrow();
  });
});

// ---- buckets, objects ----

describe('LevelMetadata buckets and objects', () => {
  it('enforces bucket rules', async () => {
    await withStore(async (m) => {
      await bucket(m, 'photos');
      expect(await code(bucket(m, 'photos'))).toBe('BucketAlreadyOwnedByYou');
      expect(await code(bucket(m, 'photos', 'bob'))).toBe('BucketAlreadyExists');
      await bucket(m, 'a.b-c', 'bob');
      await bucket(m, 'a', 'bob');
      expect((await m.listBuckets()).map((b) => b.name)).toEqual(['a', 'a.b-c', 'photos']);
      expect((await m.listBuckets('bob')).map((b) => b.name)).toEqual(['a', 'a.b-c']);
      expect((await m.getBucket('photos'))?.owner).toBe('alice');
      expect(await m.getBucket('nope')).toBeNull();

      expect(await code(m.deleteBucket('nope'))).toBe('NoSuchBucket');
      expect(await code(m.putObject('nope', obj('k')))).toBe('NoSuchBucket');
      expect(await code(m.deleteObject('nope', 'k'))).toBe('NoSuchBucket');
      expect(await code(m.listObjects('nope', { maxKeys: 10 }))).toBe('NoSuchBucket');
      expect(await code(m.createUpload(upload('nope', 'k', 'u1')))).toBe('NoSuchBucket');

      // An object in bucket "a" must not make "a.b-c" look non-empty, nor the reverse.
      await m.putObject('a.b-c', obj('x'));
      await m.deleteBucket('a');
      expect(await code(m.deleteBucket('a.b-c'))).toBe('BucketNotEmpty');
      await m.deleteObject('a.b-c', 'x');
      await m.createUpload(upload('a.b-c', 'y', 'u1'));
      expect(await code(m.deleteBucket('a.b-c'))).toBe('BucketNotEmpty');
      await m.abortUpload('a.b-c', 'y', 'u1');
      await m.deleteBucket('a.b-c');
      expect(await m.getBucket('a.b-c')).toBeNull();
      expect((await m.listBuckets()).map((b) => b.name)).toEqual(['photos']);
      // Recreating a deleted bucket works and it is empty.
      await bucket(m, 'a.b-c');
      expect((await m.listObjects('a.b-c', { maxKeys: 10 })).objects).toEqual([]);
    });
  });

  it('puts, replaces, conditions and deletes objects', async () => {
    await withStore(async (m) => {
      await bucket(m, 'b');
      const r1 = obj('dir/ü 1+%.txt', 'e1', {
        contentType: 'text/plain',
        userMeta: { a: '1' },
        checksums: { crc32: 'AAAA' },
        partSizes: [1],
      });
      expect(await m.putObject('b', r1)).toBeNull();
      expect(await m.getObject('b', r1.key)).toEqual(r1);
      expect(await m.getObject('b', 'other')).toBeNull();
      expect(await code(m.putObject('b', obj(r1.key, 'e2'), { ifNoneMatch: true }))).toBe(
        'PreconditionFailed',
      );
      expect(await code(m.putObject('b', obj(r1.key, 'e2'), { ifMatch: 'zz' }))).toBe(
        'PreconditionFailed',
      );
      expect(await code(m.putObject('b', obj('absent'), { ifMatch: '*' }))).toBe(
        'PreconditionFailed',
      );
      expect(await m.putObject('b', obj(r1.key, 'e2'), { ifMatch: '"e1"' })).toEqual(r1);
      expect(await m.putObject('b', obj(r1.key, 'e3'), { ifMatch: '*' })).toEqual(
        obj(r1.key, 'e2'),
      );
      expect(await m.putObject('b', obj('new'), { ifNoneMatch: true })).toBeNull();
      expect(await m.deleteObject('b', r1.key)).toEqual(obj(r1.key, 'e3'));
      expect(await m.deleteObject('b', r1.key)).toBeNull();
      expect(await m.getObject('b', r1.key)).toBeNull();
      // NUL inside an object key is fine (it is the last key component).
      await m.putObject('b', obj('a\x00b'));
      expect((await m.getObject('b', 'a\x00b'))?.key).toBe('a\x00b');
    });
  });

  it('serializes concurrent puts of one key: every record is replaced exactly once', async () => {
    await withStore(async (m) => {
      await bucket(m, 'b');
      const n = 300;
      const etags = Array.from({ length: n }, (_, i) => `v${i}`);
      const prevs = await Promise.all(etags.map((e) => m.putObject('b', obj('same', e))));
      const replaced = prevs.map((p) => p?.etag ?? null);
      expect(replaced.filter((p) => p === null)).toHaveLength(1);
      const nonNull = replaced.filter((p): p is string => p !== null);
      expect(new Set(nonNull).size).toBe(n - 1);
      const final = (await m.getObject('b', 'same'))!.etag;
      expect(nonNull).not.toContain(final);
      expect(new Set([...nonNull, final])).toEqual(new Set(etags));
      // Following the chain from the first put reaches every put, ending at the final one.
      const next = new Map<string | null, string>();
      for (let i = 0; i < n; i++) next.set(replaced[i]!, etags[i]!);
      let cur: string | null = null;
      const seen: string[] = [];
      while (next.has(cur)) seen.push((cur = next.get(cur)!));
      expect(seen).toHaveLength(n);
      expect(seen.at(-1)).toBe(final);
      // Concurrent puts were group-committed.
      expect(m.writeStats.largestBatch).toBeGreaterThan(1);

      // Concurrent create-only puts: exactly one wins, the others fail alone.
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          code(m.putObject('b', obj('once', `o${i}`), { ifNoneMatch: true })),
        ),
      );
      expect(results.filter((r) => r === 'ok')).toHaveLength(1);
      expect(results.filter((r) => r === 'PreconditionFailed')).toHaveLength(49);
    });
  });

  it('keeps everything across close and reopen', async () => {
    const dir = tempDir();
    const blocks: Array<{ first: bigint; count: number }> = [];
    const vols: number[] = [];
    await withStore(async (m) => {
      await bucket(m, 'b');
      await Promise.all(Array.from({ length: 100 }, (_, i) => m.putObject('b', obj(`k${i}`))));
      await m.deleteObject('b', 'k5');
      await m.createUser({ id: 'u1', displayName: 'U', createdAt: 1 });
      await m.addKey({ accessKey: 'AK1', secretKey: 's', userId: 'u1', createdAt: 1 });
      blocks.push(await m.allocateNeedleIds(10), await m.allocateNeedleIds(1));
      vols.push(await m.allocateVolumeId(), await m.allocateVolumeId());
    }, dir);
    expect(blocks[0]).toEqual({ first: 1n, count: 10 });
    expect(blocks[1]).toEqual({ first: 11n, count: 1 });
    expect(vols).toEqual([1, 2]);
    await withStore(async (m) => {
      expect((await m.getBucket('b'))?.name).toBe('b');
      const page = await m.listObjects('b', { maxKeys: 1000 });
      expect(page.objects).toHaveLength(99);
      expect(await m.getObject('b', 'k5')).toBeNull();
      expect((await m.getObject('b', 'k42'))?.etag).toBe('e-k42');
      expect((await m.getKey('AK1'))?.userId).toBe('u1');
      // Concurrent allocations after reopen: no id handed out twice.
      const more = await Promise.all(
        Array.from({ length: 20 }, (_, i) => m.allocateNeedleIds(i + 1)),
      );
      blocks.push(...more);
      vols.push(...(await Promise.all(Array.from({ length: 5 }, () => m.allocateVolumeId()))));
    }, dir);
    const ids = new Set<bigint>();
    for (const b of blocks) for (let i = 0n; i < BigInt(b.count); i++) ids.add(b.first + i);
    expect(ids.size).toBe(blocks.reduce((s, b) => s + b.count, 0));
    expect(ids.has(0n)).toBe(false);
    expect(new Set(vols).size).toBe(vols.length);
    expect(vols.slice(0, 3)).toEqual([1, 2, 3]);
    expect(Math.min(...vols)).toBe(1);
  });

  it('refuses work after close', async () => {
    const m = await LevelMetadata.open(tempDir());
    await m.close();
    expect(await code(m.createBucket({ name: 'x', owner: 'a', createdAt: 1, region: 'r' }))).toBe(
      'Unavailable',
    );
  });
});

// ---- listing vs a byte-order model ----

type Entry = { name: string; cp: boolean };

/** The whole listing after `after`, computed the naive way. */
function modelList(
  keys: string[],
  prefix: string,
  delim: string | undefined,
  after: string | undefined,
): Entry[] {
  const out: Entry[] = [];
  for (const k of [...keys].sort(cmpBytes)) {
    if (!k.startsWith(prefix)) continue;
    if (after && cmpBytes(k, after) <= 0) continue;
    let e: Entry = { name: k, cp: false };
    if (delim) {
      const i = k.indexOf(delim, prefix.length);
      if (i >= 0) e = { name: k.slice(0, i + delim.length), cp: true };
    }
    if (e.cp && e.name === after) continue;
    if (out.at(-1)?.name === e.name) continue;
    out.push(e);
  }
  return out;
}

function pageEntries(objects: { key: string }[], cps: string[]): Entry[] {
  return [
    ...objects.map((o) => ({ name: o.key, cp: false })),
    ...cps.map((c) => ({ name: c, cp: true })),
  ].sort((a, b) => cmpBytes(a.name, b.name));
}

const delimArb = fc.constantFrom(undefined, '/', '😀', 'a/', '+', '\x00');
const maxArb = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constant(1000));

describe('LevelMetadata listObjects', () => {
  it('matches the byte-order model, page by page and paginated to the end', async () => {
    await withStore(async (m) => {
      let n = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(strArb(1, 6), { maxLength: 30 }),
          fc.oneof(fc.constant(''), strArb(1, 2)),
          delimArb,
          fc.option(strArb(1, 4), { nil: undefined }),
          maxArb,
          fc.nat(),
          async (keys, prefixRaw, delim, afterRaw, maxKeys, pick) => {
            const name = `b${n++}`;
            await bucket(m, name);
            await Promise.all(keys.map((k) => m.putObject(name, obj(k))));
            // Prefixes and markers taken from the keys hit the interesting cases more often.
            const some = keys.length > 0 ? keys[pick % keys.length]! : '';
            const prefix = pick % 3 === 0 ? [...some].slice(0, 1 + (pick % 3)).join('') : prefixRaw;
            let after = afterRaw;
            if (pick % 4 === 1) after = some;
            if (pick % 4 === 2 && delim) {
              const full = modelList(keys, prefix, delim, undefined).filter((e) => e.cp);
              if (full.length > 0) after = full[pick % full.length]!.name;
            }

            const want = modelList(keys, prefix, delim, after);
            const page = await m.listObjects(name, { prefix, delimiter: delim, after, maxKeys });
            const got = pageEntries(page.objects, page.commonPrefixes);
            const n0 = Math.min(maxKeys, want.length);
            expect(got).toEqual(want.slice(0, n0));
            expect(page.isTruncated).toBe(maxKeys > 0 && want.length > maxKeys);
            expect(page.last).toBe(got.at(-1)?.name);
            for (const o of page.objects) expect(o).toEqual(obj(o.key));

            // Paginate from `after` to the end, continuing from `last`.
            if (maxKeys > 0) {
              const all: Entry[] = [];
              let cursor = after;
              for (let guard = 0; guard < 100; guard++) {
                const p = await m.listObjects(name, {
                  prefix,
                  delimiter: delim,
                  after: cursor,
                  maxKeys,
                });
                all.push(...pageEntries(p.objects, p.commonPrefixes));
                if (!p.isTruncated) break;
                cursor = p.last;
              }
              expect(all).toEqual(want);
            }
          },
        ),
        { numRuns: 150 },
      );
    });
  });

  it('lists a delimiter page by seeking past each common prefix', async () => {
    await withStore(async (m) => {
      await bucket(m, 'b');
      const keys: string[] = [];
      for (let d = 0; d < 30; d++)
        for (let f = 0; f < 40; f++) keys.push(`d${String(d).padStart(2, '0')}/f${f}`);
      keys.push('top1', 'top2');
      await Promise.all(keys.map((k) => m.putObject('b', obj(k))));
      const p1 = await m.listObjects('b', { delimiter: '/', maxKeys: 10 });
      expect(p1.commonPrefixes).toEqual(
        Array.from({ length: 10 }, (_, d) => `d${String(d).padStart(2, '0')}/`),
      );
      expect(p1.isTruncated).toBe(true);
      expect(p1.last).toBe('d09/');
      const p2 = await m.listObjects('b', { delimiter: '/', maxKeys: 100, after: p1.last });
      expect(p2.commonPrefixes).toHaveLength(20);
      expect(p2.objects.map((o) => o.key)).toEqual(['top1', 'top2']);
      expect(p2.isTruncated).toBe(false);
      // start-after inside a folder: the folder's prefix is still returned (S3 behaviour).
      const p3 = await m.listObjects('b', { delimiter: '/', maxKeys: 1, after: 'd05/f1' });
      expect(p3.commonPrefixes).toEqual(['d05/']);
      // maxKeys 0: empty and not truncated.
      expect(await m.listObjects('b', { maxKeys: 0 })).toEqual({
        objects: [],
        commonPrefixes: [],
        isTruncated: false,
      });
    });
  });
});

// ---- multipart ----

describe('LevelMetadata multipart uploads', () => {
  it('stores parts and completes atomically', async () => {
    const dir = tempDir();
    await withStore(async (m) => {
      await bucket(m, 'b');
      await m.putObject('b', obj('big', 'old'));
      await m.createUpload(upload('b', 'big', 'U1'));
      expect((await m.getUpload('b', 'big', 'U1'))?.key).toBe('big');
      expect(await m.getUpload('b', 'big', 'U2')).toBeNull();
      expect(await code(m.putPart('b', 'big', 'U2', part(1, '1')))).toBe('NoSuchUpload');
      expect(await code(m.putPart('b', 'other', 'U1', part(1, '1')))).toBe('NoSuchUpload');
      expect(await m.putPart('b', 'big', 'U1', part(1, '10'))).toBeNull();
      expect(await m.putPart('b', 'big', 'U1', part(1, '11'))).toEqual(part(1, '10'));
      for (const n of [2, 3, 10, 12]) await m.putPart('b', 'big', 'U1', part(n, String(100 + n)));

      const l1 = await m.listParts('b', 'big', 'U1', { max: 3 });
      expect(l1.parts.map((p) => p.partNumber)).toEqual([1, 2, 3]);
      expect(l1.isTruncated).toBe(true);
      const l2 = await m.listParts('b', 'big', 'U1', { marker: 3, max: 3 });
      expect(l2.parts.map((p) => p.partNumber)).toEqual([10, 12]);
      expect(l2.isTruncated).toBe(false);

      const rec = obj('big', 'abc-3', {
        chunks: [part(1, '11'), part(3, '103'), part(12, '112')].flatMap((p) => p.chunks),
        partSizes: [5, 5, 5],
      });
      // A used part that does not exist, or a chunk no used part holds now: InvalidPart.
      expect(await code(m.completeUpload('b', 'big', 'U1', rec, [1, 3, 7]))).toBe('InvalidPart');
      const stale = { ...rec, chunks: [...part(1, '10').chunks, ...rec.chunks.slice(1)] };
      expect(await code(m.completeUpload('b', 'big', 'U1', stale, [1, 3, 12]))).toBe('InvalidPart');
      expect(await code(m.completeUpload('b', 'big', 'U9', rec, [1, 3, 12]))).toBe('NoSuchUpload');
      expect((await m.getObject('b', 'big'))?.etag).toBe('old');

      const done = await m.completeUpload('b', 'big', 'U1', rec, [1, 3, 12]);
      expect(done.previous?.etag).toBe('old');
      expect(done.unused.map((p) => p.partNumber)).toEqual([2, 10]);
      expect(await m.getObject('b', 'big')).toEqual(rec);
      expect(await m.getUpload('b', 'big', 'U1')).toBeNull();
      expect(await code(m.listParts('b', 'big', 'U1', { max: 10 }))).toBe('NoSuchUpload');
      expect(await code(m.completeUpload('b', 'big', 'U1', rec, [1]))).toBe('NoSuchUpload');
      expect(await code(m.putPart('b', 'big', 'U1', part(4, '4')))).toBe('NoSuchUpload');

      await m.createUpload(upload('b', 'k', 'U3'));
      await m.putPart('b', 'k', 'U3', part(1, '31'));
      await m.putPart('b', 'k', 'U3', part(2, '32'));
      expect((await m.abortUpload('b', 'k', 'U3')).map((p) => p.chunks[0]!.needleId)).toEqual([
        '31',
        '32',
      ]);
      expect(await code(m.abortUpload('b', 'k', 'U3'))).toBe('NoSuchUpload');
      await m.deleteObject('b', 'big');
      await m.deleteBucket('b');
    }, dir);
    // Nothing left behind on disk: no upload or part record at all.
    const raw = new ClassicLevel<Buffer, string>(dir, { keyEncoding: 'buffer' });
    await raw.open();
    const left = (await raw.keys().all()).map((k) => k.toString('latin1')[0]);
    await raw.close();
    expect(left.filter((c) => c === K.NS.part || c === K.NS.upload || c === K.NS.object)).toEqual(
      [],
    );
  });

  it('a part written concurrently with complete is either in the object or returned', async () => {
    await withStore(async (m) => {
      await bucket(m, 'b');
      for (let round = 0; round < 20; round++) {
        const id = `R${round}`;
        await m.createUpload(upload('b', 'k', id));
        await m.putPart('b', 'k', id, part(1, `${round}-a`));
        const rec = obj('k', 'x-1', { chunks: part(1, `${round}-a`).chunks });
        const [replace, complete] = await Promise.allSettled([
          m.putPart('b', 'k', id, part(1, `${round}-b`)),
          m.completeUpload('b', 'k', id, rec, [1]),
        ]);
        // Either the replacement came first (complete refuses: the chunk is gone) or the
        // complete came first (the late part finds no upload). Never both succeed.
        expect(replace.status === 'fulfilled' && complete.status === 'fulfilled').toBe(false);
        if (complete.status === 'rejected') {
          expect((complete.reason as MetadataError).code).toBe('InvalidPart');
          await m.abortUpload('b', 'k', id);
        }
      }
    });
  });

  it('listUploads matches the model with markers, prefixes and delimiters', async () => {
    await withStore(async (m) => {
      let n = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(fc.tuple(strArb(1, 4), fc.constantFrom('u1', 'u2', 'u3')), {
            maxLength: 20,
            selector: ([k, u]) => `${k}|${u}`,
          }),
          fc.oneof(fc.constant(''), strArb(1, 1)),
          delimArb,
          fc.option(
            fc.tuple(strArb(1, 3), fc.option(fc.constantFrom('u1', 'u2'), { nil: undefined })),
            {
              nil: undefined,
            },
          ),
          fc.integer({ min: 1, max: 4 }),
          fc.nat(),
          async (ups, prefix, delim, marker, maxUploads, pick) => {
            const name = `u${n++}`;
            await bucket(m, name);
            await Promise.all(ups.map(([k, u]) => m.createUpload(upload(name, k, u))));
            const sorted = [...ups].sort((a, b) => cmpBytes(a[0], b[0]) || cmpBytes(a[1], b[1]));
            let km: string | undefined = marker?.[0];
            const uim: string | undefined = marker?.[1];
            // Markers naming an existing key (with or without an upload id) half of the time.
            if (km !== undefined && ups.length > 0 && pick % 2 === 0)
              km = ups[pick % ups.length]![0];
            const want: Array<{ key: string; id?: string }> = [];
            for (const [k, u] of sorted) {
              if (!k.startsWith(prefix)) continue;
              if (km !== undefined) {
                const c = cmpBytes(k, km);
                if (c < 0 || (c === 0 && (uim === undefined || cmpBytes(u, uim) <= 0))) continue;
              }
              let cp: string | undefined;
              if (delim) {
                const i = k.indexOf(delim, prefix.length);
                if (i >= 0) cp = k.slice(0, i + delim.length);
              }
              if (cp !== undefined) {
                if (cp === km || want.at(-1)?.key === cp) continue;
                want.push({ key: cp });
              } else want.push({ key: k, id: u });
            }
            const got: Array<{ key: string; id?: string }> = [];
            let keyMarker = km;
            let uploadIdMarker = uim;
            for (let guard = 0; guard < 100; guard++) {
              const p = await m.listUploads(name, {
                prefix,
                delimiter: delim,
                keyMarker,
                uploadIdMarker,
                maxUploads,
              });
              const entries: Array<{ key: string; id?: string }> = [
                ...p.uploads.map((u) => ({ key: u.key, id: u.uploadId })),
                ...p.commonPrefixes.map((c) => ({ key: c })),
              ];
              entries.sort((a, b) => cmpBytes(a.key, b.key) || cmpBytes(a.id ?? '', b.id ?? ''));
              expect(entries.length).toBeLessThanOrEqual(maxUploads);
              got.push(...entries);
              if (!p.isTruncated) break;
              keyMarker = p.nextKeyMarker;
              uploadIdMarker = p.nextUploadIdMarker;
            }
            expect(got).toEqual(want);
          },
        ),
        { numRuns: 80 },
      );
    });
  });
});

// ---- users and keys ----

describe('LevelMetadata users and keys', () => {
  it('creates, lists and deletes users with their keys', async () => {
    await withStore(async (m) => {
      await m.createUser({ id: 'bob', displayName: 'Bob', createdAt: 1 });
      await m.createUser({ id: 'al', displayName: 'Al', createdAt: 2 });
      expect(await code(m.createUser({ id: 'bob', displayName: 'B2', createdAt: 3 }))).toBe(
        'UserExists',
      );
      expect((await m.listUsers()).map((u) => u.id)).toEqual(['al', 'bob']);
      expect((await m.getUser('bob'))?.displayName).toBe('Bob');
      expect(
        await code(m.addKey({ accessKey: 'K0', secretKey: 's', userId: 'nobody', createdAt: 1 })),
      ).toBe('NoSuchUser');
      await m.addKey({ accessKey: 'K2', secretKey: 's2', userId: 'bob', createdAt: 1 });
      await m.addKey({ accessKey: 'K1', secretKey: 's1', userId: 'bob', createdAt: 1 });
      await m.addKey({ accessKey: 'K3', secretKey: 's3', userId: 'al', createdAt: 1 });
      expect(
        await code(m.addKey({ accessKey: 'K1', secretKey: 'x', userId: 'al', createdAt: 1 })),
      ).toBe('KeyExists');
      expect((await m.listKeys('bob')).map((k) => k.accessKey)).toEqual(['K1', 'K2']);
      expect((await m.listKeys()).map((k) => k.accessKey)).toEqual(['K1', 'K2', 'K3']);
      expect((await m.getKey('K2'))?.secretKey).toBe('s2');
      // Compare-and-set of a secret (sealing one stored in clear): only from the expected value.
      expect(await m.replaceKeySecret('K3', 'not-s3', 'sealed3')).toBe(false);
      expect(await m.replaceKeySecret('K3', 's3', 'sealed3')).toBe(true);
      expect(await m.replaceKeySecret('K3', 's3', 'again')).toBe(false);
      expect(await m.replaceKeySecret('K9', 's9', 'x')).toBe(false);
      expect(await m.getKey('K3')).toMatchObject({ secretKey: 'sealed3', userId: 'al' });
      await m.deleteKey('K2');
      await m.deleteKey('K2');
      expect(await m.getKey('K2')).toBeNull();
      expect((await m.listKeys('bob')).map((k) => k.accessKey)).toEqual(['K1']);
      await m.deleteUser('bob');
      expect(await code(m.deleteUser('bob'))).toBe('NoSuchUser');
      expect(await m.getUser('bob')).toBeNull();
      expect(await m.getKey('K1')).toBeNull();
      expect((await m.listKeys()).map((k) => k.accessKey)).toEqual(['K3']);
      expect(await m.listKeys('bob')).toEqual([]);
    });
  });
});

// ---- performance figures (printed, not asserted) ----

describe('LevelMetadata performance', () => {
  it('group-commits concurrent putObject calls', async () => {
    await withStore(async (m) => {
      await bucket(m, 'b');
      const callers = 64;
      const perCaller = 300;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: callers }, async (_, c) => {
          for (let i = 0; i < perCaller; i++) await m.putObject('b', obj(`c${c}/obj-${i}`));
        }),
      );
      const s = (performance.now() - t0) / 1000;
      const n = callers * perCaller;
      const st = m.writeStats;
      console.log(
        `putObject: ${Math.round(n / s)}/s with ${callers} concurrent callers (${n} puts, ` +
          `${st.batches} synced batches, largest ${st.largestBatch})`,
      );
      expect(
        (await m.listObjects('b', { maxKeys: 1, prefix: 'c63/obj-299' })).objects,
      ).toHaveLength(1);
    });
  });

  it('lists a 1000-key page in a bucket of 200 000 keys', async () => {
    const dir = tempDir();
    const total = 200_000;
    // Load directly (no per-record sync) through the same key layout.
    await withStore(async (m) => bucket(m, 'big'), dir);
    const raw = new ClassicLevel<string, string>(dir, {
      keyEncoding: {
        name: 'latin1',
        format: 'buffer',
        encode: (s: string) => Buffer.from(s, 'latin1'),
        decode: (b: Buffer) => b.toString('latin1'),
      },
      valueEncoding: 'utf8',
    });
    await raw.open();
    for (let i = 0; i < total; i += 20_000) {
      const ops = [];
      for (let j = i; j < i + 20_000; j++) {
        const key = `dir${String(j % 200).padStart(3, '0')}/photo-${String(j).padStart(7, '0')}.jpg`;
        const { key: _k, ...rest } = obj(key, 'd41d8cd98f00b204e9800998ecf8427e');
        ops.push({
          type: 'put' as const,
          key: K.objectKey('big', key),
          value: JSON.stringify(rest),
        });
      }
      await raw.batch(ops);
    }
    await raw.close();
    await withStore(async (m) => {
      const time = async (f: () => Promise<unknown>, reps = 10): Promise<number> => {
        await f();
        const t0 = performance.now();
        for (let i = 0; i < reps; i++) await f();
        return (performance.now() - t0) / reps;
      };
      const mid = 'dir100/photo-0100100.jpg';
      const flat = await time(async () => {
        const p = await m.listObjects('big', { maxKeys: 1000, after: mid });
        expect(p.objects).toHaveLength(1000);
      });
      const prefixed = await time(async () => {
        const p = await m.listObjects('big', { maxKeys: 1000, prefix: 'dir150/', delimiter: '/' });
        expect(p.objects).toHaveLength(1000);
      });
      // 200 folders of 1000 keys each: a delimiter page of 200 prefixes seeks 200 times.
      const folders = await time(async () => {
        const p = await m.listObjects('big', { maxKeys: 1000, delimiter: '/' });
        expect(p.commonPrefixes).toHaveLength(200);
        expect(p.isTruncated).toBe(false);
      });
      console.log(
        `listObjects in ${total} keys: 1000-key page ${flat.toFixed(1)} ms; ` +
          `1000-key page under a prefix with delimiter ${prefixed.toFixed(1)} ms; ` +
          `200 common prefixes over all keys ${folders.toFixed(1)} ms`,
      );
    }, dir);
  });
});
