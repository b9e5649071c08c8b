// The directory benchmark's own pure helpers (the benchmark itself runs real processes).
import { describe, expect, it } from 'vitest';
import { objectKey, objectRecord, parseListV2, Samples } from './directory.ts';

describe('bench/directory helpers', () => {
  it('keys are fixed-width, so key order is index order', () => {
    expect(objectKey(123456)).toBe('obj/000123456');
    const keys = [5, 40, 300, 1_000_000, 999_999_999].map(objectKey);
    expect([...keys].sort()).toEqual(keys);
  });

  it('records are deterministic and shaped like a gateway commit', () => {
    const a = objectRecord(42, 'owner', 1000);
    expect(objectRecord(42, 'owner', 1000)).toEqual(a);
    expect(a.key).toBe('obj/000000042');
    expect(a.etag).toMatch(/^[0-9a-f]{32}$/);
    expect(a.chunks).toHaveLength(1);
    expect(a.chunks[0]!.size).toBe(a.size);
    expect(a.chunks[0]!.needleId).toMatch(/^\d+$/);
    expect(Object.keys(a.userMeta).length).toBeGreaterThan(0);
    expect(objectRecord(43, 'owner', 1000).etag).not.toBe(a.etag);
  });

  it('reads a ListObjectsV2 answer', () => {
    const xml =
      '<ListBucketResult><Name>b</Name><KeyCount>2</KeyCount>' +
      '<IsTruncated>true</IsTruncated><NextContinuationToken>b2JqLzE</NextContinuationToken>' +
      '<Contents><Key>obj/0</Key><Size>1</Size></Contents>' +
      '<Contents><Key>obj/1</Key><Size>1</Size></Contents></ListBucketResult>';
    expect(parseListV2(xml)).toEqual({
      keys: 2,
      first: 'obj/0',
      last: 'obj/1',
      truncated: true,
      next: 'b2JqLzE',
    });
    expect(
      parseListV2('<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>'),
    ).toEqual({ keys: 0, first: undefined, last: undefined, truncated: false, next: undefined });
  });

  it('Samples grows past its first buffer and summarizes', () => {
    const s = new Samples();
    for (let i = 1; i <= 3000; i++) s.push(i);
    const sum = s.summary();
    expect(sum.count).toBe(3000);
    expect(sum.p50).toBe(1500);
    expect(sum.max).toBe(3000);
  });
});
