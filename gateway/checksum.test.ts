import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32, crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BodyDigests,
  CHECKSUM_ALGORITHMS,
  checksumHeaderName,
  createHasher,
  declaredChecksum,
  digestOf,
  digestStream,
  etagOf,
  parseChecksumAlgorithm,
  validateChecksumValue,
  verifyChecksum,
  verifyContentMd5,
  verifyContentSha256,
} from './checksum.ts';
import { S3Error } from './error.ts';

function split(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.min(c, data.length)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    out.push(data.subarray(at, p));
    at = p;
  }
  out.push(data.subarray(at));
  return out;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof S3Error) return e.code;
    throw e;
  }
  return 'no error';
}

describe('hashers', () => {
  it('match the standard check values', () => {
    const check = '123456789';
    expect(digestOf('CRC32', check).toString('hex')).toBe('cbf43926');
    expect(digestOf('CRC32C', check).toString('hex')).toBe('e3069283');
    expect(digestOf('CRC64NVME', check).toString('hex')).toBe('ae8b14860a799888');
    expect(digestOf('SHA1', '').toString('base64')).toBe('2jmj7l5rSw0yVb/vlWAYkK/YBwk=');
    expect(digestOf('SHA256', '').toString('base64')).toBe(
      '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
    );
    expect(digestOf('CRC32', '').toString('base64')).toBe('AAAAAA==');
    expect(etagOf(digestOf('MD5', ''))).toBe('"d41d8cd98f00b204e9800998ecf8427e"');
  });

  it("@node-rs/crc32's running value makes incremental CRCs equal one-shot ones", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2000 }),
        fc.array(fc.nat({ max: 2000 }), { maxLength: 10 }),
        (data, cuts) => {
          const buf = Buffer.from(data);
          let a = 0;
          let c = 0;
          for (const p of split(buf, cuts)) {
            a = crc32(p as Buffer, a);
            c = crc32c(p as Buffer, c);
          }
          expect(a).toBe(crc32(buf));
          expect(c).toBe(crc32c(buf));
        },
      ),
    );
  });

  it('every algorithm gives the same digest however the input is split', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.nat({ max: 3000 }), { maxLength: 12 }),
        (data, cuts) => {
          const d = new BodyDigests({ md5: true, sha256: true, checksums: CHECKSUM_ALGORITHMS });
          for (const p of split(data, cuts)) d.update(p);
          const r = d.finish();
          expect(r.size).toBe(data.length);
          expect(r.md5!.equals(createHash('md5').update(data).digest())).toBe(true);
          expect(r.sha256!.equals(createHash('sha256').update(data).digest())).toBe(true);
          for (const alg of CHECKSUM_ALGORITHMS) {
            expect(r.checksums[alg]).toBe(digestOf(alg, data).toString('base64'));
          }
          expect(r.checksums.SHA1).toBe(createHash('sha1').update(data).digest('base64'));
          expect(r.checksums.SHA256).toBe(r.sha256!.toString('base64'));
          // CRCs are big-endian, as S3 sends them.
          expect(Buffer.from(r.checksums.CRC32!, 'base64').readUInt32BE()).toBe(
            crc32(Buffer.from(data)),
          );
          expect(Buffer.from(r.checksums.CRC32C!, 'base64').readUInt32BE()).toBe(
            crc32c(Buffer.from(data)),
          );
        },
      ),
      { numRuns: 100 },
    );
  });

  it('digests a stream, and refuses use after finish', async () => {
    const r = await digestStream(Readable.from([Buffer.from('1234'), Buffer.from('56789')]), {
      checksums: ['CRC32C'],
    });
    expect(r.checksums.CRC32C).toBe(Buffer.from('e3069283', 'hex').toString('base64'));
    expect(r.md5).toBeUndefined();
    const d = new BodyDigests({ md5: true });
    d.finish();
    expect(() => d.update(Buffer.from('x'))).toThrow();
    expect(() => d.finish()).toThrow();
    const h = createHasher('CRC64NVME');
    h.update(Buffer.from('1234'));
    h.update(Buffer.from('56789'));
    expect(h.digest().toString('hex')).toBe('ae8b14860a799888');
  });
});

describe('verification', () => {
  const body = Buffer.from('Welcome to Amazon S3.');
  const md5 = digestOf('MD5', body);

  it('Content-MD5: match, mismatch (BadDigest), malformed (InvalidDigest)', () => {
    expect(code(() => verifyContentMd5(md5.toString('base64'), md5))).toBe('no error');
    expect(code(() => verifyContentMd5(` ${md5.toString('base64')} `, md5))).toBe('no error');
    const other = digestOf('MD5', 'other').toString('base64');
    expect(code(() => verifyContentMd5(other, md5))).toBe('BadDigest');
    for (const bad of [
      '',
      'abc',
      md5.toString('hex'),
      `${md5.toString('base64')}=`,
      '!!!!!!!!!!!!!!!!!!!!!!==',
      'AAAAAAAAAAAAAAAAAAAAAB==',
    ]) {
      expect(code(() => verifyContentMd5(bad, md5))).toBe('InvalidDigest');
    }
    try {
      verifyContentMd5(other, md5);
    } catch (e) {
      expect((e as S3Error).status).toBe(400);
    }
  });

  it('x-amz-checksum-*: match, mismatch (BadDigest with the S3 message), malformed', () => {
    for (const alg of CHECKSUM_ALGORITHMS) {
      const v = digestOf(alg, body);
      expect(code(() => verifyChecksum(alg, v.toString('base64'), v))).toBe('no error');
      expect(code(() => verifyChecksum(alg, v.toString('base64'), v.toString('base64')))).toBe(
        'no error',
      );
      const wrong = digestOf(alg, 'x').toString('base64');
      expect(code(() => verifyChecksum(alg, wrong, v))).toBe('BadDigest');
      expect(code(() => verifyChecksum(alg, 'AAAA', v))).toBe('InvalidRequest');
    }
    try {
      verifyChecksum('CRC32', 'AAAAAA==', digestOf('CRC32', body));
      expect.unreachable();
    } catch (e) {
      expect((e as S3Error).message).toBe(
        'The x-amz-checksum-crc32 you specified did not match the calculated checksum.',
      );
    }
    expect(() =>
      validateChecksumValue('SHA256', digestOf('SHA1', body).toString('base64')),
    ).toThrow(S3Error);
  });

  it('x-amz-content-sha256 mismatch is XAmzContentSHA256Mismatch', () => {
    const sha = digestOf('SHA256', body);
    expect(code(() => verifyContentSha256(sha.toString('hex'), sha))).toBe('no error');
    expect(code(() => verifyContentSha256(sha.toString('hex').toUpperCase(), sha))).toBe(
      'no error',
    );
    expect(code(() => verifyContentSha256('0'.repeat(64), sha))).toBe('XAmzContentSHA256Mismatch');
  });

  it('finds the one declared checksum header', () => {
    const crc = digestOf('CRC32', body).toString('base64');
    expect(
      declaredChecksum({
        'x-amz-checksum-crc32': crc,
        'x-amz-checksum-mode': 'ENABLED',
        host: 'h',
      }),
    ).toEqual({ algorithm: 'CRC32', value: crc });
    expect(declaredChecksum({ host: 'h', 'x-amz-checksum-type': 'FULL_OBJECT' })).toBeUndefined();
    const sha1 = digestOf('SHA1', body).toString('base64');
    expect(
      code(() => declaredChecksum({ 'x-amz-checksum-crc32': crc, 'x-amz-checksum-sha1': sha1 })),
    ).toBe('InvalidRequest');
    expect(code(() => declaredChecksum({ 'x-amz-checksum-crc32': [crc, crc] }))).toBe(
      'InvalidRequest',
    );
    expect(code(() => declaredChecksum({ 'x-amz-checksum-crc32': 'nope' }))).toBe('InvalidRequest');
    expect(code(() => declaredChecksum({ 'x-amz-checksum-whirlpool': crc }))).toBe(
      'InvalidRequest',
    );
  });

  it('names algorithms both ways', () => {
    for (const alg of CHECKSUM_ALGORITHMS) {
      expect(parseChecksumAlgorithm(checksumHeaderName(alg))).toBe(alg);
      expect(parseChecksumAlgorithm(alg.toLowerCase())).toBe(alg);
    }
    expect(checksumHeaderName('CRC64NVME')).toBe('x-amz-checksum-crc64nvme');
    expect(parseChecksumAlgorithm('MD5')).toBeUndefined();
    expect(parseChecksumAlgorithm('x-amz-checksum-')).toBeUndefined();
  });
});
