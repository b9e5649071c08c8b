import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ObjectRecord } from './api.ts';
import {
  checkStored,
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
        expect(() => checkStored(stored)).not.toThrow();
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

  it('refuses stored texts that encodeObject would not write', () => {
    const good = encodeObject({
      key: 'k',
      size: 1,
      etag: 'e',
      lastModified: 2,
      userMeta: {},
      chunks: [],
      owner: 'o',
    });
    expect(() => checkStored(good)).not.toThrow();
    const [head, rest] = good.split('\n') as [string, string];
    for (const bad of [
      head + rest, // no newline
      `${head}\n${rest}\n{}`, // two
      `${head}\n{"userMeta":{},"chunks":[]`, // truncated
      `${head}\n[1]`,
      `[1]\n${rest}`,
      `{"etag":"e","size":1,"lastModified":2,"owner":"o"}\n${rest}`, // order
      `{"size":1,"etag":"e","lastModified":2,"owner":"o","x":1}\n${rest}`,
      `{"size":-1,"etag":"e","lastModified":2,"owner":"o"}\n${rest}`,
      `{"size":1,"etag":5,"lastModified":2,"owner":"o"}\n${rest}`,
      `${head}\n{"userMeta":{},"chunks":[],"size":3}`,
      `${head}\n{"userMeta":{},"chunks":[],"key":"x"}`,
      `${head}\n{"chunks":[]}`,
      `${head}\n{"userMeta":{},"chunks":{}}`,
    ]) {
      expect(() => checkStored(bad), bad).toThrow();
    }
  });

  it('joins halves that are empty objects', () => {
    // Not what encodeObject writes for a valid record, but recordJson must not mangle them.
    expect(recordJson('{}\n{"a":1}')).toBe('{"a":1}');
    expect(recordJson('{"size":1}\n{}')).toBe('{"size":1}');
    expect(recordJson('{}\n{}')).toBe('{}');
    expect(decodeObjectOrNull('k', undefined)).toBeNull();
  });
});
