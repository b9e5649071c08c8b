// MetadataClient against a real MetadataServer over loopback, backed by LevelMetadata:
// the important MetadataStore behaviours must look the same through the network.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { InternalAuth } from '../../common/internal-auth.ts';
import { testObject, testPart, testUpload } from '../../test/kit/records.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { LevelMetadata } from '../engine/meta-level.ts';
import { MetadataError, type MetadataStore, type ObjectRecord } from '../model/api.ts';
import { AmbiguousMetadataError, MetadataClient, type MetadataClientOptions } from './client.ts';
import { decodeJson, encodeJson, MetadataServer } from './server.ts';

const SECRET = 'meta-client-test-secret-0123';
const auth = new InternalAuth(SECRET);
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{
  m: MetadataClient;
  level: LevelMetadata;
  url: string;
  /** The URL of every HTTP request the server got. */
  requests: string[];
}> {
  const level = await LevelMetadata.open(tempDir());
  const server = new MetadataServer({ meta: level, auth });
  const requests: string[] = [];
  server.server.on('request', (req: http.IncomingMessage) => requests.push(req.url ?? ''));
  const addr = await server.listen('127.0.0.1', 0);
  cleanups.push(async () => {
    await server.close();
    await level.close();
  });
  const url = `http://127.0.0.1:${addr.port}`;
  const m = new MetadataClient(url, auth);
  cleanups.push(() => m.close());
  return { m, level, url, requests };
}

const obj = testObject;
const part = (n: number, needle: string) => testPart(n, needle);
const upload = (bucket: string, key: string, uploadId: string) =>
  testUpload(bucket, key, uploadId, {
    userMeta: { a: 'b' },
    owner: 'alice',
    contentType: 'text/plain',
  });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MetadataError) return e.code;
    return `Error: ${(e as Error).message}`;
  }
  return 'ok';
}

const bucket = (m: MetadataClient, name: string, owner = 'alice') =>
  m.createBucket({ name, owner, createdAt: 1, region: 'us-east-1' });

describe('bigint JSON encoding', () => {
  it('round-trips bigints, including above 2^53, and leaves other values alone', () => {
    const v = { first: 2n ** 64n - 1n, n: [1n, 2], s: '123', o: { $bigint: 'x' } };
    const text = encodeJson(v);
    expect(text).toContain('{"$bigint":"18446744073709551615"}');
    expect(decodeJson(text)).toEqual(v);
    // Data that looks like a tag stays data.
    const meta = { userMeta: { $bigint: '5' }, $$x: { $: 1 }, s: '$bigint', n: null };
    expect(decodeJson(encodeJson(meta))).toEqual(meta);
    expect(decodeJson(encodeJson([1, 'a', { b: [2n] }]))).toEqual([1, 'a', { b: [2n] }]);
    expect(encodeJson({ a: 'plain' })).toBe('{"a":"plain"}');
  });
});

describe('MetadataClient over MetadataServer', () => {
  it('enforces bucket rules and maps MetadataError codes', async () => {
    const { m } = await setup();
    await bucket(m, 'photos');
    expect(await code(bucket(m, 'photos'))).toBe('BucketAlreadyOwnedByYou');
    expect(await code(bucket(m, 'photos', 'bob'))).toBe('BucketAlreadyExists');
    await bucket(m, 'a', 'bob');
    expect((await m.listBuckets()).map((b) => b.name)).toEqual(['a', 'photos']);
    expect((await m.listBuckets('bob')).map((b) => b.name)).toEqual(['a']);
    expect(await m.getBucket('photos')).toEqual({
      name: 'photos',
      owner: 'alice',
      createdAt: 1,
      region: 'us-east-1',
    });
    expect(await m.getBucket('nope')).toBeNull();
    expect(await code(m.deleteBucket('nope'))).toBe('NoSuchBucket');
    expect(await code(m.putObject('nope', obj('k')))).toBe('NoSuchBucket');
    await m.putObject('a', obj('x'));
    const err = await m.deleteBucket('a').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MetadataError);
    expect(err).toMatchObject({ code: 'BucketNotEmpty', name: 'MetadataError' });
    await m.deleteObject('a', 'x');
    expect(await m.deleteBucket('a')).toBeUndefined();
    expect(await m.getBucket('a')).toBeNull();
  });

  it('puts, conditions, gets, lists and deletes objects', async () => {
    const { m } = await setup();
    await bucket(m, 'b');
    const r1 = obj('dir/ü 1+%.txt', 'e1', {
      contentType: 'text/plain',
      userMeta: { a: '1' },
      checksums: { crc32: 'AAAA' },
      partSizes: [1],
    });
    expect(await m.putObject('b', r1)).toBeNull();
    expect(await m.getObject('b', r1.key)).toEqual(r1);
    expect(await m.getObject('b', 'other')).toBeNull();
    expect(await code(m.putObject('b', obj(r1.key, 'e2'), { ifNoneMatch: true }))).toBe(
      'PreconditionFailed',
    );
    expect(await m.putObject('b', obj(r1.key, 'e2'), { ifMatch: '"e1"' })).toEqual(r1);
    await m.putObject('b', obj('a\x00b'));
    for (const k of ['dir/x', 'dir/y', 'e/1', 'f']) await m.putObject('b', obj(k));

    const all = await m.listObjects('b', { maxKeys: 100 });
    expect(all.objects.map((o) => o.key)).toEqual([
      'a\x00b',
      'dir/x',
      'dir/y',
      'dir/ü 1+%.txt',
      'e/1',
      'f',
    ]);
    expect(all.isTruncated).toBe(false);
    const page = await m.listObjects('b', { delimiter: '/', maxKeys: 2 });
    expect(page.objects.map((o) => o.key)).toEqual(['a\x00b']);
    expect(page.commonPrefixes).toEqual(['dir/']);
    expect(page.isTruncated).toBe(true);
    const next = await m.listObjects('b', { delimiter: '/', maxKeys: 10, after: page.last });
    expect(next.commonPrefixes).toEqual(['e/']);
    expect(next.objects.map((o) => o.key)).toEqual(['f']);
    expect(
      (await m.listObjects('b', { prefix: 'dir/', maxKeys: 10 })).objects.map((o) => o.key),
    ).toEqual(['dir/x', 'dir/y', 'dir/ü 1+%.txt']);

    expect(await m.deleteObject('b', r1.key)).toEqual(obj(r1.key, 'e2'));
    expect(await m.deleteObject('b', r1.key)).toBeNull();
  });

  it('sends putObject as putObjectStored', async () => {
    const { m, level, requests } = await setup();
    await m.createBucket({ name: 'b', owner: 'alice', createdAt: 1, region: 'r' });
    const calls: string[] = [];
    const spy = new Proxy(level, {
      get(target, prop) {
        const v = Reflect.get(target, prop);
        if (typeof v !== 'function') return v;
        if (prop === 'putObject' || prop === 'putObjectStored') calls.push(String(prop));
        return v.bind(target);
      },
    });
    const server = new MetadataServer({ meta: spy, auth });
    const addr = await server.listen('127.0.0.1', 0);
    const c = new MetadataClient(`http://127.0.0.1:${addr.port}`, auth);
    try {
      const rec = obj('k', 'e1', { userMeta: { a: 'b' }, contentType: 'text/plain' });
      expect(await c.putObject('b', rec)).toBeNull();
      expect(await c.putObject('b', { ...rec, etag: 'e2' }, { ifMatch: '"e1"' })).toEqual(rec);
      await expect(c.putObject('b', rec, { ifNoneMatch: true })).rejects.toMatchObject({
        code: 'PreconditionFailed',
      });
      expect(calls).toEqual(['putObjectStored', 'putObjectStored', 'putObjectStored']);
      expect(await m.getObject('b', 'k')).toEqual({ ...rec, etag: 'e2' });
    } finally {
      await c.close();
      await server.close();
    }
    expect(await m.putObject('b', obj('k2'))).toBeNull();
    expect(await m.putObject('b', obj('k3'))).toBeNull();
    expect((await m.getObject('b', 'k3'))?.etag).toBe('e-k3');
    const p = await m.listObjectSummaries('b', { maxKeys: 10 });
    expect(p.objects.map((x) => x.key)).toEqual(['k', 'k2', 'k3']);
    expect(p.objects[1]).toEqual({
      key: 'k2',
      size: 1,
      etag: 'e-k2',
      lastModified: 1_700_000_000_000,
      owner: 'alice',
    });
    // A malformed stored text from the wire is refused; the key stays readable and writable.
    await expect(m.putObjectStored('b', 'k', '{"size":1}\n{"a":1', null)).rejects.toThrow();
    expect((await m.getObject('b', 'k'))?.etag).toBe('e2');
    expect((await m.listObjectSummaries('b', { maxKeys: 10 })).objects.length).toBe(3);
    expect(requests.length).toBeGreaterThan(0);
  });

  it('runs a multipart upload to completion and abort', async () => {
    const { m } = await setup();
    await bucket(m, 'b');
    await m.putObject('b', obj('big', 'old'));
    await m.createUpload(upload('b', 'big', 'U1'));
    expect(await m.getUpload('b', 'big', 'U1')).toEqual(upload('b', 'big', 'U1'));
    expect(await code(m.putPart('b', 'big', 'U2', part(1, '1')))).toBe('NoSuchUpload');
    expect(await m.putPart('b', 'big', 'U1', part(1, '10'))).toBeNull();
    expect(await m.putPart('b', 'big', 'U1', part(1, '11'))).toEqual(part(1, '10'));
    for (const n of [2, 3]) await m.putPart('b', 'big', 'U1', part(n, String(100 + n)));
    const l1 = await m.listParts('b', 'big', 'U1', { max: 2 });
    expect(l1.parts.map((p) => p.partNumber)).toEqual([1, 2]);
    expect(l1.isTruncated).toBe(true);
    expect((await m.listParts('b', 'big', 'U1', { marker: 2, max: 2 })).isTruncated).toBe(false);
    const ups = await m.listUploads('b', { maxUploads: 10 });
    expect(ups.uploads.map((u) => u.uploadId)).toEqual(['U1']);

    const rec = obj('big', 'abc-2', {
      chunks: [part(1, '11'), part(3, '103')].flatMap((p) => p.chunks),
      partSizes: [5, 5],
    });
    expect(await code(m.completeUpload('b', 'big', 'U1', rec, [1, 7]))).toBe('InvalidPart');
    const done = await m.completeUpload('b', 'big', 'U1', rec, [1, 3]);
    expect(done.previous?.etag).toBe('old');
    expect(done.unused.map((p) => p.partNumber)).toEqual([2]);
    expect(await m.getObject('b', 'big')).toEqual(rec);
    expect(await m.getUpload('b', 'big', 'U1')).toBeNull();
    expect(await code(m.completeUpload('b', 'big', 'U1', rec, [1]))).toBe('NoSuchUpload');

    await m.createUpload(upload('b', 'k', 'U3'));
    await m.putPart('b', 'k', 'U3', part(1, '31'));
    expect((await m.abortUpload('b', 'k', 'U3')).map((p) => p.chunks[0]!.needleId)).toEqual(['31']);
    expect(await code(m.abortUpload('b', 'k', 'U3'))).toBe('NoSuchUpload');
  });

  it('manages users and keys', async () => {
    const { m } = await setup();
    await m.createUser({ id: 'bob', displayName: 'Bob', createdAt: 1 });
    expect(await code(m.createUser({ id: 'bob', displayName: 'B', createdAt: 1 }))).toBe(
      'UserExists',
    );
    await m.addKey({ accessKey: 'K1', secretKey: 's1', userId: 'bob', createdAt: 1 });
    expect((await m.getKey('K1'))?.secretKey).toBe('s1');
    expect(await m.getKey('K9')).toBeNull();
    expect((await m.listKeys()).map((k) => k.accessKey)).toEqual(['K1']);
    expect((await m.listKeys('bob')).map((k) => k.accessKey)).toEqual(['K1']);
    expect((await m.listUsers()).map((u) => u.id)).toEqual(['bob']);
    await m.deleteUser('bob');
    expect(await m.getUser('bob')).toBeNull();
    expect(await m.getKey('K1')).toBeNull();
  });

  it('allocates needle ids as bigints and volume ids without collision', async () => {
    const { m } = await setup();
    const a = await m.allocateNeedleIds(1000);
    const b = await m.allocateNeedleIds(10);
    expect(typeof a.first).toBe('bigint');
    expect(a.count).toBe(1000);
    expect(b.first >= a.first + 1000n).toBe(true);
    const vols = await Promise.all([1, 2, 3, 4].map(() => m.allocateVolumeId()));
    expect(new Set(vols).size).toBe(4);
    for (const v of vols) expect(typeof v).toBe('number');
  });

  it('refuses requests without a valid token, and unknown methods', async () => {
    const { url } = await setup();
    const bad = new MetadataClient(url, new InternalAuth('another-secret-0123456789'));
    const e = await bad.listBuckets().catch((x: unknown) => x);
    expect(e).not.toBeInstanceOf(MetadataError);
    expect(e).toMatchObject({ status: 403, code: 'Forbidden' });
    const noToken = await fetch(`${url}/meta/listBuckets`, { method: 'POST', body: '[]' });
    expect(noToken.status).toBe(403);
    // A token for another path is not accepted either.
    const misbound = await fetch(`${url}/meta/listUsers`, {
      method: 'POST',
      body: '[]',
      headers: { ...auth.signBody('POST', '/meta/listBuckets', '[]') },
    });
    expect(misbound.status).toBe(403);
    // Nor a token for another body: a header seen on the wire cannot carry a forged call.
    const forged = await fetch(`${url}/meta/deleteBucket`, {
      method: 'POST',
      body: '["victim"]',
      headers: { ...auth.signBody('POST', '/meta/deleteBucket', '["b"]') },
    });
    expect(forged.status).toBe(403);
    const close = await fetch(`${url}/meta/close`, {
      method: 'POST',
      body: '[]',
      headers: { ...auth.signBody('POST', '/meta/close', '[]') },
    });
    expect(close.status).toBe(404);
    const junk = await fetch(`${url}/meta/getBucket`, {
      method: 'POST',
      body: '{not json',
      headers: { ...auth.signBody('POST', '/meta/getBucket', '{not json') },
    });
    expect(junk.status).toBe(400);
  });

  it('maps other store failures to 500 and an unreachable server to Unavailable', async () => {
    const { m, level, url } = await setup();
    await level.close(); // the store now refuses work with a plain Error
    const e = await m.getBucket('x').catch((x: unknown) => x);
    expect(e).not.toBeInstanceOf(MetadataError);
    expect(e).toMatchObject({ status: 500 });
    const gone = new MetadataClient(url.replace(/:\d+$/, ':1'), auth, {
      timeoutMs: 2000,
      deadlineMs: 200,
    });
    expect(await code(gone.getBucket('x'))).toBe('Unavailable');
  });
});

describe('batched calls', () => {
  const signed = (url: string, body: string, path = '/meta/_batch') =>
    fetch(`${url}${path}`, {
      method: 'POST',
      body,
      headers: { ...auth.signBody('POST', path, body) },
    });

  it('coalesces concurrent calls into few requests, each keeping its own answer', async () => {
    const { m, level, requests } = await setup();
    await bucket(m, 'b');
    for (let i = 0; i < 1000; i++) await level.putObject('b', obj(`k${i}`, `old-${i}`));
    const odd = obj('odd', 'e', { userMeta: { $bigint: '5', $x: 'y' } });
    await level.putObject('b', odd);
    requests.length = 0;

    const n = 2000;
    const puts: Promise<ObjectRecord | null>[] = [];
    const others: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) {
      puts.push(m.putObject('b', obj(`k${i}`, `new-${i}`)));
      if (i % 400 === 200) {
        others.push(
          m.putObject('missing', obj('x')).catch((e: unknown) => e),
          m.allocateNeedleIds(1000),
          m.getObject('b', 'odd'),
        );
      }
    }
    const results = await Promise.all(puts);
    for (let i = 0; i < n; i++) {
      expect(results[i]).toEqual(i < 1000 ? obj(`k${i}`, `old-${i}`) : null);
    }
    const rest = await Promise.all(others);
    const ranges: { first: bigint; count: number }[] = [];
    for (let j = 0; j < rest.length; j += 3) {
      expect(rest[j]).toBeInstanceOf(MetadataError);
      expect(rest[j]).toMatchObject({ code: 'NoSuchBucket' });
      ranges.push(rest[j + 1] as { first: bigint; count: number });
      expect(rest[j + 2]).toEqual(odd);
    }
    ranges.sort((x, y) => (x.first < y.first ? -1 : 1));
    for (const [j, r] of ranges.entries()) {
      expect(typeof r.first).toBe('bigint');
      expect(r.count).toBe(1000);
      if (j > 0) expect(r.first >= ranges[j - 1]!.first + 1000n).toBe(true);
    }
    expect((await level.getObject('b', 'k1999'))?.etag).toBe('new-1999');
    // 2015 calls: the first few alone, then batches of up to 1000.
    expect(requests.length).toBeLessThan(20);
    expect(requests.filter((u) => u === '/meta/_batch').length).toBeGreaterThan(0);
  });

  it('sends a lone call on its own route, and every call alone when batching is off', async () => {
    const { m, url, requests } = await setup();
    await bucket(m, 'b');
    expect(requests).toEqual(['/meta/createBucket']);
    const off = new MetadataClient(url, auth, { batch: false });
    cleanups.push(() => off.close());
    await Promise.all(Array.from({ length: 20 }, (_, i) => off.putObject('b', obj(`k${i}`))));
    expect(requests.filter((u) => u === '/meta/putObjectStored').length).toBe(20);
  });

  it('answers each call of a batch on its own, and refuses bad batches whole', async () => {
    const { url, level } = await setup();
    await level.createBucket({ name: 'b', owner: 'o', createdAt: 1, region: 'r' });
    const res = await signed(
      url,
      encodeJson([
        ['getBucket', ['b']],
        ['getBucket', ['none']],
        ['close', []],
        ['nope', []],
        'junk',
        ['deleteBucket', ['none']],
        ['allocateNeedleIds', [3]],
        ['createBucket', [{ name: 'c', owner: 'o', createdAt: 1, region: 'r' }]],
      ]),
    );
    expect(res.status).toBe(200);
    const items = decodeJson(await res.text()) as unknown[];
    expect(items).toEqual([
      { r: { name: 'b', owner: 'o', createdAt: 1, region: 'r' } },
      { r: null },
      { e: { error: 'NotFound', message: expect.any(String), status: 404 } },
      { e: { error: 'NotFound', message: expect.any(String), status: 404 } },
      { e: { error: 'InvalidArgument', message: expect.any(String), status: 400 } },
      { e: { error: 'NoSuchBucket', message: expect.any(String), status: 409 } },
      { r: { first: expect.any(BigInt), count: 3 } },
      {},
    ]);
    expect((await level.getBucket('c'))?.name).toBe('c');
    expect((await signed(url, '{bad')).status).toBe(400);
    expect((await signed(url, '{"a":1}')).status).toBe(400);
    const tooMany = JSON.stringify(Array.from({ length: 10_001 }, () => ['listBuckets', []]));
    expect((await signed(url, tooMany)).status).toBe(413);
    const unsigned = await fetch(`${url}/meta/_batch`, { method: 'POST', body: '[]' });
    expect(unsigned.status).toBe(403);
    // A token signed for a single-call route does not open the batch route.
    const misbound = await fetch(`${url}/meta/_batch`, {
      method: 'POST',
      body: '[]',
      headers: { ...auth.signBody('POST', '/meta/listBuckets', '[]') },
    });
    expect(misbound.status).toBe(403);
  });

  it('turns a store failure into that call’s InternalError only', async () => {
    const { level } = await setup();
    const failing = new Proxy(level, {
      get(target, prop) {
        if (prop === 'getUser') return () => Promise.reject(new Error('disk on fire'));
        return Reflect.get(target, prop);
      },
    }) as MetadataStore;
    const server = new MetadataServer({ meta: failing, auth });
    const addr = await server.listen('127.0.0.1', 0);
    cleanups.push(() => server.close());
    const m = new MetadataClient(`http://127.0.0.1:${addr.port}`, auth, {
      batch: { maxInFlight: 1 },
    });
    cleanups.push(() => m.close());
    const calls = [m.listUsers(), m.getUser('x'), m.listUsers(), m.getUser('y'), m.listUsers()];
    const out = await Promise.all(calls.map((p) => p.catch((e: unknown) => e)));
    expect(out[0]).toEqual([]);
    expect(out[2]).toEqual([]);
    expect(out[4]).toEqual([]);
    for (const e of [out[1], out[3]]) {
      expect(e).not.toBeInstanceOf(MetadataError);
      expect(e).toMatchObject({ status: 500, code: 'InternalError' });
    }
  });
});

describe('MetadataClient over several replicas', () => {
  /** Every method call that reached a replica, as "<replica>:<method>". */
  const arrivals: string[] = [];
  const count = (name: string, method?: string) =>
    arrivals.filter((a) => a === `${name}:${method}` || (!method && a.startsWith(`${name}:`)))
      .length;

  afterEach(() => {
    arrivals.length = 0;
  });

  /** A MetadataServer over its own store (the replicas here do not share state). */
  async function replica(name: string): Promise<{ url: string; stop: () => Promise<void> }> {
    const level = await LevelMetadata.open(tempDir());
    const counted = new Proxy(level, {
      get(target, prop) {
        const v = Reflect.get(target, prop);
        if (typeof v !== 'function') return v;
        return (...a: unknown[]) => {
          arrivals.push(`${name}:${String(prop)}`);
          return v.apply(target, a);
        };
      },
    }) as MetadataStore;
    const server = new MetadataServer({ meta: counted, auth });
    const addr = await server.listen('127.0.0.1', 0);
    let up = true;
    const stop = async () => {
      if (up) await server.close();
      up = false;
    };
    cleanups.push(async () => {
      await stop();
      await level.close();
    });
    return { url: `http://127.0.0.1:${addr.port}`, stop };
  }

  /** A node:http server that misbehaves on purpose; it reads every body before `answer`. */
  async function rawServer(
    name: string,
    answer: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  ): Promise<string> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        arrivals.push(`${name}:${req.url?.slice('/meta/'.length)}`);
        if (req.url === '/meta/_batch') {
          const calls = JSON.parse(Buffer.concat(chunks).toString()) as [string, unknown[]][];
          for (const [method] of calls) arrivals.push(`${name}:${method}`);
          (req as http.IncomingMessage & { calls?: unknown[] }).calls = calls;
        }
        answer(req, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        }),
    );
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** A loopback port with nothing listening: connections are refused. */
  async function deadUrl(): Promise<string> {
    const s = http.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const { port } = s.address() as AddressInfo;
    await new Promise<void>((r) => s.close(() => r()));
    return `http://127.0.0.1:${port}`;
  }

  function client(urls: string | string[], opts: MetadataClientOptions) {
    const m = new MetadataClient(urls, auth, opts);
    cleanups.push(() => m.close());
    return m;
  }

  it('keeps working while replicas stop, then fails Unavailable within the deadline', async () => {
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(replica));
    const m = client([a!.url, b!.url, c!.url], { deadlineMs: 600 });
    await bucket(m, 'x');
    expect(count('a', 'createBucket')).toBe(1);

    await a!.stop();
    // Answered by b, whose store never saw the bucket.
    expect(await m.getBucket('x')).toBeNull();
    expect(count('b', 'getBucket')).toBe(1);
    // The next calls go straight to b, the replica that answered last.
    await bucket(m, 'y');
    await m.putObject('y', obj('k'));
    expect(count('b')).toBe(3);
    expect(count('c')).toBe(0);

    await b!.stop();
    expect((await m.listBuckets()).map((x) => x.name)).toEqual([]);
    expect(count('c', 'listBuckets')).toBe(1);

    await c!.stop();
    const t0 = Date.now();
    const err = await m.getObject('y', 'k').catch((e: unknown) => e);
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(MetadataError);
    expect(err).not.toBeInstanceOf(AmbiguousMetadataError);
    expect(err).toMatchObject({ code: 'Unavailable' });
    expect((err as Error).message).toMatch(/3 replica/);
    expect(took).toBeGreaterThanOrEqual(500);
    expect(took).toBeLessThan(1500);
  });

  it('retries a mutation on another replica when the connection was refused', async () => {
    const b = await replica('b');
    const m = client([await deadUrl(), b.url], { deadlineMs: 2000 });
    await bucket(m, 'z');
    expect((await m.allocateNeedleIds(5)).count).toBe(5);
    expect(count('b', 'createBucket')).toBe(1);
    expect(count('b', 'allocateNeedleIds')).toBe(1);
    // A comma-separated string names the same replicas.
    const one = client(`${await deadUrl()},${b.url}`, { deadlineMs: 2000 });
    expect((await one.getBucket('z'))?.name).toBe('z');
  });

  it('skips a replica that answers 503, for reads and mutations alike', async () => {
    const busy = await rawServer('busy', (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"error":"NoLeader","message":"no leader"}');
    });
    const b = await replica('b');
    const m = client([busy, b.url], { deadlineMs: 2000 });
    await bucket(m, 'w');
    expect(count('busy', 'createBucket')).toBe(1);
    expect(count('b', 'createBucket')).toBe(1);
    expect((await m.getBucket('w'))?.name).toBe('w');
    expect(count('busy')).toBe(1); // b answered last, so it is asked first now

    // Alone, a replica answering 503 is asked again (it may be electing a leader) until
    // the deadline.
    const alone = client(busy, { deadlineMs: 300 });
    const err = await alone.allocateVolumeId().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'Unavailable', message: expect.stringMatching(/503/) });
    expect(count('busy', 'allocateVolumeId')).toBeGreaterThan(1);
  });

  it('does not retry a mutation that may have reached a replica, but retries reads', async () => {
    // The body is read in full, then the connection is reset without an answer.
    const reset = await rawServer('reset', (req) => req.socket.destroy());
    // The body is read in full and never answered.
    const hang = await rawServer('hang', () => {});
    const b = await replica('b');
    await bucket(client(b.url, {}), 'v');

    for (const [bad, opts] of [
      [reset, { deadlineMs: 5000 }],
      [hang, { deadlineMs: 5000, timeoutMs: 300 }],
    ] as const) {
      const name = bad === reset ? 'reset' : 'hang';
      const put = client([bad, b.url], opts);
      const e1 = await put.putObject('v', obj('k')).catch((e: unknown) => e);
      expect(e1).toBeInstanceOf(AmbiguousMetadataError);
      expect(e1).toMatchObject({ code: 'Unavailable', message: expect.stringMatching(/may or/) });
      const alloc = client([bad, b.url], opts);
      expect(await code(alloc.allocateNeedleIds(10))).toBe('Unavailable');
      // Each reached the misbehaving replica once and no other.
      expect(count(name, 'putObjectStored')).toBe(1);
      expect(count(name, 'allocateNeedleIds')).toBe(1);
      expect(count('b', 'putObjectStored')).toBe(0);
      expect(count('b', 'allocateNeedleIds')).toBe(0);

      const read = client([bad, b.url], opts);
      expect((await read.getBucket('v'))?.name).toBe('v');
      expect(count(name, 'getBucket')).toBe(1);
      expect(count('b', 'getBucket')).toBeGreaterThanOrEqual(1);
    }
  });

  it('gives up a read on a replica that hangs after readAttemptMs, not timeoutMs', async () => {
    const hang = await rawServer('hang', () => {});
    const b = await replica('b');
    await bucket(client(b.url, {}), 'h');
    // timeoutMs stays 30 s: a stopped replica must not hold the read that long.
    const m = client([hang, b.url], { deadlineMs: 3000, readAttemptMs: 1500 });
    const t0 = performance.now();
    expect((await m.getBucket('h'))?.name).toBe('h');
    const ms = performance.now() - t0;
    expect(count('hang', 'getBucket')).toBe(1);
    expect(ms).toBeGreaterThanOrEqual(1400); // it did wait for the hung replica
    expect(ms).toBeLessThan(10_000); // not the 30 s attempt timeout
  });

  it("moves reads, not mutations, past a replica's own Unavailable answer", async () => {
    // A 409 Unavailable from a replica cannot say whether a forwarded mutation was applied.
    const seen: (string | undefined)[] = [];
    const noLeader = await rawServer('noleader', (req, res) => {
      seen.push(req.headers['x-test'] as string | undefined);
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end('{"error":"Unavailable","message":"no directory leader within 5000 ms"}');
    });
    const b = await replica('b');
    const m = client([noLeader, b.url], { deadlineMs: 2000 });
    expect(await m.getBucket('u')).toBeNull();
    expect(count('b', 'getBucket')).toBe(1);
    const other = new MetadataClient([noLeader, b.url], auth, { headers: { 'x-test': 'yes' } });
    cleanups.push(() => other.close());
    const err = await other
      .createBucket({ name: 'u', owner: 'o', createdAt: 1, region: 'r' })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'Unavailable', message: expect.stringMatching(/leader/) });
    expect(err).not.toBeInstanceOf(AmbiguousMetadataError);
    expect(count('b', 'createBucket')).toBe(0);
    expect(seen).toEqual([undefined, 'yes']);
  });

  it('makes the mutations of an unanswered batch ambiguous, and retries its reads', async () => {
    const reset = await rawServer('reset', (req) => req.socket.destroy());
    const hang = await rawServer('hang', () => {});
    const b = await replica('b');
    await bucket(client(b.url, {}), 'v');

    for (const [bad, opts] of [
      [reset, { deadlineMs: 5000 }],
      [hang, { deadlineMs: 5000, timeoutMs: 300 }],
    ] as const) {
      const name = bad === reset ? 'reset' : 'hang';
      arrivals.length = 0;
      const m = client([bad, b.url], { ...opts, batch: { maxInFlight: 1 } });
      // The first read and the first mutation go alone; the rest wait for them and then
      // leave as one batch of reads and one of mutations.
      const lone = m.getBucket('v');
      const puts = Array.from({ length: 10 }, (_, i) =>
        m.putObject('v', obj(`k${i}`)).catch((e: unknown) => e),
      );
      const allocs = Array.from({ length: 3 }, () =>
        m.allocateNeedleIds(5).catch((e: unknown) => e),
      );
      const reads = Array.from({ length: 10 }, () => m.getBucket('v'));
      expect((await lone)?.name).toBe('v');
      for (const e of [...(await Promise.all(puts)), ...(await Promise.all(allocs))]) {
        expect(e).toBeInstanceOf(AmbiguousMetadataError);
        expect(e).toMatchObject({ code: 'Unavailable', message: expect.stringMatching(/may or/) });
      }
      for (const r of await Promise.all(reads)) expect(r?.name).toBe('v');
      expect(count(name, '_batch')).toBe(2);
      // Each mutation reached the misbehaving replica once, and no other.
      expect(count(name, 'putObjectStored')).toBe(10);
      expect(count(name, 'allocateNeedleIds')).toBe(3);
      expect(count('b', 'putObjectStored')).toBe(0);
      expect(count('b', 'allocateNeedleIds')).toBe(0);
      expect(count(name, 'getBucket')).toBe(11);
      expect(count('b', 'getBucket')).toBe(11);
    }
  });

  it('retries a whole batch elsewhere when it could not be sent, or got a 503', async () => {
    const busy = await rawServer('busy', (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"error":"NoLeader","message":"no leader"}');
    });
    const b = await replica('b');
    for (const first of [await deadUrl(), busy]) {
      arrivals.length = 0;
      const m = client([first, b.url], { deadlineMs: 3000, batch: { maxInFlight: 1 } });
      const names = Array.from({ length: 30 }, (_, i) => `${first === busy ? 's' : 'd'}${i}`);
      await Promise.all(names.map((n) => bucket(m, n)));
      const ids = await Promise.all(Array.from({ length: 5 }, () => m.allocateNeedleIds(2)));
      for (const r of ids) expect(typeof r.first).toBe('bigint');
      expect(count('b', 'createBucket')).toBe(30);
      expect(count('b', 'allocateNeedleIds')).toBe(5);
      if (first === busy) {
        expect(count('busy', '_batch')).toBe(1);
        expect(count('busy', 'createBucket')).toBe(30);
      }
    }
  });

  it("moves reads, not mutations, past a batch call's own Unavailable answer", async () => {
    const noLeader = await rawServer('noleader', (req, res) => {
      const e = { error: 'Unavailable', message: 'no directory leader within 5000 ms' };
      const calls = (req as http.IncomingMessage & { calls?: unknown[] }).calls;
      const body = calls ? JSON.stringify(calls.map(() => ({ e: { ...e, status: 409 } }))) : '';
      res.writeHead(calls ? 200 : 409, { 'content-type': 'application/json' });
      res.end(body || JSON.stringify(e));
    });
    const b = await replica('b');
    const m = client([noLeader, b.url], { deadlineMs: 2000, batch: { maxInFlight: 1 } });
    const calls = [
      ...Array.from({ length: 5 }, () => m.getBucket('u')),
      ...Array.from({ length: 5 }, (_, i) => bucket(m, `u${i}`)),
    ];
    const out = await Promise.all(calls.map((p) => p.catch((e: unknown) => e)));
    expect(count('noleader', '_batch')).toBe(2);
    expect(out.slice(0, 5)).toEqual([null, null, null, null, null]);
    for (const e of out.slice(5)) {
      expect(e).toBeInstanceOf(MetadataError);
      expect(e).not.toBeInstanceOf(AmbiguousMetadataError);
      expect(e).toMatchObject({ code: 'Unavailable', message: expect.stringMatching(/leader/) });
    }
    expect(count('b', 'getBucket')).toBe(5);
    expect(count('b', 'createBucket')).toBe(0);
  });
});
