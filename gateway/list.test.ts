import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ListObjectsResult, ObjectRecord } from '../directory/model/api.ts';
import { owner } from './bucket.ts';
import { listXml, objectsXml, prefixesXml, versionXml } from './list.ts';
import { isoDate, toXml, type XmlNode } from './xml.ts';

// Markup characters, controls XML cannot carry, lone and paired surrogates, non-BMP text.
const textArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 10 }),
  fc.string({
    unit: fc.constantFrom(
      'a',
      '&',
      '<',
      '>',
      '"',
      "'",
      '\r',
      '\t',
      '\x01',
      '\uD800',
      '\uDC00',
      '😀',
      '\uFFFE',
      ' ',
      '/',
    ),
    maxLength: 8,
  }),
  fc.string({ maxLength: 10 }),
);
const recordArb = fc.record({
  key: textArb,
  size: fc.oneof(fc.nat(), fc.constant(1e21)),
  etag: textArb,
  lastModified: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  owner: textArb,
}) as fc.Arbitrary<ObjectRecord>;
const encArb = fc.constantFrom(
  (s: string) => s,
  (s: string) => encodeURIComponent(s.replace(/\p{Cs}/gu, '')).replace(/%2F/g, '/'),
);

// The XmlNode form list.ts used to hand to toXml.
const oldContents = (o: ObjectRecord, withOwner: boolean, enc: (s: string) => string): XmlNode => ({
  Key: enc(o.key),
  LastModified: isoDate(o.lastModified),
  ETag: `"${o.etag}"`,
  Size: o.size,
  StorageClass: 'STANDARD',
  Owner: withOwner ? owner(o.owner) : undefined,
});
const oldVersion = (o: ObjectRecord, enc: (s: string) => string): XmlNode => ({
  Key: enc(o.key),
  VersionId: 'null',
  IsLatest: true,
  LastModified: isoDate(o.lastModified),
  ETag: `"${o.etag}"`,
  Size: o.size,
  StorageClass: 'STANDARD',
  Owner: owner(o.owner),
});

describe('listing XML', () => {
  it('is byte-identical to rendering each entry as an XmlNode', () => {
    fc.assert(
      fc.property(
        fc.array(recordArb, { maxLength: 5 }),
        fc.array(textArb, { maxLength: 3 }),
        fc.boolean(),
        encArb,
        textArb,
        (objects, commonPrefixes, withOwner, enc, name) => {
          const r: ListObjectsResult = { objects, commonPrefixes, isTruncated: false };
          const head = { Name: name, IsTruncated: false };
          const prefixes = commonPrefixes.map((p) => ({ Prefix: enc(p) }));
          expect(listXml('ListBucketResult', head, objectsXml(r, withOwner, enc))).toBe(
            toXml('ListBucketResult', {
              ...head,
              Contents: objects.map((o) => oldContents(o, withOwner, enc)),
              CommonPrefixes: prefixes,
            }),
          );
          const versions = objects.map((o) => versionXml(o, enc)).join('');
          expect(
            listXml('ListVersionsResult', head, versions + prefixesXml(commonPrefixes, enc)),
          ).toBe(
            toXml('ListVersionsResult', {
              ...head,
              Version: objects.map((o) => oldVersion(o, enc)),
              CommonPrefixes: prefixes,
            }),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
