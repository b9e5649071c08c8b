// What an authenticated client can hold on a gateway: a capped number of bodies being
// received at once (one more is 503 SlowDown before its body is read), bounded time for
// headers, for silence and for a whole request, and aws-chunked bodies streamed through
// rather than buffered a signed chunk at a time. Raw sockets stand in for stalled clients.
import net from 'node:net';
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../common/config.ts';
import { ObjectData } from '../data-path/object-data.ts';
import type { NeedleStore } from '../store-node/api.ts';
import { s3Error } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServerWithClient, type TestServer } from '../test/kit/test-server.ts';
import { sleep, until } from '../test/kit/until.ts';
import { encodeAwsChunked } from './auth/chunked.ts';
import { signRequest } from './auth/sign.ts';

const ACCESS = 'KSTESTACCESSKEY00001';
const SECRET = 'test-secret-key-0123456789abcdefghijklmn';
const CHUNK = 16 * 1024;

interface Srv extends TestServer {
  s3: S3Client;
}

/** A gateway (embedded store and LevelDB) with these gateway settings and 16 KiB needles. */
const start = (gateway: Partial<Config['gateway']>): Promise<Srv> =>
  startTestServerWithClient(tempDir('ks-gwlimits-'), {
    chunkSize: CHUNK,
    maxVolumeSize: 64 * 1024 * 1024,
    gateway,
    embeddedMetadata: true,
  });

/** The head of a signed request (UNSIGNED-PAYLOAD unless `payloadHash`), ready to write. */
function head(
  srv: Srv,
  method: string,
  rawPath: string,
  headers: Record<string, string>,
  payloadHash?: string,
  query: [string, string][] = [],
): string {
  const signed = signRequest({
    method,
    rawPath,
    query,
    headers: { host: `127.0.0.1:${srv.port}`, ...headers },
    accessKey: ACCESS,
    secretKey: SECRET,
    payloadHash,
  });
  const lines = Object.entries(signed.headers).map(([k, v]) => `${k}: ${v}`);
  const target = query.length === 0 ? rawPath : `${rawPath}?${new URLSearchParams(query)}`;
  return `${method} ${target} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

interface Raw {
  socket: net.Socket;
  /** Everything received until the connection closed, and when it closed (ms after start). */
  closed: Promise<{ text: string; afterMs: number }>;
  /** The first response, once its head and its Content-Length of body have arrived. */
  firstResponse: Promise<string>;
}

/** `p`, or a failure naming `what` after `ms` (so a missing limit fails fast and clearly). */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A raw connection that writes `data` and then holds back whatever the client would send. */
function raw(srv: Srv, data: string | Buffer): Raw {
  const socket = net.connect(srv.port, '127.0.0.1');
  const t0 = Date.now();
  let text = '';
  let gotFirst: (s: string) => void = () => {};
  const firstResponse = new Promise<string>((r) => (gotFirst = r));
  socket.on('data', (d) => {
    text += d.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return;
    const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
    if (text.length >= end + 4 + Number(length?.[1] ?? 0)) gotFirst(text);
  });
  socket.on('error', () => {});
  const closed = new Promise<{ text: string; afterMs: number }>((r) =>
    socket.on('close', () => r({ text, afterMs: Date.now() - t0 })),
  );
  socket.write(data);
  return { socket, closed, firstResponse };
}

/** A PUT of `size` bytes of which only `sent` are written now; the rest by `finish()`. */
function heldUpload(srv: Srv, key: string, size: number, sent: number) {
  const body = Buffer.alloc(size, key.charCodeAt(key.length - 1));
  const r = raw(
    srv,
    Buffer.concat([
      Buffer.from(head(srv, 'PUT', `/bkt/${key}`, { 'content-length': String(size) })),
      body.subarray(0, sent),
    ]),
  );
  return {
    ...r,
    finish() {
      r.socket.write(body.subarray(sent));
    },
  };
}

const needles = async (srv: Srv) => (await srv.store.status()).needles;

/** Waits for the live needle count to settle at `n` (freeing is best effort, in the background). */
const needlesBackTo = (srv: Srv, n: number) =>
  until(`needles back to ${n}`, async () => (await needles(srv)) === n, 5_000);

async function exists(srv: Srv, key: string): Promise<boolean> {
  try {
    await srv.s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: key }));
    return true;
  } catch (e) {
    if ((await s3Error(Promise.reject(e))).status === 404) return false;
    throw e;
  }
}

describe('concurrent uploads', () => {
  const CAP = 3;
  let srv: Srv;
  beforeAll(async () => {
    srv = await start({ maxConcurrentUploads: CAP });
    await srv.s3.send(new CreateBucketCommand({ Bucket: 'bkt' }));
  });
  afterAll(() => srv?.close());

  /** CAP uploads, each past its first needle (so inside the body), bodies held back. */
  async function holdCap(prefix: string) {
    const before = await needles(srv);
    const held = Array.from({ length: CAP }, (_, i) =>
      heldUpload(srv, `${prefix}${i}`, 4 * CHUNK, CHUNK + 100),
    );
    await until('every held upload wrote a needle', async () =>
      (await needles(srv)) >= before + CAP ? true : undefined,
    );
    return held;
  }

  it('answers one upload past the cap 503 SlowDown at once, without reading its body; all work again after', async () => {
    const held = await holdCap('held');
    // Twelve more stalled uploads (8 MiB each, not a byte of body sent): every one is
    // turned away at once, with no body read, instead of each pinning a chunk of memory.
    const t0 = Date.now();
    const extra = Array.from({ length: 12 }, (_, i) =>
      raw(srv, head(srv, 'PUT', `/bkt/extra${i}`, { 'content-length': String(8 << 20) })),
    );
    const answers = await within(
      2_000,
      'answers to the uploads past the cap',
      Promise.all(extra.map((x) => x.firstResponse)),
    );
    expect(Date.now() - t0).toBeLessThan(2_000);
    for (const a of answers) {
      expect(a).toMatch(/^HTTP\/1\.1 503 /);
      expect(a).toContain('<Code>SlowDown</Code>');
    }
    // UploadPart counts too; a PUT without a body to receive (CreateBucket) does not.
    const { UploadId } = await srv.s3.send(
      new CreateMultipartUploadCommand({ Bucket: 'bkt', Key: 'mp' }),
    );
    const part = raw(
      srv,
      head(srv, 'PUT', '/bkt/mp', { 'content-length': '100' }, undefined, [
        ['partNumber', '1'],
        ['uploadId', UploadId!],
      ]),
    );
    expect(await within(2_000, 'an answer to the part', part.firstResponse)).toContain(
      '<Code>SlowDown</Code>',
    );
    await srv.s3.send(new CreateBucketCommand({ Bucket: 'other' }));
    // With Expect: 100-continue the refusal comes instead of the 100: no body is sent at all.
    const asking = raw(
      srv,
      head(srv, 'PUT', '/bkt/asking', { 'content-length': '1000', expect: '100-continue' }),
    );
    const refusal = await within(2_000, 'an answer to the Expect request', asking.firstResponse);
    expect(refusal).toMatch(/^HTTP\/1\.1 503 /);
    expect(refusal).not.toContain('100 Continue');
    expect(refusal).toContain('<Code>SlowDown</Code>');
    for (const x of [...extra, part, asking]) x.socket.destroy();

    // The held uploads were not disturbed; once they are done, uploads are accepted again.
    for (const h of held) h.finish();
    for (const h of held) expect((await h.firstResponse).slice(0, 12)).toBe('HTTP/1.1 200');
    for (const h of held) h.socket.destroy();
    await srv.s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'after', Body: 'ok' }));
    const got = await srv.s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'held0' }));
    expect((await got.Body!.transformToByteArray()).length).toBe(4 * CHUNK);
    for (let i = 0; i < 12; i++) expect(await exists(srv, `extra${i}`)).toBe(false);
  });

  it('releases the slot of an upload that failed or whose client went away', async () => {
    const before = await needles(srv);
    // CAP uploads refused after their body (a wrong Content-MD5) ...
    for (let i = 0; i < CAP; i++) {
      const e = await s3Error(
        srv.s3.send(
          new PutObjectCommand({
            Bucket: 'bkt',
            Key: `bad${i}`,
            Body: Buffer.alloc(2 * CHUNK, 1),
            ContentMD5: Buffer.alloc(16).toString('base64'),
          }),
        ),
      );
      expect(e.name).toBe('BadDigest');
    }
    // ... and CAP whose clients vanish mid-body.
    const gone = await holdCap('gone');
    for (const g of gone) g.socket.destroy();
    await needlesBackTo(srv, before);
    // Were a slot leaked, one of these would be refused.
    const held = await holdCap('again');
    for (const h of held) h.finish();
    for (const h of held) expect((await h.firstResponse).slice(0, 12)).toBe('HTTP/1.1 200');
    for (const h of held) h.socket.destroy();
    for (let i = 0; i < CAP; i++) {
      expect(await exists(srv, `bad${i}`)).toBe(false);
      expect(await exists(srv, `gone${i}`)).toBe(false);
    }
  });
});

describe('server timeouts', () => {
  let srv: Srv;
  beforeAll(async () => {
    srv = await start({
      maxConcurrentUploads: 1,
      headersTimeoutMs: 300,
      idleTimeoutMs: 600,
      requestTimeoutMs: 2_000,
    });
    await srv.s3.send(new CreateBucketCommand({ Bucket: 'bkt' }));
  });
  afterAll(() => srv?.close());

  it('drops a client that sends half its headers and stops', async () => {
    const r = raw(srv, 'PUT /bkt/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le');
    const { text, afterMs } = await within(3_000, 'the connection closed', r.closed);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(afterMs).toBeGreaterThanOrEqual(250);
    expect(afterMs).toBeLessThan(3_000);
  });

  it('closes an upload stalled mid-body, stores nothing of it and frees its slot', async () => {
    const before = await needles(srv);
    const h = heldUpload(srv, 'stalled', 4 * CHUNK, CHUNK + 100);
    await until('the stalled upload wrote a needle', async () =>
      (await needles(srv)) > before ? true : undefined,
    );
    const { afterMs } = await within(3_000, 'the connection closed', h.closed);
    expect(afterMs).toBeGreaterThanOrEqual(500);
    expect(afterMs).toBeLessThan(3_000);
    await needlesBackTo(srv, before);
    expect(await exists(srv, 'stalled')).toBe(false);
    // The only slot (maxConcurrentUploads 1) is free again.
    await srv.s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'next', Body: 'ok' }));
  });

  it('closes a request that trickles on past the whole-request timeout', async () => {
    const h = heldUpload(srv, 'trickle', 4 * CHUNK, 10);
    const timer = setInterval(() => h.socket.write('x'), 100); // never idle
    try {
      const { afterMs } = await within(5_000, 'the connection closed', h.closed);
      expect(afterMs).toBeGreaterThanOrEqual(1_900);
      expect(afterMs).toBeLessThan(5_000);
    } finally {
      clearInterval(timer);
    }
    expect(await exists(srv, 'trickle')).toBe(false);
    await sleep(50);
    await srv.s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'next2', Body: 'ok' }));
  });
});

describe('signed aws-chunked uploads stream through', () => {
  let srv: Srv;
  beforeAll(async () => {
    srv = await start({});
    await srv.s3.send(new CreateBucketCommand({ Bucket: 'bkt' }));
  });
  afterAll(() => srv?.close());

  /** A STREAMING-AWS4-HMAC-SHA256-PAYLOAD PUT; `tamper` may change the encoded body. */
  async function putChunked(key: string, data: Buffer, tamper = (b: Buffer) => b) {
    const chunkSize = 64 * 1024;
    // The framed length does not depend on the signatures' values.
    const framed = encodeAwsChunked(data, {
      mode: 'signed',
      chunkSize,
      signingKey: Buffer.alloc(32),
      seedSignature: '0'.repeat(64),
      date: '',
      scope: '',
    }).length;
    const rawPath = `/bkt/${key}`;
    const signed = signRequest({
      method: 'PUT',
      rawPath,
      headers: {
        host: `127.0.0.1:${srv.port}`,
        'content-encoding': 'aws-chunked',
        'content-length': String(framed),
        'x-amz-decoded-content-length': String(data.length),
      },
      accessKey: ACCESS,
      secretKey: SECRET,
      payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    });
    const body = tamper(
      encodeAwsChunked(data, {
        mode: 'signed',
        chunkSize,
        signingKey: signed.signingKey,
        seedSignature: signed.signature,
        date: signed.amzDate,
        scope: signed.scope,
      }),
    );
    const lines = Object.entries(signed.headers).map(([k, v]) => `${k}: ${v}`);
    const r = raw(
      srv,
      Buffer.concat([
        Buffer.from(`PUT ${rawPath} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`),
        body,
      ]),
    );
    const text = await r.firstResponse;
    r.socket.destroy();
    return text;
  }

  it('stores a multi-chunk upload whose signatures all check', async () => {
    const data = Buffer.alloc(3 * 64 * 1024 + 5, 'g');
    expect((await putChunked('good', data)).slice(0, 12)).toBe('HTTP/1.1 200');
    const got = await srv.s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'good' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true);
  });

  it('fails a bad signature in the 2nd chunk with SignatureDoesNotMatch and stores nothing', async () => {
    const before = await needles(srv);
    const data = Buffer.alloc(4 * 64 * 1024, 'h');
    const text = await putChunked('bad-chunk', data, (b) => {
      // The second chunk's signature replaced by the first's: well-formed, but wrong.
      const s = b.toString('latin1');
      const sigs = [...s.matchAll(/chunk-signature=([0-9a-f]{64})/g)].map((m) => m[1]!);
      return Buffer.from(s.replace(sigs[1]!, sigs[0]!), 'latin1');
    });
    expect(text).toMatch(/^HTTP\/1\.1 403 /);
    expect(text).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect(await exists(srv, 'bad-chunk')).toBe(false);
    // The needles its first chunks went into (16 KiB each) were freed.
    await needlesBackTo(srv, before);
  });
});

describe('memory per upload', () => {
  it('a body is held at most one chunk at a time: nothing more is read while a chunk is stored', async () => {
    const chunk = 64 * 1024;
    const piece = 10 * 1024;
    let pulled = 0;
    let stored = 0;
    let maxHeld = 0;
    const needleStore = {
      async put(_ref: unknown, data: Buffer) {
        await sleep(1); // a store that takes its time
        stored += data.length;
        return { size: data.length, storedSize: data.length, compressed: false };
      },
    } as unknown as NeedleStore;
    let id = 0n;
    const placement = {
      assign: async () => ({ volumeId: 1, needleId: ++id, cookie: 1 }),
      full() {},
    };
    async function* body(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 100; i++) {
        maxHeld = Math.max(maxHeld, pulled - stored);
        pulled += piece;
        yield Buffer.alloc(piece, i);
      }
    }
    const data = new ObjectData(needleStore, placement, chunk);
    const { size, chunks } = await data.write(body(), { maxSize: 1 << 30 });
    expect(size).toBe(100 * piece);
    expect(chunks.length).toBe(Math.ceil((100 * piece) / chunk));
    expect(maxHeld).toBeLessThanOrEqual(chunk);
  });
});
