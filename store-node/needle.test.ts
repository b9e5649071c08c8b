import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Codec,
  decodeSuperblock,
  encodeNeedle,
  encodeSuperblock,
  FLAG_COMPRESSED,
  needleDataIntact,
  needleDiskSize,
  readNeedleHeader,
} from './needle.ts';

describe('needle encoding', () => {
  it('round-trips headers and data, padded to 8 bytes', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
        fc.nat({ max: 0xffff_ffff }),
        fc.uint8Array({ maxLength: 3000 }),
        (id, cookie, data) => {
          const h = {
            cookie,
            id,
            dataLength: data.length,
            originalLength: data.length * 2,
            flags: FLAG_COMPRESSED,
            codec: Codec.Zstd,
          };
          const buf = encodeNeedle(h, data);
          expect(buf.length % 8).toBe(0);
          expect(buf.length).toBe(needleDiskSize(data.length));
          expect(readNeedleHeader(buf, 0)).toEqual(h);
          expect(needleDataIntact(buf, 0, data.length)).toBe(true);
        },
      ),
    );
  });

  it('detects any single flipped bit in header, data or checksum', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.nat(),
        fc.nat({ max: 7 }),
        (data, at, bit) => {
          const buf = encodeNeedle(
            {
              cookie: 1,
              id: 42n,
              dataLength: data.length,
              originalLength: data.length,
              flags: 0,
              codec: 0,
            },
            data,
          );
          const pos = at % (32 + data.length + 4); // not the padding: it carries nothing
          buf[pos]! ^= 1 << bit;
          const h = readNeedleHeader(buf, 0);
          const intact = typeof h !== 'string' && needleDataIntact(buf, 0, h.dataLength);
          expect(
            intact && typeof h !== 'string' && h.id === 42n && h.dataLength === data.length,
          ).toBe(false);
        },
      ),
    );
  });

  it('never throws on arbitrary bytes, only reports a problem', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const r = readNeedleHeader(Buffer.from(bytes), 0);
        expect(['short', 'magic', 'header-crc']).toContain(r);
      }),
    );
  });

  it('round-trips the superblock and rejects a damaged one', () => {
    const sb = { volumeId: 7, generation: 3, createdMs: 1_700_000_000_123 };
    const buf = encodeSuperblock(sb);
    expect(decodeSuperblock(buf)).toEqual(sb);
    buf[9]! ^= 0x10;
    expect(() => decodeSuperblock(buf)).toThrow(/crc/);
  });
});
