// A gateway's record copy arrives over the metadata wire; the leader reads the record from
// its database. Renewals (cache/README.md rule 5) only work if both give the same stamp.
import { describe, expect, it } from 'vitest';
import { testObject } from '../../test/kit/records.ts';
import { decodeJson, encodeJson } from '../wire/json.ts';
import type { ObjectRecord } from './api.ts';
import { decodeObject, encodeObject } from './object-codec.ts';
import { recordStamp } from './record-stamp.ts';

const records: ObjectRecord[] = [
  testObject('plain'),
  testObject('full', 'abc-2', {
    size: 10,
    contentType: 'text/plain',
    cacheControl: 'no-cache',
    userMeta: { b: '2', a: '1 ü' },
    checksums: { crc32: 'AAAAAA==' },
    partSizes: [5, 5],
    chunks: [
      { volumeId: 3, needleId: '18446744073709551615', cookie: 4294967295, size: 5 },
      { volumeId: 4, needleId: '2', cookie: 0, size: 5 },
    ],
  }),
  testObject('empty', 'e', { size: 0, chunks: [] }),
];

describe('recordStamp', () => {
  it('is the same for the leader’s stored record and the gateway’s copy off the wire', () => {
    for (const rec of records) {
      const stored = encodeObject(rec);
      const atLeader = decodeObject(rec.key, stored);
      const atGateway = decodeJson(encodeJson(atLeader)) as ObjectRecord;
      expect(recordStamp(atGateway)).toBe(recordStamp(atLeader));
      expect(recordStamp(atLeader)).toBe(recordStamp(rec));
    }
  });

  it('differs between versions of one object', () => {
    const a = records[1]!;
    const stamps = new Set([
      recordStamp(a),
      recordStamp({ ...a, lastModified: a.lastModified + 1 }),
      recordStamp({ ...a, userMeta: { ...a.userMeta, a: '1' } }),
      recordStamp({ ...a, chunks: a.chunks.slice(0, 1) }),
      recordStamp({ ...a, etag: 'abc-3' }),
    ]);
    expect(stamps.size).toBe(5);
  });
});
