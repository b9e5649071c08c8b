// The request pipeline's access checks (router.ts declares, app.ts checks once), the
// commit-time owner check that makes the cached bucket record safe, and the S3 errors the
// directory's refusals become.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BucketRecord,
  MetadataError,
  type MetadataStore,
  type ObjectRecord,
} from '../directory/model/api.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';
import type { BucketRequest } from './access.ts';
import { toS3Error } from './app.ts';
import { signRequest } from './auth/sign.ts';
import type { S3Request, Services } from './context.ts';
import { route } from './router.ts';

let srv: TestServer;
/** Bucket records this gateway sees instead of the directory's: a cache not yet expired. */
const stale = new Map<string, BucketRecord>();
/** Metadata calls made to fail, by method name. */
const failing = new Map<string, MetadataError>();

beforeAll(async () => {
  srv = await startTestServer(tempDir('ks-access-'), {
    wrapMeta: (m: MetadataStore) =>
      new Proxy(m, {
        get(target, prop) {
          if (prop === 'getBucket') {
            return async (name: string) => stale.get(name) ?? target.getBucket(name);
          }
          const fail = typeof prop === 'string' ? failing.get(prop) : undefined;
          if (fail) {
            return async () => {
              throw fail;
            };
          }
          const v = Reflect.get(target, prop);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }),
  });
  await srv.meta.createUser({ id: 'bob', displayName: 'bob', createdAt: 1 });
});

afterAll(async () => {
  await srv?.close();
});

async function send(
  method: string,
  path: string,
  opts: { query?: [string, string][]; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  const url = new URL(srv.endpoint);
  const query = opts.query ?? [];
  const { headers } = signRequest({
    method,
    rawPath: path,
    query,
    headers: { host: url.host, ...opts.headers },
    accessKey: srv.accessKey,
    secretKey: srv.secretKey,
  });
  const qs = query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  const res = await fetch(`${srv.endpoint}${path}${qs ? `?${qs}` : ''}`, {
    method,
    headers,
    body: opts.body,
  });
  return { status: res.status, body: await res.text() };
}

function object(key: string, owner: string): ObjectRecord {
  return {
    key,
    size: 0,
    etag: 'd41d8cd98f00b204e9800998ecf8427e',
    lastModified: 1,
    userMeta: {},
    chunks: [],
    owner,
  };
}

describe('access declared by the router', () => {
  it('gives every operation an access level', () => {
    const req = (method: string, bucket: string, key: string, query = '', headers = {}) =>
      ({ method, bucket, key, query: new URLSearchParams(query), headers }) as S3Request;
    expect(route(req('GET', '', '')).access).toBe('none');
    expect(route(req('PUT', 'b', '')).access).toBe('create');
    expect(route(req('HEAD', 'b', '')).access).toBe('read');
    expect(route(req('GET', 'b', '', 'list-type=2')).access).toBe('read');
    expect(route(req('GET', 'b', 'k')).access).toBe('read');
    expect(route(req('PUT', 'b', 'k')).access).toBe('write');
    expect(route(req('PUT', 'b', 'k', '', { 'x-amz-copy-source': 'a/b' })).access).toBe('write');
    expect(route(req('POST', 'b', '', 'delete')).access).toBe('write');
    expect(route(req('DELETE', 'b', '')).access).toBe('owner');
    expect(route(req('GET', 'b', '', 'acl')).access).toBe('none');
  });

  it("checks the bucket once, before the handler, with today's errors", async () => {
    await srv.meta.createBucket({ name: 'bobs', owner: 'bob', createdAt: 1, region: 'us-east-1' });
    // A bad part number is reported before the bucket is looked at, as before.
    const part = await send('PUT', '/no-such-bucket/k', {
      query: [
        ['partNumber', '0'],
        ['uploadId', 'x'],
      ],
    });
    expect(part.status).toBe(400);
    expect(part.body).toContain('<Code>InvalidArgument</Code>');
    const missing = await send('PUT', '/no-such-bucket/k', { body: 'x' });
    expect(missing.status).toBe(404);
    expect(missing.body).toContain('<BucketName>no-such-bucket</BucketName>');
    for (const [method, path] of [
      ['GET', '/bobs'],
      ['GET', '/bobs/k'],
      ['PUT', '/bobs/k'],
      ['DELETE', '/bobs'],
      ['HEAD', '/bobs'],
    ] as const) {
      const r = await send(method, path);
      expect(r.status, `${method} ${path}`).toBe(403);
      if (method !== 'HEAD') expect(r.body).toContain('<Code>AccessDenied</Code>');
    }
    // CopyObject's source bucket: the same check, on the source.
    await send('PUT', '/mine');
    const copy = await send('PUT', '/mine/k', { headers: { 'x-amz-copy-source': '/bobs/k' } });
    expect(copy.status).toBe(403);
    expect(copy.body).toContain('<Resource>/bobs</Resource>');
  });
});

describe('a bucket re-created by another user while a gateway still caches it', () => {
  it("refuses the former owner's writes at commit and writes nothing", async () => {
    expect((await send('PUT', '/handover')).status).toBe(200);
    const old = await srv.meta.getBucket('handover');
    // Another gateway: the bucket is deleted and bob creates it again; this gateway's
    // cached record still says root owns it.
    stale.set('handover', old!);
    await srv.meta.deleteBucket('handover');
    await srv.meta.createBucket({
      name: 'handover',
      owner: 'bob',
      createdAt: 2,
      region: 'us-east-1',
    });
    await srv.meta.putObject('handover', object('bobs-file', 'bob'));
    try {
      const put = await send('PUT', '/handover/new', { body: 'from the former owner' });
      expect(put.status).toBe(403);
      expect(put.body).toContain('<Code>AccessDenied</Code>');
      const del = await send('DELETE', '/handover/bobs-file');
      expect(del.status).toBe(403);
      const multi = await send('POST', '/handover', {
        query: [['delete', '']],
        body: '<Delete><Object><Key>bobs-file</Key></Object></Delete>',
      });
      expect(multi.body).toContain('<Code>AccessDenied</Code>');
      const upload = await send('POST', '/handover/big', { query: [['uploads', '']] });
      expect(upload.status).toBe(403);
      expect((await send('DELETE', '/handover')).status).toBe(403);
    } finally {
      stale.delete('handover');
    }
    expect(await srv.meta.getObject('handover', 'new')).toBeNull();
    expect(await srv.meta.getObject('handover', 'bobs-file')).not.toBeNull();
    expect((await srv.meta.listUploads('handover', { maxUploads: 10 })).uploads).toEqual([]);
    expect((await srv.meta.getBucket('handover'))?.owner).toBe('bob');
  });

  it("refuses parts and completion in the new owner's upload", async () => {
    await srv.meta.createBucket({
      name: 'handover2',
      owner: 'root',
      createdAt: 1,
      region: 'us-east-1',
    });
    stale.set('handover2', (await srv.meta.getBucket('handover2'))!);
    await srv.meta.deleteBucket('handover2');
    await srv.meta.createBucket({
      name: 'handover2',
      owner: 'bob',
      createdAt: 2,
      region: 'us-east-1',
    });
    const u = { uploadId: 'u1', bucket: 'handover2', key: 'k', initiated: 1, owner: 'bob' };
    await srv.meta.createUpload({ ...u, object: { userMeta: {}, owner: 'bob' } });
    try {
      const part = await send('PUT', '/handover2/k', {
        query: [
          ['partNumber', '1'],
          ['uploadId', 'u1'],
        ],
        body: 'part',
      });
      expect(part.status).toBe(403);
      const abort = await send('DELETE', '/handover2/k', { query: [['uploadId', 'u1']] });
      expect(abort.status).toBe(403);
    } finally {
      stale.delete('handover2');
    }
    const parts = await srv.meta.listParts('handover2', 'k', 'u1', { max: 10 });
    expect(parts.parts).toEqual([]);
    expect(await srv.meta.getUpload('handover2', 'k', 'u1')).not.toBeNull();
  });
});

describe('conditional PUT', () => {
  it('names If-Match as the failed condition when the ETag differs', async () => {
    await send('PUT', '/cond');
    expect((await send('PUT', '/cond/k', { body: 'one' })).status).toBe(200);
    const r = await send('PUT', '/cond/k', { headers: { 'if-match': '"0123"' }, body: 'two' });
    expect(r.status).toBe(412);
    expect(r.body).toContain('<Condition>If-Match</Condition>');
    const n = await send('PUT', '/cond/k', { headers: { 'if-none-match': '*' }, body: 'two' });
    expect(n.status).toBe(412);
    expect(n.body).toContain('<Condition>If-None-Match</Condition>');
  });
});

describe('directory refusals as S3 errors', () => {
  const services = { log: { error() {}, warn() {} } } as unknown as Services;

  it('maps every MetadataError code to its own S3 error and status', () => {
    const cases: [MetadataError['code'], string, number][] = [
      ['BucketAlreadyExists', 'BucketAlreadyExists', 409],
      ['BucketAlreadyOwnedByYou', 'BucketAlreadyOwnedByYou', 409],
      ['BucketNotEmpty', 'BucketNotEmpty', 409],
      ['NoSuchBucket', 'NoSuchBucket', 404],
      ['NoSuchUpload', 'NoSuchUpload', 404],
      ['InvalidPart', 'InvalidPart', 400],
      ['PreconditionFailed', 'PreconditionFailed', 412],
      ['BucketOwnerChanged', 'AccessDenied', 403],
      ['NoSuchUser', 'NoSuchUser', 404],
      ['UserExists', 'UserAlreadyExists', 409],
      ['KeyExists', 'KeyAlreadyExists', 409],
      ['Unavailable', 'ServiceUnavailable', 503],
    ];
    for (const [from, code, status] of cases) {
      const e = toS3Error(new MetadataError(from, 'x'), services);
      expect([e.code, e.status], from).toEqual([code, status]);
    }
  });

  it('answers an unknown code (another build, over the wire) with 500, and none with 409', async () => {
    const unknown = new MetadataError('Frobnicated' as MetadataError['code'], 'x');
    expect(toS3Error(unknown, services).status).toBe(500);
    await send('PUT', '/refusals');
    failing.set('getObject', unknown);
    failing.set('listParts', new MetadataError('NoSuchUpload', 'aborted meanwhile'));
    await srv.meta.createUpload({
      uploadId: 'u2',
      bucket: 'refusals',
      key: 'k',
      initiated: 1,
      owner: 'root',
      object: { userMeta: {}, owner: 'root' },
    });
    try {
      const get = await send('GET', '/refusals/k');
      expect(get.status).toBe(500);
      expect(get.body).toContain('<Code>InternalError</Code>');
      // An upload aborted between the handler's two reads.
      const parts = await send('GET', '/refusals/k', { query: [['uploadId', 'u2']] });
      expect(parts.status).toBe(404);
      expect(parts.body).toContain('<Code>NoSuchUpload</Code>');
    } finally {
      failing.clear();
    }
  });
});

// Checked by the compiler (npm run typecheck): each @ts-expect-error line must fail to
// compile, so the guard cannot quietly become optional again.
describe('bucket writes need the commit-time guard', () => {
  it('does not compile a bucket write without the guard, nor one from a non-bucket handler', () => {
    const rec = {} as Parameters<Services['meta']['putObject']>[1];
    const handlers = [
      async (req: BucketRequest) => {
        // @ts-expect-error the owner guard is required
        await req.services.meta.deleteObject('b', 'k');
        // @ts-expect-error the owner guard is required with the put's conditions
        await req.services.meta.putObject('b', rec, { ifNoneMatch: true });
        await req.services.meta.putObject('b', rec, { bucketOwner: 'alice' });
      },
      async (req: S3Request) => {
        // @ts-expect-error only a BucketRequest carries bucket writes
        await req.services.meta.putObject('b', rec, { bucketOwner: 'alice' });
      },
    ];
    expect(handlers).toHaveLength(2);
  });
});
