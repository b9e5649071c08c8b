// An ambiguous metadata failure must not free the needles of a record that
// may have been committed (MetadataClient maps a dropped connection / timeout after the
// server's synced batch to MetadataError('Unavailable')).
import { describe, expect, it } from 'vitest';
import { type ChunkRef, MetadataError, type ObjectRecord } from '../directory/model/api.ts';
import type { BucketRequest } from './access.ts';
import { commitObject } from './put.ts';

describe('commitObject on an ambiguous metadata error', () => {
  it('does not free chunks that a committed record still references', async () => {
    const committed = new Map<string, ObjectRecord>();
    const freed: ChunkRef[] = [];
    const req = {
      bucket: 'b',
      bucketRecord: { name: 'b', owner: 'o', createdAt: 0, region: 'us-east-1' },
      services: {
        meta: {
          // The batch commits on the server; the reply is lost (timeout, reset).
          async putObject(_b: string, rec: ObjectRecord) {
            committed.set(rec.key, rec);
            throw new MetadataError('Unavailable', 'metadata service unreachable: socket hang up');
          },
        },
        data: {
          async free(chunks: ChunkRef[]) {
            freed.push(...chunks);
          },
        },
      },
    } as unknown as BucketRequest;
    const rec = {
      key: 'k',
      size: 3,
      etag: 'x',
      lastModified: 0,
      userMeta: {},
      owner: 'o',
      chunks: [{ volumeId: 1, needleId: '42', cookie: 7, size: 3 }],
    } as ObjectRecord;
    await expect(commitObject(req, rec)).rejects.toThrow();
    const live = new Set([...committed.values()].flatMap((r) => r.chunks.map((c) => c.needleId)));
    // The visible record "k" must not point at tombstoned needles.
    expect(freed.filter((c) => live.has(c.needleId))).toEqual([]);
  });
});
