import { Readable } from 'node:stream';
import { getAwsChunkedEncodingStream } from '@smithy/core/serde';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHasher } from '../checksum.ts';
import { S3Error } from '../error.ts';
import {
  AwsChunkedDecoder,
  type ChunkedOptions,
  chunkedOptionsFor,
  decodeAwsChunked,
  type EncodeOptions,
  encodeAwsChunked,
  trailerSignature,
} from './chunked.ts';
import { authenticate, deriveSigningKey } from './sigv4.ts';

const AK = 'AKIAIOSFODNN7EXAMPLE';
const SK = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const DATE = '20130524T000000Z';
const SCOPE = '20130524/us-east-1/s3/aws4_request';
const KEY = deriveSigningKey(SK, '20130524', 'us-east-1');
const SEED = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9';
const SIGS = [
  'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
  '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
  'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
];

const signedOpts = (extra: Partial<ChunkedOptions> = {}): ChunkedOptions => ({
  mode: 'signed',
  signingKey: KEY,
  seedSignature: SEED,
  date: DATE,
  scope: SCOPE,
  ...extra,
});
const encodeSigned = (data: Buffer, chunkSize: number, extra: Partial<EncodeOptions> = {}) =>
  encodeAwsChunked(data, {
    mode: 'signed',
    chunkSize,
    signingKey: KEY,
    seedSignature: SEED,
    date: DATE,
    scope: SCOPE,
    ...extra,
  });

async function* pieces(buf: Buffer, cuts: number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (const c of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (c <= at || c >= buf.length) continue;
    yield buf.subarray(at, c);
    at = c;
  }
  yield buf.subarray(at);
}

async function decodeAll(
  input: AsyncIterable<Uint8Array>,
  opts: ChunkedOptions,
): Promise<{ data: Buffer; trailers: Record<string, string> }> {
  const d = new AwsChunkedDecoder(opts);
  const out: Buffer[] = [];
  for await (const p of d.decode(input)) out.push(Buffer.from(p)); // copy: pieces are views
  expect(d.done).toBe(true);
  return { data: Buffer.concat(out), trailers: Object.fromEntries(d.trailers) };
}

async function failure(p: Promise<unknown>): Promise<S3Error> {
  const e = await p.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => err,
  );
  if (!(e instanceof S3Error)) throw e;
  return e;
}

// The body of AWS's documented signed streaming upload: 66560 'a's in 64 KiB + 1 KiB + 0.
const awsBody = Buffer.concat([
  Buffer.from(`10000;chunk-signature=${SIGS[0]}\r\n`),
  Buffer.alloc(65536, 'a'),
  Buffer.from(`\r\n400;chunk-signature=${SIGS[1]}\r\n`),
  Buffer.alloc(1024, 'a'),
  Buffer.from(`\r\n0;chunk-signature=${SIGS[2]}\r\n\r\n`),
]);

describe('signed aws-chunked (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)', () => {
  it('decodes the AWS documentation example end to end from its request headers', async () => {
    expect(awsBody.length).toBe(66824); // the example's Content-Length
    const headers = {
      host: 's3.amazonaws.com',
      'x-amz-date': DATE,
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '66560',
      'content-length': '66824',
      authorization: `AWS4-HMAC-SHA256 Credential=${AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=${SEED}`,
    };
    const auth = await authenticate(
      {
        method: 'PUT',
        rawPath: '/examplebucket/chunkObject.txt',
        query: [],
        headers,
        now: new Date('2013-05-24T00:00:00Z'),
      },
      async () => ({ secretKey: SK, userId: 'u' }),
    );
    const opts = chunkedOptionsFor(auth, headers);
    expect(opts).toMatchObject({
      mode: 'signed',
      decodedLength: 66560,
      seedSignature: SEED,
      date: DATE,
      scope: SCOPE,
    });
    const { data } = await decodeAll(Readable.from([awsBody]), opts);
    expect(data.equals(Buffer.alloc(66560, 'a'))).toBe(true);
  });

  it('our encoder reproduces the documented chunk signatures byte for byte', () => {
    expect(encodeSigned(Buffer.alloc(66560, 'a'), 65536).equals(awsBody)).toBe(true);
  });

  it('rejects a changed byte, a changed signature, a reordered chain', async () => {
    const flipped = Buffer.from(awsBody);
    flipped[100] = 'b'.charCodeAt(0);
    expect((await failure(decodeAll(pieces(flipped, []), signedOpts()))).code).toBe(
      'SignatureDoesNotMatch',
    );
    const badSig = Buffer.from(awsBody.toString('latin1').replace(SIGS[1]!, SIGS[0]!), 'latin1');
    expect((await failure(decodeAll(pieces(badSig, []), signedOpts()))).code).toBe(
      'SignatureDoesNotMatch',
    );
    const e = await failure(decodeAll(pieces(awsBody, []), signedOpts({ seedSignature: SIGS[0] })));
    expect(e.code).toBe('SignatureDoesNotMatch');
    expect(e.extra.StringToSign).toContain('AWS4-HMAC-SHA256-PAYLOAD\n');
  });

  it('fails at the end of a chunk whose signature fails, before anything after it', async () => {
    const body = encodeSigned(Buffer.alloc(300, 'x'), 100);
    const tampered = Buffer.from(body);
    const second = body.indexOf('x', body.indexOf('x') + 100); // no 'x' in the framing
    tampered[second + 50] = 'y'.charCodeAt(0);
    const got: Buffer[] = [];
    const d = new AwsChunkedDecoder(signedOpts());
    const e = await failure(
      (async () => {
        for await (const p of d.decode(pieces(tampered, []))) got.push(Buffer.from(p));
      })(),
    );
    expect(e.code).toBe('SignatureDoesNotMatch');
    // The bad chunk streamed through (a consumer commits nothing until the body ends),
    // but not a byte of the third chunk, and the body never completed.
    expect(Buffer.concat(got).toString()).toBe(`${'x'.repeat(150)}y${'x'.repeat(49)}`);
    expect(d.done).toBe(false);
  });

  it('streams a large signed chunk through without holding it (bounded by the input pieces)', async () => {
    // One 16 MiB chunk (the cap), fed in 64 KiB pieces as a socket would: the decoder must
    // pass bytes on as they arrive, not hold the chunk until its signature can be checked.
    const size = 16 * 1024 * 1024;
    const data = Buffer.alloc(size, 'm');
    const body = encodeSigned(data, size);
    const piece = 64 * 1024;
    let pulled = 0;
    async function* socket(): AsyncGenerator<Buffer> {
      for (let at = 0; at < body.length; at += piece) {
        const p = body.subarray(at, Math.min(body.length, at + piece));
        pulled += p.length;
        yield p;
      }
    }
    const d = new AwsChunkedDecoder(signedOpts({ decodedLength: size }));
    let emitted = 0;
    let maxHeld = 0; // bytes taken from the input and not yet passed on (framing included)
    let maxPiece = 0;
    for await (const p of d.decode(socket())) {
      emitted += p.length;
      maxPiece = Math.max(maxPiece, p.length);
      maxHeld = Math.max(maxHeld, pulled - emitted);
    }
    expect(d.done).toBe(true);
    expect(emitted).toBe(size);
    expect(maxPiece).toBeLessThanOrEqual(piece);
    expect(maxHeld).toBeLessThanOrEqual(piece + 256);
  });

  it('fails the body when the 2nd chunk of a large streamed upload has a bad signature', async () => {
    const data = Buffer.alloc(3 * 65536, 's');
    const body = encodeSigned(data, 65536);
    // Replace the second chunk's signature with the first's: well-formed, but wrong.
    const text = body.toString('latin1');
    const sigs = [...text.matchAll(/chunk-signature=([0-9a-f]{64})/g)].map((m) => m[1]!);
    const bad = Buffer.from(text.replace(sigs[1]!, sigs[0]!), 'latin1');
    let emitted = 0;
    const d = decodeAwsChunked(pieces(bad, [1000, 70_000, 100_000]), signedOpts());
    const e = await failure(
      (async () => {
        for await (const p of d.body) emitted += p.length;
      })(),
    );
    expect(e.code).toBe('SignatureDoesNotMatch');
    expect(emitted).toBe(2 * 65536); // up to the end of the bad chunk, no further
    expect((await failure(d.trailers())).code).toBe('SignatureDoesNotMatch');
  });

  it('checks x-amz-decoded-content-length both ways', async () => {
    expect(
      (await failure(decodeAll(pieces(awsBody, []), signedOpts({ decodedLength: 66561 })))).code,
    ).toBe('IncompleteBody');
    expect(
      (await failure(decodeAll(pieces(awsBody, []), signedOpts({ decodedLength: 1000 })))).code,
    ).toBe('IncompleteBody');
    await decodeAll(pieces(awsBody, []), signedOpts({ decodedLength: 66560 }));
  });

  it('rejects truncation, missing final chunk, data after the end, bad framing', async () => {
    for (const cut of [0, 10, 90, 40000, awsBody.length - 2, awsBody.length - 1]) {
      const e = await failure(decodeAll(pieces(awsBody.subarray(0, cut), []), signedOpts()));
      expect(e.code).toBe('IncompleteBody');
    }
    const noFinal = encodeSigned(Buffer.alloc(10, 'a'), 10).subarray(0, -88);
    expect((await failure(decodeAll(pieces(noFinal, []), signedOpts()))).code).toBe(
      'IncompleteBody',
    );
    const extra = Buffer.concat([awsBody, Buffer.from('x')]);
    expect((await failure(decodeAll(pieces(extra, []), signedOpts()))).code).toBe('InvalidRequest');
    const unsignedFraming = encodeAwsChunked(Buffer.alloc(10, 'a'), {
      mode: 'unsigned-trailer',
      chunkSize: 10,
    });
    expect((await failure(decodeAll(pieces(unsignedFraming, []), signedOpts()))).code).toBe(
      'InvalidRequest',
    );
    const lf = Buffer.from(awsBody.toString('latin1').replace('\r\n', '\n'), 'latin1');
    expect((await failure(decodeAll(pieces(lf, []), signedOpts()))).code).toBe('InvalidRequest');
    const trailers = encodeSigned(Buffer.alloc(10, 'a'), 10, {
      trailers: [['x-amz-checksum-crc32', 'AAAAAA==']],
    });
    expect((await failure(decodeAll(pieces(trailers, []), signedOpts()))).code).toBe(
      'InvalidRequest',
    );
  });
});

describe('unsigned aws-chunked with trailers (STREAMING-UNSIGNED-PAYLOAD-TRAILER)', () => {
  const data = Buffer.from('hello, trailing world! '.repeat(20));
  const crc = createHasher('CRC32');
  crc.update(data);
  const crcB64 = crc.digest().toString('base64');
  const body = encodeAwsChunked(data, {
    mode: 'unsigned-trailer',
    chunkSize: 64,
    trailers: [['x-amz-checksum-crc32', crcB64]],
  });

  it('decodes chunks and returns the trailers', async () => {
    const { data: out, trailers } = await decodeAll(pieces(body, []), {
      mode: 'unsigned-trailer',
      trailerNames: ['x-amz-checksum-crc32'],
      decodedLength: data.length,
    });
    expect(out.equals(data)).toBe(true);
    expect(trailers).toEqual({ 'x-amz-checksum-crc32': crcB64 });
  });

  it('decodes what the AWS SDK for JavaScript sends', async () => {
    class Crc32 {
      private h = createHasher('CRC32');
      update(d: Uint8Array): void {
        this.h.update(d);
      }
      async digest(): Promise<Uint8Array> {
        return this.h.digest();
      }
    }
    const encode = async (withChecksum: boolean) => {
      const source = Readable.from([
        data.subarray(0, 100),
        data.subarray(100, 101),
        data.subarray(101),
      ]);
      const stream = getAwsChunkedEncodingStream(source, {
        bodyLengthChecker: (b: Uint8Array) => b.length,
        ...(withChecksum && {
          base64Encoder: (b: Uint8Array) => Buffer.from(b).toString('base64'),
          checksumAlgorithmFn: Crc32,
          checksumLocationName: 'x-amz-checksum-crc32',
          streamHasher: (Ctor: new () => Crc32, s: Readable) =>
            new Promise<Uint8Array>((resolve, reject) => {
              const h = new Ctor();
              s.on('data', (d: Buffer) => h.update(d));
              s.on('end', () => resolve(h.digest()));
              s.on('error', reject);
            }),
        }),
      } as Parameters<typeof getAwsChunkedEncodingStream>[1]);
      const parts: Buffer[] = [];
      for await (const p of stream) parts.push(Buffer.from(p));
      return Buffer.concat(parts);
    };
    const sdkBody = await encode(true);
    const decoded = await decodeAll(pieces(sdkBody, []), {
      mode: 'unsigned-trailer',
      trailerNames: ['x-amz-checksum-crc32'],
    });
    expect(decoded.data.equals(data)).toBe(true);
    expect(decoded.trailers['x-amz-checksum-crc32']).toBe(crcB64);
    // Without a checksum the SDK ends the body right after "0\r\n".
    const bare = await encode(false);
    expect(bare.subarray(-3).toString()).toBe('0\r\n');
    expect(
      (
        await decodeAll(pieces(bare, []), { mode: 'unsigned-trailer', trailerNames: [] })
      ).data.equals(data),
    ).toBe(true);
  });

  it('enforces the trailers declared in x-amz-trailer', async () => {
    const declared = (names: string[]) => ({
      mode: 'unsigned-trailer' as const,
      trailerNames: names,
    });
    expect((await failure(decodeAll(pieces(body, []), declared([])))).code).toBe('InvalidRequest');
    expect(
      (
        await failure(
          decodeAll(pieces(body, []), declared(['x-amz-checksum-crc32', 'x-amz-checksum-sha1'])),
        )
      ).code,
    ).toBe('IncompleteBody');
    const twice = encodeAwsChunked(data, {
      mode: 'unsigned-trailer',
      chunkSize: 64,
      trailers: [['x-amz-checksum-crc32', crcB64]],
    });
    const dup = Buffer.concat([
      twice.subarray(0, -2),
      Buffer.from(`x-amz-checksum-crc32:${crcB64}\r\n\r\n`),
    ]);
    expect((await failure(decodeAll(pieces(dup, []), { mode: 'unsigned-trailer' }))).code).toBe(
      'InvalidRequest',
    );
    const malformed = Buffer.concat([Buffer.from('3\r\nabc\r\n0\r\nno colon here\r\n\r\n')]);
    expect(
      (await failure(decodeAll(pieces(malformed, []), { mode: 'unsigned-trailer' }))).code,
    ).toBe('InvalidRequest');
    // Unconstrained when the caller passes no list; names are lowercased, values trimmed.
    const odd = Buffer.from('3\r\nabc\r\n0\r\nX-Amz-Checksum-SHA1 :  v==  \r\n\r\n');
    expect((await decodeAll(pieces(odd, []), { mode: 'unsigned-trailer' })).trailers).toEqual({
      'x-amz-checksum-sha1': 'v==',
    });
  });

  it('ignores chunk extensions and accepts upper-case hex sizes', async () => {
    const b = Buffer.from('A;ext=1\r\n0123456789\r\n0\r\n\r\n');
    expect((await decodeAll(pieces(b, []), { mode: 'unsigned-trailer' })).data.toString()).toBe(
      '0123456789',
    );
  });

  it('streams unsigned data through without waiting for the chunk to complete', async () => {
    const big = encodeAwsChunked(Buffer.alloc(100_000, 'z'), {
      mode: 'unsigned-trailer',
      chunkSize: 100_000,
    });
    const sizes: number[] = [];
    for await (const p of new AwsChunkedDecoder({ mode: 'unsigned-trailer' }).decode(
      pieces(big, [1000, 2000, 50_000]),
    )) {
      sizes.push(p.length);
    }
    // The first piece is what the first input buffer held after the 7-byte size line.
    expect(sizes).toEqual([993, 1000, 48_000, 50_007]);
  });
});

describe('signed aws-chunked with trailers (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER)', () => {
  it('matches the trailer signature of the AWS CRT test vector', () => {
    const trailers = new Map([
      ['first', '1st'],
      ['second', '2nd'],
      ['third', '3rd'],
    ]);
    expect(trailerSignature(KEY, DATE, SCOPE, SIGS[2]!, trailers)).toBe(
      'df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c',
    );
  });

  const opts = signedOpts({ mode: 'signed-trailer', trailerNames: ['x-amz-checksum-crc32c'] });
  const body = encodeSigned(Buffer.alloc(66560, 'a'), 65536, {
    mode: 'signed-trailer',
    trailers: [['x-amz-checksum-crc32c', 'sOO8/Q==']],
  });

  it('decodes and verifies the chunk chain and the trailer signature', async () => {
    const { data, trailers } = await decodeAll(pieces(body, []), opts);
    expect(data.length).toBe(66560);
    expect(trailers).toEqual({ 'x-amz-checksum-crc32c': 'sOO8/Q==' });
  });

  it('rejects a tampered trailer value, a missing or wrong trailer signature', async () => {
    const s = body.toString('latin1');
    const tampered = Buffer.from(s.replace('sOO8/Q==', 'sOO8/R=='), 'latin1');
    expect((await failure(decodeAll(pieces(tampered, []), opts))).code).toBe(
      'SignatureDoesNotMatch',
    );
    const noSig = Buffer.from(s.replace(/x-amz-trailer-signature:[0-9a-f]{64}\r\n/, ''), 'latin1');
    expect((await failure(decodeAll(pieces(noSig, []), opts))).code).toBe('InvalidRequest');
    const wrongSig = Buffer.from(
      s.replace(/(x-amz-trailer-signature:)[0-9a-f]{64}/, `$1${'0'.repeat(64)}`),
      'latin1',
    );
    expect((await failure(decodeAll(pieces(wrongSig, []), opts))).code).toBe(
      'SignatureDoesNotMatch',
    );
    const sigNotLast = Buffer.from(
      s.replace(/(x-amz-trailer-signature:[0-9a-f]{64}\r\n)/, '$1x-amz-meta:1\r\n'),
      'latin1',
    );
    expect((await failure(decodeAll(pieces(sigNotLast, []), opts))).code).toBe('InvalidRequest');
  });
});

describe('robustness', () => {
  const data = Buffer.from(Array.from({ length: 700 }, (_, i) => (i * 7) % 256));
  const bodies: [string, Buffer, ChunkedOptions][] = [
    ['signed', encodeSigned(data, 256), signedOpts({ decodedLength: data.length })],
    [
      'signed-trailer',
      encodeSigned(data, 300, {
        mode: 'signed-trailer',
        trailers: [['x-amz-checksum-crc32', 'AAAAAA==']],
      }),
      signedOpts({ mode: 'signed-trailer', trailerNames: ['x-amz-checksum-crc32'] }),
    ],
    [
      'unsigned-trailer',
      encodeAwsChunked(data, {
        mode: 'unsigned-trailer',
        chunkSize: 200,
        trailers: [['x-amz-checksum-crc32', 'AAAAAA==']],
      }),
      { mode: 'unsigned-trailer', trailerNames: ['x-amz-checksum-crc32'] },
    ],
  ];

  for (const [name, body, opts] of bodies) {
    it(`${name}: the same result for the body split at every single boundary`, async () => {
      const want = await decodeAll(pieces(body, []), opts);
      expect(want.data.equals(data)).toBe(true);
      for (let cut = 1; cut < body.length; cut++) {
        const got = await decodeAll(pieces(body, [cut]), opts);
        if (!got.data.equals(data)) throw new Error(`wrong data when split at ${cut}`);
        expect(got.trailers).toEqual(want.trailers);
      }
    });

    it(`${name}: the same result for random splits, down to single bytes`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.nat({ max: body.length }), { maxLength: 60 }),
          async (cuts) => {
            const got = await decodeAll(pieces(body, cuts), opts);
            expect(got.data.equals(data)).toBe(true);
          },
        ),
        { numRuns: 100 },
      );
      const oneByOne = await decodeAll(
        pieces(
          body,
          Array.from({ length: body.length }, (_, i) => i),
        ),
        opts,
      );
      expect(oneByOne.data.equals(data)).toBe(true);
    });

    it(`${name}: a mutated body fails with an S3Error or decodes to the original bytes`, async () => {
      const signed = opts.mode !== 'unsigned-trailer';
      await fc.assert(
        fc.asyncProperty(
          fc.nat({ max: body.length - 1 }),
          fc.nat({ max: 8 }),
          fc.uint8Array({ maxLength: 8 }),
          fc.array(fc.nat({ max: body.length }), { maxLength: 5 }),
          async (at, del, ins, cuts) => {
            const mutated = Buffer.concat([body.subarray(0, at), ins, body.subarray(at + del)]);
            try {
              const got = await decodeAll(pieces(mutated, cuts), opts);
              // A signed body that still decodes can only have changed in ways the
              // signatures do not cover (hex case): the data must be the original.
              if (signed) expect(got.data.equals(data)).toBe(true);
            } catch (e) {
              if (!(e instanceof S3Error)) throw e;
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  }

  it('arbitrary bytes fail with an S3Error, never anything else', async () => {
    const modes: ChunkedOptions[] = [
      signedOpts(),
      signedOpts({ mode: 'signed-trailer' }),
      { mode: 'unsigned-trailer' },
    ];
    const chunky = fc.array(
      fc.oneof(
        fc.uint8Array({ maxLength: 40 }),
        fc
          .constantFrom(
            '\r\n',
            '0\r\n',
            '0\r\n\r\n',
            '5\r\nhello\r\n',
            ';chunk-signature=',
            'ffffffff\r\n',
            'x-amz-checksum-crc32:',
            '1000000;chunk-signature=',
          )
          .map((s) => Buffer.from(s)),
      ),
      { maxLength: 12 },
    );
    await fc.assert(
      fc.asyncProperty(chunky, fc.nat({ max: 2 }), async (parts, m) => {
        const input = Buffer.concat(parts);
        try {
          await decodeAll(pieces(input, [3, 17]), modes[m]!);
        } catch (e) {
          if (!(e instanceof S3Error)) throw e;
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('refuses oversized chunks before reading them, and endless lines without buffering', async () => {
    let pulled = 0;
    async function* endless(chunk: Buffer): AsyncGenerator<Buffer> {
      for (;;) {
        pulled++;
        yield chunk;
      }
    }
    const head = Buffer.from('1000001\r\n');
    const e1 = await failure(decodeAll(pieces(head, []), { mode: 'unsigned-trailer' }));
    expect(e1.code).toBe('InvalidRequest'); // not IncompleteBody: the size alone is refused
    const e2 = await failure(
      decodeAll(pieces(Buffer.from('11\r\n'), []), { mode: 'unsigned-trailer', maxChunkSize: 16 }),
    );
    expect(e2.code).toBe('InvalidRequest');
    const e3 = await failure(
      decodeAll(endless(Buffer.alloc(1024, 'f')), { mode: 'unsigned-trailer' }),
    );
    expect(e3.code).toBe('InvalidRequest');
    expect(pulled).toBeLessThanOrEqual(6); // a 4 KiB line cap, not the whole stream
    pulled = 0;
    const e4 = await failure(
      decodeAll(endless(Buffer.from('x-amz-a:b\r\n')), { mode: 'unsigned-trailer' }),
    );
    expect(e4.code).toBe('InvalidRequest'); // not a chunk size line at all
  });

  it('caps the number of trailers', async () => {
    const many = Array.from({ length: 40 }, (_, i) => `x-amz-t${i}:v\r\n`).join('');
    const e = await failure(
      decodeAll(pieces(Buffer.from(`0\r\n${many}\r\n`), []), { mode: 'unsigned-trailer' }),
    );
    expect(e.code).toBe('InvalidRequest');
  });
});

describe('decodeAwsChunked', () => {
  const data = Buffer.alloc(1000, 'q');
  const body = encodeAwsChunked(data, {
    mode: 'unsigned-trailer',
    chunkSize: 100,
    trailers: [['x-amz-checksum-crc32', 'AAAAAA==']],
  });

  it('hands out the trailers once the body has been read', async () => {
    const d = decodeAwsChunked(pieces(body, [5]), { mode: 'unsigned-trailer' });
    const parts: Buffer[] = [];
    for await (const p of d.body) parts.push(p);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(await d.trailers()).toEqual({ 'x-amz-checksum-crc32': 'AAAAAA==' });
  });

  it('rejects the trailers with the body error, or IncompleteBody when abandoned', async () => {
    const bad = decodeAwsChunked(pieces(body.subarray(0, 500), []), { mode: 'unsigned-trailer' });
    await failure(
      (async () => {
        for await (const _ of bad.body);
      })(),
    );
    expect((await failure(bad.trailers())).code).toBe('IncompleteBody');

    let returned = false;
    async function* source(): AsyncGenerator<Buffer> {
      try {
        yield body;
      } finally {
        returned = true;
      }
    }
    const abandoned = decodeAwsChunked(source(), { mode: 'unsigned-trailer' });
    for await (const _ of abandoned.body) break;
    expect((await failure(abandoned.trailers())).code).toBe('IncompleteBody');
    expect(returned).toBe(true); // the input was closed, not left dangling
  });

  it('derives options from an authenticated request', () => {
    const auth = {
      accessKey: 'a',
      userId: 'u',
      secretKey: 's',
      signingKey: KEY,
      seedSignature: SEED,
      date: DATE,
      region: 'us-east-1',
      scope: SCOPE,
      contentSha256: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
      streaming: 'signed-trailer' as const,
      anonymous: false,
      version: 4 as const,
      presigned: false,
    };
    expect(
      chunkedOptionsFor(auth, {
        'x-amz-decoded-content-length': '10',
        'x-amz-trailer': 'X-Amz-Checksum-CRC32, x-amz-checksum-sha1',
      }),
    ).toMatchObject({
      mode: 'signed-trailer',
      decodedLength: 10,
      trailerNames: ['x-amz-checksum-crc32', 'x-amz-checksum-sha1'],
      signingKey: KEY,
    });
    expect(() => chunkedOptionsFor({ ...auth, streaming: 'signed' }, {})).toThrow(S3Error);
    expect(() => chunkedOptionsFor(auth, { 'x-amz-decoded-content-length': '1e3' })).toThrow(
      S3Error,
    );
    expect(() => chunkedOptionsFor({ ...auth, streaming: 'none' }, {})).toThrow(S3Error);
    expect(chunkedOptionsFor({ ...auth, streaming: 'unsigned-trailer' }, {})).toEqual({
      mode: 'unsigned-trailer',
      maxChunkSize: undefined,
      trailerNames: [],
    });
  });
});
