import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import type { ListObjectsResult, ObjectRecord } from '../model/api.ts';
import { recordArb } from '../model/record-arbitraries.ts';
import { decodeJson, encodeJson } from '../wire/server.ts';
import { LevelMetadata } from './meta-level.ts';
import { hasWireJson, WIRE_JSON } from './object-listing.ts';

/** The page as the old path saw it: a plain object, stringified as a whole. */
function plain<T>(page: ListObjectsResult<T>): ListObjectsResult<T> {
  return { ...page };
}

describe('listObjects wire form', () => {
  it('decodes exactly as the parsed page would have encoded', async () => {
    const m = await LevelMetadata.open(tempDir());
    try {
      await m.createBucket({ name: 'b', owner: 'o', createdAt: 1, region: 'r' });
      let n = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(recordArb, { selector: (r) => r.key, minLength: 1, maxLength: 8 }),
          fc.constantFrom(undefined, '/', '$', '"'),
          async (recs, delimiter) => {
            const bucket = `b${n++}`;
            await m.createBucket({ name: bucket, owner: 'o', createdAt: 1, region: 'r' });
            for (const r of recs) await m.putObject(bucket, r);
            const opts = { delimiter, maxKeys: 1000 };
            const fast = await m.listObjects(bucket, opts);
            const old = plain(await m.listObjects(bucket, opts));
            expect(hasWireJson(fast) && fast[WIRE_JSON](encodeJson) !== undefined).toBe(true);
            const fastText = encodeJson(fast);
            const oldText = encodeJson(old);
            expect(decodeJson(fastText)).toStrictEqual(decodeJson(oldText));
            // Texts differ only where JSON.parse moved array-index names to the front.
            const reordered = recs.some((r) =>
              [...Object.keys(r.userMeta), ...Object.keys(r.checksums ?? {})].some((k) =>
                /^(0|[1-9]\d*)$/.test(k),
              ),
            );
            if (!reordered) expect(fastText).toBe(oldText);
            if (delimiter === undefined) {
              const byKey = new Map(recs.map((r) => [r.key, r]));
              const got = (decodeJson(fastText) as ListObjectsResult).objects;
              expect(got.map((o) => byKey.get(o.key))).toStrictEqual(got);
            }
            // Summaries: the same page, each object cut down to what a listing shows.
            const sFast = await m.listObjectSummaries(bucket, opts);
            const sText = encodeJson(sFast);
            expect(hasWireJson(sFast) && sFast[WIRE_JSON](encodeJson) !== undefined).toBe(true);
            expect(sText).toBe(encodeJson(plain(await m.listObjectSummaries(bucket, opts))));
            const full = decodeJson(fastText) as ListObjectsResult;
            expect(decodeJson(sText)).toStrictEqual({
              ...full,
              objects: full.objects.map(({ key, size, etag, lastModified, owner }) => ({
                key,
                size,
                etag,
                lastModified,
                owner,
              })),
            });
          },
        ),
        { numRuns: 150 },
      );
    } finally {
      await m.close();
    }
  });

  it('hands in-process callers real records, and encodes what they changed', async () => {
    const m = await LevelMetadata.open(tempDir());
    try {
      await m.createBucket({ name: 'b', owner: 'o', createdAt: 1, region: 'r' });
      const rec: ObjectRecord = {
        key: 'k',
        size: 1,
        etag: 'e',
        lastModified: 2,
        userMeta: { $x: 'y' },
        chunks: [],
        owner: 'o',
      };
      await m.putObject('b', rec);
      const page = await m.listObjects('b', { maxKeys: 10 });
      expect(page).toStrictEqual({
        objects: [rec],
        commonPrefixes: [],
        isTruncated: false,
        last: 'k',
      });
      expect({ ...page }.objects).toBe(page.objects);
      page.objects[0]!.size = 5;
      expect((decodeJson(encodeJson(page)) as ListObjectsResult).objects[0]!.size).toBe(5);
      page.objects = [];
      expect((decodeJson(encodeJson(page)) as ListObjectsResult).objects).toEqual([]);
      // Nested, it is stringified like any object (its getter parses the records).
      const fresh = await m.listObjects('b', { maxKeys: 10 });
      expect(decodeJson(encodeJson([fresh]))).toStrictEqual([{ ...page, objects: [rec] }]);
    } finally {
      await m.close();
    }
  });
});
