import http from 'node:http';
import net from 'node:net';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUTH_HEADER, InternalAuth } from '../common/internal-auth.ts';
import { textPayload } from '../common/payload.ts';
import { type RawReply, rawRequest } from '../test/kit/raw-http.ts';
import { crcTwin, startNode, type TestNode } from '../test/kit/test-nodes.ts';
import { CRC_HEADER, NEEDLE_PUT_COVERED } from './api.ts';
import { StoreClient } from './client.ts';
import { StoreServer } from './server.ts';
import type { Store } from './store.ts';

const auth = new InternalAuth('test-cluster-secret-0123456789');
const MAX = 64 * 1024;

let node: TestNode;
let store: Store;
let port: number;
let client: StoreClient;

beforeEach(async () => {
  node = await startNode({
    volumes: [1],
    server: { auth, maxNeedleSize: MAX },
    standalone: true,
  });
  ({ store, port, client } = node);
});

afterEach(() => node.close());

type Reply = RawReply;

/**
 * One request on its own connection. A needle PUT gets the CRC32C of its body unless
 * `headers` names one (`crc: false`: none at all), and its token covers the headers the
 * route covers, as StoreClient signs them.
 */
function request(
  method: string,
  path: string,
  opts: {
    body?: Buffer;
    headers?: Record<string, string>;
    sign?: boolean | string;
    crc?: false;
  } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  const needlePut = method === 'PUT' && /^\/volumes\/[^/]+\/needles\/[^/?]+(\?|$)/.test(path);
  if (needlePut && opts.crc !== false && headers[CRC_HEADER] === undefined)
    headers[CRC_HEADER] = String(crc32c(opts.body ?? Buffer.alloc(0)));
  if (opts.sign !== false)
    headers[AUTH_HEADER] =
      typeof opts.sign === 'string'
        ? opts.sign
        : auth.sign(method, path, undefined, {
            contentLength: opts.body?.length,
            headers: needlePut ? NEEDLE_PUT_COVERED.map((h) => headers[h]) : [],
          });
  return rawRequest(port, method, path, headers, opts.body);
}

/** A needle PUT token over a length and the CRC header (no content type or replicas). */
const signPut = (path: string, length: number | undefined, crc: string, replicas?: string) =>
  auth.sign('PUT', path, undefined, {
    contentLength: length,
    headers: [crc, undefined, replicas, undefined],
  });

function snapshot() {
  const s = store.volume(1).stats();
  return { needles: s.needles, fileBytes: s.fileBytes };
}

function errorOf(r: Reply): string {
  expect(r.headers['content-type']).toBe('application/json');
  return (JSON.parse(r.body.toString()) as { error: string }).error;
}

describe('store server', () => {
  it('stores and serves needles through StoreClient, with ranges, HEAD and DELETE', async () => {
    const ref = { volumeId: 1, needleId: 2n ** 63n + 5n, cookie: 0xdeadbeef };
    const data = textPayload(20_000);
    const put = await client.put(ref, data, 'text/plain');
    expect(put).toEqual({ size: 20_000, storedSize: expect.any(Number), compressed: true });
    expect((await client.get(ref)).data.equals(data)).toBe(true);
    const part = await client.get(ref, { start: 19_990, end: 30_000 });
    expect(part.data.equals(data.subarray(19_990))).toBe(true);
    expect(part.size).toBe(20_000);
    expect(await client.head(ref)).toEqual({ size: 20_000 });
    const suffix = await request('GET', `/volumes/1/needles/${ref.needleId}?cookie=${ref.cookie}`, {
      headers: { range: 'bytes=-10' },
    });
    expect(suffix.status).toBe(206);
    expect(suffix.headers['content-range']).toBe('bytes 19990-19999/20000');
    expect(suffix.body.equals(data.subarray(19_990))).toBe(true);
    await client.delete(ref);
    await expect(client.get(ref)).rejects.toMatchObject({ code: 'NoSuchNeedle' });
    await client.createVolume(9);
    const st = await client.status();
    expect(st.volumes.map((v) => v.id)).toEqual([1, 9]);
    expect(st.needles).toBe(0);
  });

  it('refuses requests without a valid token, bound to method and path', async () => {
    const path = '/volumes/1/needles/1?cookie=1';
    const body = Buffer.from('x');
    const cases = [
      await request('PUT', path, { body, sign: false }),
      await request('PUT', path, { body, sign: 'garbage' }),
      await request('PUT', path, { body, sign: auth.sign('GET', path) }),
      await request('PUT', path, { body, sign: auth.sign('PUT', '/volumes/1/needles/2?cookie=1') }),
      await request('PUT', path, { body, sign: auth.sign('PUT', path, Date.now() - 3600_000) }),
      await request('PUT', path, {
        body,
        sign: new InternalAuth('another-secret-0123456789').sign('PUT', path),
      }),
      await request('GET', '/status', { sign: false }),
    ];
    for (const r of cases) {
      expect(r.status).toBe(403);
      expect(errorOf(r)).toBe('Forbidden');
    }
    expect(snapshot().needles).toBe(0);
    const m = await request('GET', '/metrics', {
      sign: false,
      headers: { authorization: `Bearer ${auth.metricsToken}` },
    });
    expect(m.status).toBe(200);
    expect(m.body.toString()).toContain('kubestorage_store_volumes 1');
  });

  it('answers the Kubernetes probes anonymously with one word, and nothing else', async () => {
    const health = await request('GET', '/healthz', { sign: false });
    expect([health.status, health.body.toString()]).toEqual([200, 'ok\n']);
    const ready = await request('GET', '/readyz', { sign: false });
    expect([ready.status, ready.body.toString()]).toEqual([200, 'ok\n']);
    // Not ready (not joined yet): 503, and liveness stays 200.
    const notReady = new StoreServer({ store, auth, maxNeedleSize: MAX, ready: () => false });
    const p = (await notReady.listen('127.0.0.1', 0)).port;
    try {
      const r = await fetch(`http://127.0.0.1:${p}/readyz`);
      expect([r.status, await r.text()]).toEqual([503, 'not-ready\n']);
      expect((await fetch(`http://127.0.0.1:${p}/healthz`)).status).toBe(200);
      // The probe paths take no other method, and nothing else is anonymous.
      expect((await fetch(`http://127.0.0.1:${p}/healthz`, { method: 'POST' })).status).toBe(403);
    } finally {
      await notReady.close();
    }
  });

  it('answers bad input with a clear 4xx JSON error and writes nothing', async () => {
    await client.put({ volumeId: 1, needleId: 7n, cookie: 70 }, Buffer.from('seven'));
    const before = snapshot();
    const cases: [string, string, Buffer | undefined, number, string][] = [
      ['GET', '/volumes/1/needles/7?cookie=71', undefined, 403, 'CookieMismatch'],
      ['PUT', '/volumes/1/needles/7?cookie=71', Buffer.from('x'), 409, 'NeedleExists'],
      ['PUT', '/volumes/1/needles/7?cookie=70', Buffer.from('eight'), 409, 'NeedleExists'],
      ['DELETE', '/volumes/1/needles/7?cookie=71', undefined, 403, 'CookieMismatch'],
      ['PUT', '/volumes/2/needles/1?cookie=1', Buffer.from('x'), 404, 'NoSuchVolume'],
      ['GET', '/volumes/1/needles/8?cookie=1', undefined, 404, 'NoSuchNeedle'],
      ['PUT', '/volumes/1/needles/0?cookie=1', Buffer.from('x'), 400, 'InvalidArgument'],
      [
        'PUT',
        '/volumes/1/needles/18446744073709551616?cookie=1',
        Buffer.from('x'),
        400,
        'InvalidArgument',
      ],
      ['PUT', '/volumes/1/needles/-3?cookie=1', Buffer.from('x'), 400, 'InvalidArgument'],
      ['PUT', '/volumes/1/needles/1e3?cookie=1', Buffer.from('x'), 400, 'InvalidArgument'],
      ['PUT', '/volumes/abc/needles/1?cookie=1', Buffer.from('x'), 400, 'InvalidArgument'],
      ['PUT', '/volumes/4294967296/needles/1?cookie=1', Buffer.from('x'), 400, 'InvalidArgument'],
      ['PUT', '/volumes/1/needles/5', Buffer.from('x'), 400, 'InvalidArgument'],
      ['PUT', '/volumes/1/needles/5?cookie=4294967296', Buffer.from('x'), 400, 'InvalidArgument'],
      ['PUT', '/volumes/1/needles/5?cookie=1', Buffer.alloc(MAX + 1), 413, 'EntityTooLarge'],
      ['GET', '/volumes/1/needles/7?cookie=70&x', undefined, 200, ''],
      ['POST', '/volumes/1', undefined, 409, 'VolumeExists'],
      ['PATCH', '/volumes/1/needles/7?cookie=70', undefined, 405, 'MethodNotAllowed'],
      ['GET', '/nope', undefined, 404, 'NotFound'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await request(method, path, { body });
      expect([method, path, r.status]).toEqual([method, path, status]);
      if (code) expect(errorOf(r)).toBe(code);
    }
    const range = await request('GET', '/volumes/1/needles/7?cookie=70', {
      headers: { range: 'bytes=5-9' },
    });
    expect([range.status, errorOf(range)]).toEqual([416, 'InvalidRange']);
    expect(snapshot()).toEqual(before);
    expect((await client.get({ volumeId: 1, needleId: 7n, cookie: 70 })).data.toString()).toBe(
      'seven',
    );
  });

  it('checks the CRC32C sent with a PUT and returns one with every GET', async () => {
    const before = snapshot();
    const body = Buffer.from('integrity across the wire');
    const bad = await request('PUT', '/volumes/1/needles/21?cookie=1', {
      body,
      headers: { 'x-ks-crc32c': '12345' },
    });
    expect([bad.status, errorOf(bad)]).toEqual([400, 'BadChecksum']);
    expect(snapshot()).toEqual(before);
    await client.put({ volumeId: 1, needleId: 21n, cookie: 1 }, body);
    const got = await request('GET', '/volumes/1/needles/21?cookie=1');
    expect(got.headers['x-ks-crc32c']).toBe(String(crc32c(body)));
    const part = await request('GET', '/volumes/1/needles/21?cookie=1', {
      headers: { range: 'bytes=0-8' },
    });
    expect(part.headers['x-ks-crc32c']).toBe(String(crc32c(body.subarray(0, 9))));
  });

  it('a captured needle PUT token cannot replace the needle or change its head (issue 12)', async () => {
    const ref = { volumeId: 1, needleId: 31n, cookie: 3100 };
    const path = `/volumes/1/needles/31?cookie=3100`;
    const original = textPayload(5_000);
    const crc = String(crc32c(original));
    // The token the gateway sent, as anyone on the internal network could have captured it.
    const token = signPut(path, original.length, crc);
    const put = (body: Buffer, headers: Record<string, string>) =>
      request('PUT', path, { body, sign: token, crc: false, headers });
    expect((await put(original, { [CRC_HEADER]: crc })).status).toBe(201);
    const before = snapshot();

    // Other bytes of the same size under the captured CRC: they do not match it.
    const other = Buffer.alloc(original.length, 'x');
    const r1 = await put(other, { [CRC_HEADER]: crc });
    expect([r1.status, errorOf(r1)]).toEqual([400, 'BadChecksum']);
    // …with their own CRC: the token covers the CRC header.
    const r2 = await put(other, { [CRC_HEADER]: String(crc32c(other)) });
    expect([r2.status, errorOf(r2)]).toEqual([403, 'Forbidden']);
    // …crafted to share the CRC (CRC32C is no MAC): needles are write-once.
    const twin = crcTwin(original);
    expect(twin.equals(original)).toBe(false);
    expect(crc32c(twin)).toBe(crc32c(original));
    const r3 = await put(twin, { [CRC_HEADER]: crc });
    expect([r3.status, errorOf(r3)]).toEqual([409, 'NeedleExists']);
    // Without the CRC header, with a content type or a quorum added: not what was signed.
    const unsigned: Array<Record<string, string>> = [
      {},
      { [CRC_HEADER]: crc, 'content-type': 'text/plain' },
    ];
    for (const h of unsigned) {
      const r = await put(original, h);
      expect([r.status, errorOf(r)]).toEqual([403, 'Forbidden']);
    }
    const r4 = await put(original, { [CRC_HEADER]: crc, 'x-ks-write-quorum': '1' });
    expect(r4.status).toBe(403);
    // The same bytes again (a retry): accepted, nothing written twice.
    expect((await put(original, { [CRC_HEADER]: crc })).status).toBe(201);
    expect(snapshot()).toEqual(before);
    expect((await client.get(ref)).data.equals(original)).toBe(true);

    // A correctly signed needle PUT without a CRC is refused before its body is read.
    const noCrc = await request('PUT', '/volumes/1/needles/32?cookie=1', {
      body: Buffer.from('x'),
      crc: false,
    });
    expect([noCrc.status, errorOf(noCrc)]).toEqual([400, 'InvalidArgument']);
    expect(snapshot()).toEqual(before);
  });

  it('refuses a needle PUT whose replica list was added or changed before reading its body', async () => {
    const path = '/volumes/1/needles/33?cookie=1';
    // Head only: Content-Length promises 60 000 bytes that never come; the answer must.
    const headOnly = (auth: string, replicas?: string) =>
      new Promise<{ status: string; ms: number }>((resolve, reject) => {
        const t0 = performance.now();
        const sock = net.connect(port, '127.0.0.1', () => {
          const extra = replicas === undefined ? '' : `x-ks-replicas: ${replicas}\r\n`;
          sock.write(
            `PUT ${path} HTTP/1.1\r\nHost: x\r\n${AUTH_HEADER}: ${auth}\r\n${CRC_HEADER}: 1\r\n${extra}content-length: 60000\r\n\r\n`,
          );
        });
        let text = '';
        sock.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes('\r\n')) {
            sock.destroy();
            resolve({ status: text.split(' ')[1]!, ms: performance.now() - t0 });
          }
        });
        sock.on('error', reject);
        setTimeout(() => {
          sock.destroy();
          resolve({ status: 'none', ms: performance.now() - t0 });
        }, 2_000);
      });
    const signed = signPut(path, 60_000, '1');
    const evil = 'http://127.0.0.1:9';
    const added = await headOnly(signed, evil);
    expect(added.status).toBe('403');
    const replicated = signPut(path, 60_000, '1', 'http://127.0.0.1:8081');
    const changed = await headOnly(replicated, evil);
    expect(changed.status).toBe('403');
    expect(Math.max(added.ms, changed.ms)).toBeLessThan(1_000);
    expect(snapshot().needles).toBe(0);
  });

  it('forwards to no other store without a knownStore (a store with no directory)', async () => {
    const path = '/volumes/1/needles/34?cookie=1';
    const body = Buffer.from('thirty-four');
    const r = await request('PUT', path, {
      body,
      headers: { 'x-ks-replicas': 'http://127.0.0.1:9' },
    });
    expect([r.status, errorOf(r)]).toEqual([403, 'UnknownReplica']);
    expect(snapshot().needles).toBe(0);
    const sync = await request('POST', '/volumes/1/sync?source=http%3A%2F%2F127.0.0.1%3A9');
    expect([sync.status, errorOf(sync)]).toEqual([403, 'UnknownReplica']);
  });

  it('StoreClient refuses a GET whose bytes do not match the CRC32C sent with them', async () => {
    const liar = http.createServer((_req, res) => {
      res.writeHead(200, { 'x-ks-size': '5', 'x-ks-crc32c': String(crc32c(Buffer.from('hello'))) });
      res.end('hellO');
    });
    await new Promise<void>((r) => liar.listen(0, '127.0.0.1', () => r()));
    const port = (liar.address() as net.AddressInfo).port;
    const c = new StoreClient(`http://127.0.0.1:${port}`, auth);
    try {
      await expect(c.get({ volumeId: 1, needleId: 1n, cookie: 1 })).rejects.toMatchObject({
        code: 'NeedleCorrupt',
      });
    } finally {
      await c.close();
      liar.close();
    }
  });

  it('rejects an oversize chunked body and a truncated body without storing anything', async () => {
    const before = snapshot();
    const chunkedPath = '/volumes/1/needles/11?cookie=1';
    const chunked = await rawRequest(
      port,
      'PUT',
      chunkedPath,
      { [AUTH_HEADER]: signPut(chunkedPath, undefined, '1'), [CRC_HEADER]: '1' },
      Array.from({ length: 20 }, () => Buffer.alloc(8192, 1)),
    );
    expect([chunked.status, errorOf(chunked)]).toEqual([413, 'EntityTooLarge']);

    // Content-Length promises 5000 bytes, 1000 arrive, then the client goes away.
    const path = '/volumes/1/needles/12?cookie=1';
    await new Promise<void>((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.write(
          `PUT ${path} HTTP/1.1\r\nHost: x\r\n${AUTH_HEADER}: ${signPut(path, 5000, '1')}\r\n${CRC_HEADER}: 1\r\ncontent-length: 5000\r\n\r\n`,
        );
        sock.write(Buffer.alloc(1000, 2));
        setTimeout(() => sock.destroy(), 50);
      });
      sock.on('close', () => resolve());
      sock.on('error', () => {});
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(snapshot()).toEqual(before);
    const after = await request('GET', path);
    expect([after.status, errorOf(after)]).toEqual([404, 'NoSuchNeedle']);
  });

  it('survives fuzzed requests: every reply is JSON 4xx or a success, the server stays up', async () => {
    const seg = fc.oneof(
      fc.constantFrom(
        'volumes',
        'needles',
        '1',
        '0',
        '',
        '..',
        '%00',
        '99999999999999999999999',
        'seal',
        'compact',
      ),
      fc.string({ maxLength: 12 }).map(encodeURIComponent),
    );
    const pathArb = fc
      .tuple(
        fc.array(seg, { maxLength: 5 }),
        fc.option(fc.string({ maxLength: 20 }).map(encodeURIComponent)),
      )
      .map(([segs, q]) => `/${segs.join('/')}${q === null ? '' : `?cookie=${q}`}`);
    const methodArb = fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'OPTIONS');
    const before = snapshot();
    await fc.assert(
      fc.asyncProperty(
        methodArb,
        pathArb,
        fc.uint8Array({ maxLength: 64 }),
        async (method, path, body) => {
          const r = await request(method, path, {
            body: method === 'PUT' ? Buffer.from(body) : undefined,
          });
          if (r.status >= 300 && method !== 'HEAD') errorOf(r);
          expect(r.status).not.toBe(500);
        },
      ),
      { numRuns: 300 },
    );
    // Fuzzed PUTs may legitimately create needles under volume 1 only via valid requests;
    // the volume must still load and agree with itself.
    const after = store.volume(1).stats();
    expect(after.fileBytes).toBeGreaterThanOrEqual(before.fileBytes);
    expect((await request('GET', '/status')).status).toBe(200);
  });
});
