// `Expect: 100-continue` is answered after authentication (issue 12 item 8): a client that
// waits for the go-ahead gets it only once the request's head has passed the signature
// check (SigV4 header or query, SigV2, aws-chunked modes) and what else the head can
// decide — size, bucket, access. A refusal comes instead of the 100, with the S3 error XML
// and Connection: close, and no byte of the body is asked for. Raw sockets, so that the
// 100 (or its absence) is seen as sent. Also the gateway's only anonymous routes, the
// Kubernetes probes /_ks/healthz and /_ks/readyz, and /_ks/metrics behind its token.
import crypto from 'node:crypto';
import net from 'node:net';
import { CreateBucketCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { MetadataError, type MetadataStore } from '../directory/model/api.ts';
import { useS3Server } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';
import { encodeAwsChunked } from './auth/chunked.ts';
import { presignUrl, signRequest, signRequestV2 } from './auth/sign.ts';
import { STREAMING_SIGNED, UNSIGNED_PAYLOAD } from './auth/sigv4-canonical.ts';

const LIMIT = 1024 * 1024;
const BUCKET = 'continue';
let srv: TestServer;
let s3: S3Client;
let port: number;
let host: string;
/** Makes the metadata store's getBucket fail as an unreachable directory's would. */
let directoryDown = false;
const failingWhenDown = (m: MetadataStore): MetadataStore =>
  new Proxy(m, {
    get(target, prop, receiver) {
      if (prop === 'getBucket' && directoryDown) {
        return async () => {
          throw new MetadataError('Unavailable', 'no directory leader');
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
useS3Server(
  () =>
    startTestServer(tempDir('ks-continue-'), { maxObjectSize: LIMIT, wrapMeta: failingWhenDown }),
  (started) => {
    ({ srv, s3 } = started);
    port = Number(new URL(srv.endpoint).port);
    host = `127.0.0.1:${port}`;
  },
);

beforeAll(async () => {
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  // A bucket that exists but is someone else's.
  await srv.meta.createBucket({
    name: 'theirs',
    owner: 'someone-else',
    createdAt: Date.now(),
    region: 'us-east-1',
  });
});

interface Exchange {
  /** Everything the server sent, as latin1 text. */
  text: string;
  /** The server sent `100 Continue` first (and so the body was sent). */
  continued: boolean;
  /** The server closed the connection (within the wait). */
  closed: boolean;
}

/**
 * Sends a request head with Expect: 100-continue and the body only after a 100, as
 * aws-cli does (it would send it after a second without one; this client never does).
 * Ends once the final response is in and the server closed the connection, or did not
 * within `closeWaitMs`; or `waitMs` after the server last sent anything.
 */
function exchange(
  method: string,
  target: string,
  headers: Record<string, string>,
  body: Buffer,
  { waitMs = 3_000, closeWaitMs = 300 } = {},
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    let continued = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, continued, closed });
    };
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => done(false), ms);
    };
    /** The final response (after any 100) has come in whole. */
    const complete = () => {
      const final = continued ? text.slice(CONTINUE.length) : text;
      const end = final.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const len = /\r\ncontent-length: *(\d+)/i.exec(final.slice(0, end));
      return final.length >= end + 4 + Number(len?.[1] ?? 0);
    };
    sock.on('error', reject);
    sock.on('connect', () => {
      const lines = [`${method} ${target} HTTP/1.1`];
      for (const [k, v] of Object.entries({ ...headers, expect: '100-continue' })) {
        lines.push(`${k}: ${v}`);
      }
      sock.write(`${lines.join('\r\n')}\r\n\r\n`);
      arm(waitMs);
    });
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (!continued && text.startsWith(CONTINUE)) {
        continued = true;
        sock.write(body);
      }
      arm(complete() ? closeWaitMs : waitMs);
    });
    sock.on('end', () => done(true));
  });
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const creds = () => ({ accessKey: srv.accessKey, secretKey: srv.secretKey });
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** A SigV4 header-signed PUT of `body` to bucket/key, as the SDKs and aws-cli send it. */
function signedPut(
  bucket: string,
  key: string,
  body: Buffer,
  opts: { secretKey?: string; accessKey?: string; payloadHash?: string; length?: number } = {},
): { target: string; headers: Record<string, string> } {
  const rawPath = `/${bucket}/${key}`;
  const s = signRequest({
    method: 'PUT',
    rawPath,
    headers: { host, 'content-length': String(opts.length ?? body.length) },
    ...creds(),
    ...(opts.accessKey ? { accessKey: opts.accessKey } : {}),
    ...(opts.secretKey ? { secretKey: opts.secretKey } : {}),
    payloadHash: opts.payloadHash ?? sha256(body),
  });
  return { target: rawPath, headers: s.headers };
}

async function stored(key: string, bucket = BUCKET): Promise<Buffer | null> {
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } catch (e) {
    if ((e as { name?: string }).name === 'NoSuchKey') return null;
    throw e;
  }
}

/** The refusal came first, whole, closed the connection, and no 100 was sent. */
function expectRefused(x: Exchange, status: number, code: string): void {
  expect(x.continued, x.text).toBe(false);
  expect(x.text).not.toContain('100 Continue');
  expect(x.text.startsWith(`HTTP/1.1 ${status} `), x.text).toBe(true);
  expect(x.text).toContain(`<Code>${code}</Code>`);
  expect(x.text).toMatch(/\r\nconnection: close\r\n/i);
  expect(x.closed, 'the server closes the connection after a refusal').toBe(true);
}

function expectAccepted(x: Exchange, status = 200): void {
  expect(x.continued, x.text).toBe(true);
  const final = x.text.slice(CONTINUE.length);
  expect(final.startsWith(`HTTP/1.1 ${status} `), final).toBe(true);
}

describe('Expect: 100-continue is answered after authentication', () => {
  it('a bad signature: 403 SignatureDoesNotMatch instead of the 100, nothing stored', async () => {
    const body = Buffer.alloc(64 * 1024, 1);
    const { target, headers } = signedPut(BUCKET, 'bad-sig', body, {
      secretKey: 'not-the-secret-key-0123456789abcdefghijk',
    });
    expectRefused(await exchange('PUT', target, headers, body), 403, 'SignatureDoesNotMatch');
    expect(await stored('bad-sig')).toBeNull();
  });

  it('an unknown access key: 403 InvalidAccessKeyId; no credentials: AccessDenied', async () => {
    const body = Buffer.from('x'.repeat(1000));
    const unknown = signedPut(BUCKET, 'nokey', body, { accessKey: 'KSNOSUCHKEY000000000' });
    expectRefused(
      await exchange('PUT', unknown.target, unknown.headers, body),
      403,
      'InvalidAccessKeyId',
    );
    const anon = { host, 'content-length': String(body.length) };
    expectRefused(await exchange('PUT', `/${BUCKET}/anon`, anon, body), 403, 'AccessDenied');
    // As without Expect: an anonymous caller learns a bucket does not exist, nothing more.
    expectRefused(await exchange('PUT', '/nosuchbucket/anon', anon, body), 404, 'NoSuchBucket');
    expect(await stored('nokey')).toBeNull();
    expect(await stored('anon')).toBeNull();
  });

  it('a signed request refused from its head: no such bucket, not yours, too large', async () => {
    const body = Buffer.alloc(1000, 2);
    const missing = signedPut('nosuchbucket', 'k', body);
    expectRefused(
      await exchange('PUT', missing.target, missing.headers, body),
      404,
      'NoSuchBucket',
    );
    const theirs = signedPut('theirs', 'k', body);
    expectRefused(await exchange('PUT', theirs.target, theirs.headers, body), 403, 'AccessDenied');
    // The declared size decides: the body (which would be LIMIT + 1 bytes) is never asked for.
    const big = signedPut(BUCKET, 'big', body, {
      length: LIMIT + 1,
      payloadHash: UNSIGNED_PAYLOAD,
    });
    const x = await exchange('PUT', big.target, big.headers, body);
    expectRefused(x, 400, 'EntityTooLarge');
    expect(x.text).toContain(`<MaxSizeAllowed>${LIMIT}</MaxSizeAllowed>`);
    expect(await stored('big')).toBeNull();
  });

  it('a good signature: 100 Continue, then 200 once the body is in, and the object is stored', async () => {
    const body = crypto.randomBytes(200 * 1024);
    const { target, headers } = signedPut(BUCKET, 'good', body);
    expectAccepted(await exchange('PUT', target, headers, body));
    expect((await stored('good'))?.equals(body)).toBe(true);
    // UNSIGNED-PAYLOAD too.
    const u = signedPut(BUCKET, 'unsigned', body, { payloadHash: UNSIGNED_PAYLOAD });
    expectAccepted(await exchange('PUT', u.target, u.headers, body));
    expect((await stored('unsigned'))?.equals(body)).toBe(true);
  });

  it('the payload hash is still checked, after the body', async () => {
    const body = Buffer.from('the body as sent');
    const { target, headers } = signedPut(BUCKET, 'mismatch', body, {
      payloadHash: sha256(Buffer.from('another body')),
    });
    const x = await exchange('PUT', target, headers, body);
    expectAccepted(x, 400);
    expect(x.text).toContain('<Code>XAmzContentSHA256Mismatch</Code>');
    expect(await stored('mismatch')).toBeNull();
  });

  it('presigned URLs (V4) and SigV2 headers are judged from the head as well', async () => {
    const body = crypto.randomBytes(10_000);
    const url = presignUrl({
      method: 'PUT',
      rawPath: `/${BUCKET}/presigned`,
      headers: { host },
      ...creds(),
      expiresIn: 60,
    });
    const len = { host, 'content-length': String(body.length) };
    expectAccepted(await exchange('PUT', url, len, body));
    expect((await stored('presigned'))?.equals(body)).toBe(true);
    const forged = url.replace(/X-Amz-Signature=[0-9a-f]{4}/, 'X-Amz-Signature=0000');
    expectRefused(await exchange('PUT', forged, len, body), 403, 'SignatureDoesNotMatch');

    const v2 = (secretKey: string) =>
      signRequestV2({
        method: 'PUT',
        rawPath: `/${BUCKET}/v2`,
        headers: { host, 'content-type': 'application/octet-stream' },
        accessKey: srv.accessKey,
        secretKey,
      });
    const v2len = { 'content-length': String(body.length) };
    expectRefused(
      await exchange('PUT', `/${BUCKET}/v2`, { ...v2('wrong-secret-0123456789'), ...v2len }, body),
      403,
      'SignatureDoesNotMatch',
    );
    expectAccepted(
      await exchange('PUT', `/${BUCKET}/v2`, { ...v2(srv.secretKey), ...v2len }, body),
    );
    expect((await stored('v2'))?.equals(body)).toBe(true);
  });

  it('aws-chunked (signed streaming): the decoded length is judged, chunks verified after', async () => {
    const data = crypto.randomBytes(100_000);
    const put = (key: string, decodedLength: number, secretKey = srv.secretKey) => {
      const s = signRequest({
        method: 'PUT',
        rawPath: `/${BUCKET}/${key}`,
        headers: {
          host,
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(decodedLength),
        },
        accessKey: srv.accessKey,
        secretKey,
        payloadHash: STREAMING_SIGNED,
      });
      const body = encodeAwsChunked(data, {
        mode: 'signed',
        chunkSize: 64 * 1024,
        signingKey: s.signingKey,
        seedSignature: s.signature,
        date: s.amzDate,
        scope: s.scope,
      });
      const headers = { ...s.headers, 'content-length': String(body.length) };
      return exchange('PUT', `/${BUCKET}/${key}`, headers, body);
    };
    expectAccepted(await put('chunked', data.length));
    expect((await stored('chunked'))?.equals(data)).toBe(true);
    expectRefused(await put('chunked-big', LIMIT + 1), 400, 'EntityTooLarge');
    expectRefused(
      await put('chunked-forged', data.length, 'wrong-secret-0123456789'),
      403,
      'SignatureDoesNotMatch',
    );
  });

  it('the connection stays usable after an accepted request (keep-alive as before)', async () => {
    const body = Buffer.from('keep');
    const { target, headers } = signedPut(BUCKET, 'keep', body);
    const x = await exchange('PUT', target, headers, body);
    expectAccepted(x);
    expect(x.closed).toBe(false);
  });
});

describe('the anonymous surface', () => {
  it('the probes /_ks/healthz and /_ks/readyz answer ok to anyone, and say nothing else', async () => {
    for (const probe of ['healthz', 'readyz']) {
      const r = await fetch(`${srv.endpoint}/_ks/${probe}`);
      expect(r.status).toBe(200);
      expect(await r.text()).toBe('ok\n');
      expect((await fetch(`${srv.endpoint}/_ks/${probe}`, { method: 'HEAD' })).status).toBe(200);
    }
    // Everything else still needs a signature.
    expect((await fetch(`${srv.endpoint}/`)).status).toBe(403);
    expect((await fetch(`${srv.endpoint}/_ks/admin/users`)).status).toBe(403);
  });

  it("/_ks/metrics wants the metrics bearer token, as a store's /metrics (issue 12)", async () => {
    const url = `${srv.endpoint}/_ks/metrics`;
    for (const authorization of [undefined, 'Bearer wrong', `Bearer ${srv.metricsToken}x`]) {
      const r = await fetch(url, { headers: authorization ? { authorization } : {} });
      expect([r.status, await r.text()]).toEqual([403, expect.stringContaining('AccessDenied')]);
      expect((await fetch(url, { method: 'HEAD' })).status).toBe(403);
    }
    const r = await fetch(url, { headers: { authorization: `Bearer ${srv.metricsToken}` } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await r.text()).toMatch(/^# (HELP|TYPE) kubestorage_/m);
  });

  it('/_ks/readyz is 503 while the directory does not answer; /_ks/healthz stays ok', async () => {
    directoryDown = true;
    try {
      const ready = await fetch(`${srv.endpoint}/_ks/readyz`);
      expect([ready.status, await ready.text()]).toEqual([503, 'unavailable\n']);
      expect((await fetch(`${srv.endpoint}/_ks/healthz`)).status).toBe(200);
    } finally {
      directoryDown = false;
    }
    expect((await fetch(`${srv.endpoint}/_ks/readyz`)).status).toBe(200);
  });
});
