import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ObjectRecord } from './api.ts';
import {
  decodeObject,
  decodeObjectOrNull,
  decodeSummary,
  encodeObject,
  recordJson,
  summaryJson,
} from './object-codec.ts';
import { recordArb } from './record-arbitraries.ts';

const summaryOf = ({ key, size, etag, lastModified, owner }: ObjectRecord) => ({
  key,
  size,
  etag,
  lastModified,
  owner,
});
const withoutKey = ({ key: _k, ...rest }: ObjectRecord) => rest;

describe('object record codec', () => {
  it('decodes what it encodes, whole and as a summary', () => {
    fc.assert(
      fc.property(recordArb, (r) => {
        const stored = encodeObject(r);
        expect(stored.split('\n')).toHaveLength(2);
        expect(decodeObject(r.key, stored)).toStrictEqual(r);
        expect(decodeSummary(r.key, stored)).toStrictEqual(summaryOf(r));
        // The spliced texts are JSON of exactly the record / summary without the key.
        expect(JSON.parse(recordJson(stored))).toStrictEqual(withoutKey(r));
        const { key: _k, ...summary } = summaryOf(r);
        expect(JSON.parse(summaryJson(stored))).toStrictEqual(summary);
      }),
      { numRuns: 500 },
    );
  });

  it('reads values stored before the split form (one JSON object)', () => {
    fc.assert(
      fc.property(recordArb, (r) => {
        const old = JSON.stringify(withoutKey(r));
        expect(decodeObject(r.key, old)).toStrictEqual(r);
        expect(decodeSummary(r.key, old)).toStrictEqual(summaryOf(r));
        expect(recordJson(old)).toBe(old);
      }),
      { numRuns: 200 },
    );
  });

  it('joins halves that are empty objects', () => {
    // Not what encodeObject writes for a valid record, but recordJson must not mangle them.
    expect(recordJson('{}\n{"a":1}')).toBe('{"a":1}');
    expect(recordJson('{"size":1}\n{}')).toBe('{"size":1}');
    expect(recordJson('{}\n{}')).toBe('{}');
    expect(decodeObjectOrNull('k', undefined)).toBeNull();
  });
});
