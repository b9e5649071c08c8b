// fast-check arbitraries for object records, shared by the codec and listing tests.
import fc from 'fast-check';
import type { ObjectRecord } from './api.ts';

// Names and values the wire treats specially: "$"-prefixed (escaped), the bigint tag, quotes
// and backslashes next to "$", array-index names (which JSON.parse reorders), unicode.
export const nameArb = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.string({ maxLength: 6 }).map((s) => `$${s}`),
  fc.constantFrom('$bigint', '$$bigint', '$', '"$', '\\"$', '0', '17', 'a"$b', 'x\u2028y'),
);
const textArb = fc.oneof(nameArb, fc.string({ unit: 'binary', maxLength: 12 }));
const keyArb = fc
  .oneof(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 10 }),
    nameArb.map((s) => `k${s}`),
  )
  .map((s) => s.replace(/\p{Cs}/gu, 'x'));
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

export const recordArb: fc.Arbitrary<ObjectRecord> = fc
  .record({
    key: keyArb,
    size: fc.nat(),
    etag: textArb,
    lastModified: fc.nat(),
    contentType: optional(textArb),
    contentEncoding: optional(textArb),
    contentDisposition: optional(textArb),
    contentLanguage: optional(textArb),
    cacheControl: optional(textArb),
    expires: optional(textArb),
    userMeta: fc.dictionary(nameArb, textArb, { maxKeys: 4 }),
    checksums: optional(fc.dictionary(nameArb, textArb, { maxKeys: 2 })),
    chunks: fc.array(
      fc.record({
        volumeId: fc.nat(),
        needleId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String),
        cookie: fc.nat(),
        size: fc.nat(),
      }),
      { maxLength: 3 },
    ),
    partSizes: optional(fc.array(fc.nat(), { maxLength: 3 })),
    owner: textArb,
  })
  // As the gateway builds them: absent optional fields are not there at all.
  .map((r) => JSON.parse(JSON.stringify(r)) as ObjectRecord);
