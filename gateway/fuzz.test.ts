// Fuzzing the gateway over real HTTP with signed requests: arbitrary XML bodies on every
// XML-consuming operation and arbitrary keys on PUT. Every answer must be a success or
// S3 error XML with a 4xx status (never a 5xx, never a dropped connection), and the
// bucket must afterwards hold exactly the objects whose PUT was acknowledged.
import crypto from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';
import { signRequest, uriEncode } from './auth/sigv4.ts';

let srv: TestServer;

beforeAll(async () => {
  srv = await startTestServer(tempDir('ks-fuzz-'));
  await send('PUT', '/fuzz');
});
afterAll(async () => {
  await srv?.close();
});

async function send(
  method: string,
  rawPath: string,
  query: [string, string][] = [],
  body?: Buffer,
) {
  const url = new URL(srv.endpoint);
  const payloadHash = crypto
    .createHash('sha256')
    .update(body ?? Buffer.alloc(0))
    .digest('hex');
  const signed = signRequest({
    method,
    rawPath,
    query,
    headers: { host: url.host },
    accessKey: srv.accessKey,
    secretKey: srv.secretKey,
    payloadHash,
  });
  const qs = query
    .map(([k, v]) => (v === '' ? uriEncode(k) : `${uriEncode(k)}=${uriEncode(v)}`))
    .join('&');
  const res = await fetch(`${srv.endpoint}${rawPath}${qs ? `?${qs}` : ''}`, {
    method,
    headers: signed.headers,
    body,
  });
  return { status: res.status, text: await res.text() };
}

function expectS3Answer(r: { status: number; text: string }): void {
  expect(r.status, r.text).toBeLessThan(500);
  if (r.status >= 400)
    expect(r.text).toMatch(
      /^<\?xml[^>]*>\s*<Error><Code>[A-Za-z]+<\/Code><Message>[^<]+<\/Message>/,
    );
}

const xmlish = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc
    .tuple(
      fc.constantFrom(
        'Delete',
        'CompleteMultipartUpload',
        'CreateBucketConfiguration',
        'Object',
        'Part',
        'x',
      ),
      fc.array(
        fc.tuple(
          fc.constantFrom(
            'Object',
            'Key',
            'Part',
            'PartNumber',
            'ETag',
            'Quiet',
            'LocationConstraint',
          ),
          fc.string({ maxLength: 30 }),
        ),
        { maxLength: 6 },
      ),
    )
    .map(
      ([root, kids]) => `<${root}>${kids.map(([k, v]) => `<${k}>${v}</${k}>`).join('')}</${root}>`,
    ),
);

describe('gateway fuzzing', () => {
  it('answers arbitrary XML bodies with S3 errors or success, never 5xx', async () => {
    const upload = await send('POST', '/fuzz/mp', [['uploads', '']]);
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(upload.text)![1]!;
    await fc.assert(
      fc.asyncProperty(xmlish, fc.integer({ min: 0, max: 2 }), async (xml, target) => {
        const body = Buffer.from(xml);
        const r =
          target === 0
            ? await send('POST', '/fuzz', [['delete', '']], body)
            : target === 1
              ? await send('POST', '/fuzz/mp', [['uploadId', uploadId]], body)
              : await send('PUT', `/fz-${crypto.randomBytes(4).toString('hex')}`, [], body);
        expectS3Answer(r);
      }),
      { numRuns: 150 },
    );
  });

  it('stores exactly the acknowledged objects for arbitrary keys', async () => {
    const acked = new Set<string>();
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 0, maxLength: 300, unit: 'binary' }), async (key) => {
        const path = `/fuzz/${key
          .split('/')
          .map((s) => uriEncode(s))
          .join('/')}`;
        const r = await send('PUT', path, [], Buffer.from(`v:${key}`));
        expectS3Answer(r);
        if (r.status === 200) acked.add(key);
      }),
      { numRuns: 200 },
    );
    const listed: string[] = [];
    let token: string | undefined;
    do {
      const q: [string, string][] = [
        ['list-type', '2'],
        ['encoding-type', 'url'],
      ];
      if (token) q.push(['continuation-token', token]);
      const r = await send('GET', '/fuzz', q);
      for (const m of r.text.matchAll(/<Key>([^<]*)<\/Key>/g)) listed.push(m[1]!);
      token = /<NextContinuationToken>([^<]+)</.exec(r.text)?.[1];
    } while (token);
    const stored = new Set(
      listed
        .map((k) => decodeURIComponent(k.replace(/&amp;/g, '&')))
        .filter((k) => !k.startsWith('mp')),
    );
    expect(acked.size).toBeGreaterThan(50);
    for (const k of acked)
      expect(stored.has(k), `acknowledged key ${JSON.stringify(k)} missing`).toBe(true);
    for (const k of stored)
      expect(acked.has(k), `unacknowledged key ${JSON.stringify(k)} stored`).toBe(true);
  });
});
