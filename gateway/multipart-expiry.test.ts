// Abandoned multipart uploads expire (gateway/multipart-expiry.ts): the upload disappears
// as after AbortMultipartUpload, its parts' needles are freed, younger uploads stay, 0
// disables it, and a CompleteMultipartUpload racing the expiry ends as a readable object
// or as a clean abort — never as an object whose needles were freed. On the embedded stack
// (with KUBESTORAGE_TEST_DIRECTORY=raft, over a 3-replica Raft directory), and once on a
// cluster's replicated data path.
import crypto from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../common/log.ts';
import { assembleGateway, defaultConfig, type Gateway } from '../compose/gateway.ts';
import type { ChunkRef, MetadataStore, PartRecord } from '../directory/model/api.ts';
import { StoreError } from '../store-node/errors.ts';
import type { Store } from '../store-node/store.ts';
import { startTestCluster, type TestCluster } from '../test/kit/data-cluster.ts';
import { s3Client, s3Error } from '../test/kit/s3-clients.ts';
import { payload, tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServerWithClient, type TestServer } from '../test/kit/test-server.ts';
import { sleep, until } from '../test/kit/until.ts';
import { MultipartExpiry } from './multipart-expiry.ts';

const HOUR = 3_600_000;
const log = () => createLogger('test-expiry', process.env.KUBESTORAGE_LOG_LEVEL ?? 'silent');
const ROOT = {
  accessKey: 'KSTESTACCESSKEY00001',
  secretKey: 'test-secret-key-0123456789abcdefghijklmn',
};

/** What the S3 helpers below need of a gateway. */
type Client = { gw: Gateway; s3: S3Client };

interface Srv extends TestServer {
  s3: S3Client;
}

/** test/kit/test-server.ts with the expiry settings (and its Raft variant). */
const startServer = (
  dir: string,
  o: { expiryMs: number; sweepMs: number; wrapMeta?: (m: MetadataStore) => MetadataStore },
): Promise<Srv> =>
  startTestServerWithClient(
    dir,
    {
      gateway: { multipartExpiryMs: o.expiryMs, multipartSweepMs: o.sweepMs },
      wrapMeta: o.wrapMeta,
    },
    { maxAttempts: 1 },
  );

/** Creates an upload of `key` with `n` parts; its id and the parts' records. */
async function openUpload(
  srv: Client,
  bucket: string,
  key: string,
  n: number,
  size = 1000,
): Promise<{ uploadId: string; parts: PartRecord[]; bodies: Buffer[] }> {
  const { UploadId } = await srv.s3.send(
    new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
  );
  const bodies: Buffer[] = [];
  for (let i = 1; i <= n; i++) {
    const body = payload(BigInt(i * 7919 + key.length), size);
    bodies.push(body);
    await srv.s3.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        PartNumber: i,
        Body: body,
      }),
    );
  }
  const { parts } = await srv.gw.meta.listParts(bucket, key, UploadId!, { max: 1000 });
  expect(parts).toHaveLength(n);
  return { uploadId: UploadId!, parts, bodies };
}

const complete = (
  srv: Client,
  bucket: string,
  key: string,
  uploadId: string,
  parts: PartRecord[],
) =>
  srv.s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
    }),
  );

async function listed(srv: Client, bucket: string): Promise<string[]> {
  const r = await srv.s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (r.Uploads ?? []).map((u) => u.UploadId!);
}

/** Whether the needle is gone from the store (a read says NoSuchNeedle). */
async function gone(store: Store, c: ChunkRef): Promise<boolean> {
  try {
    await store.read(c.volumeId, BigInt(c.needleId), c.cookie);
    return false;
  } catch (e) {
    if (e instanceof StoreError && e.code === 'NoSuchNeedle') return true;
    throw e;
  }
}

const md5 = (b: Buffer | undefined) => crypto.createHash('md5').update(b!).digest('hex');

/** A GET's body by its MD5 (toEqual on megabytes of Buffer takes minutes). */
const bytesOf = async (obj: { Body?: { transformToByteArray(): Promise<Uint8Array> } }) =>
  md5(Buffer.from(await obj.Body!.transformToByteArray()));

const chunksOf = (parts: PartRecord[]) => parts.flatMap((p) => p.chunks);

async function expectAborted(srv: Client, bucket: string, key: string, uploadId: string) {
  expect(await listed(srv, bucket)).not.toContain(uploadId);
  const part = new UploadPartCommand({
    Bucket: bucket,
    Key: key,
    UploadId: uploadId,
    PartNumber: 9,
    Body: 'late',
  });
  expect((await s3Error(srv.s3.send(part))).name).toBe('NoSuchUpload');
  expect(await srv.gw.meta.getUpload(bucket, key, uploadId)).toBeNull();
}

describe('multipart expiry on a timer', () => {
  let srv: Srv;
  beforeAll(async () => {
    // Long enough for the upload and its parts to be sent before it expires, on a slow machine.
    srv = await startServer(tempDir('ks-mpx-timer-'), { expiryMs: 2500, sweepMs: 100 });
    await srv.s3.send(new CreateBucketCommand({ Bucket: 'timer' }));
  });
  afterAll(() => srv?.close());

  it('aborts an abandoned upload and frees its parts once it is older than the expiry', async () => {
    const u = await openUpload(srv, 'timer', 'abandoned', 3);
    for (const c of chunksOf(u.parts)) expect(await gone(srv.store, c)).toBe(false);
    await until(
      'the upload expired',
      async () => !(await listed(srv, 'timer')).includes(u.uploadId),
    );
    await expectAborted(srv, 'timer', 'abandoned', u.uploadId);
    const done = await s3Error(complete(srv, 'timer', 'abandoned', u.uploadId, u.parts));
    expect(done.name).toBe('NoSuchUpload');
    expect(
      (await s3Error(srv.s3.send(new GetObjectCommand({ Bucket: 'timer', Key: 'abandoned' }))))
        .name,
    ).toBe('NoSuchKey');
    for (const c of chunksOf(u.parts)) expect(await gone(srv.store, c)).toBe(true);
    expect(srv.gw.multipartExpiry.stats.expired).toBeGreaterThanOrEqual(1);
    expect(srv.gw.multipartExpiry.stats.parts).toBeGreaterThanOrEqual(3);
  });
});

describe('multipart expiry disabled', () => {
  let srv: Srv;
  beforeAll(async () => {
    srv = await startServer(tempDir('ks-mpx-off-'), { expiryMs: 0, sweepMs: 50 });
    await srv.s3.send(new CreateBucketCommand({ Bucket: 'off' }));
  });
  afterAll(() => srv?.close());

  it('keeps every upload when multipartExpiryMs is 0', async () => {
    const u = await openUpload(srv, 'off', 'kept', 1);
    expect(srv.gw.multipartExpiry.enabled).toBe(false);
    await sleep(400);
    expect(await listed(srv, 'off')).toContain(u.uploadId);
    // Even a pass asked for explicitly, ten years on, aborts nothing.
    const r = await srv.gw.multipartExpiry.pass(Date.now() + 10 * 365 * 24 * HOUR);
    expect(r.expired).toBe(0);
    expect(await listed(srv, 'off')).toContain(u.uploadId);
    for (const c of chunksOf(u.parts)) expect(await gone(srv.store, c)).toBe(false);
    await complete(srv, 'off', 'kept', u.uploadId, u.parts);
  });
});

describe('multipart expiry passes', () => {
  let srv: Srv;
  /** Runs inside the gateway's completeUpload call, just before it commits. */
  let beforeCommit: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    // An hour's expiry and no timer: the tests run the passes, with a clock of their own.
    srv = await startServer(tempDir('ks-mpx-pass-'), {
      expiryMs: HOUR,
      sweepMs: 0,
      wrapMeta: (m) =>
        new Proxy(m, {
          get(target, prop) {
            if (prop === 'completeUpload') {
              return async (...args: Parameters<MetadataStore['completeUpload']>) => {
                const hook = beforeCommit;
                beforeCommit = undefined;
                await hook?.();
                return target.completeUpload(...args);
              };
            }
            const v = Reflect.get(target, prop);
            return typeof v === 'function' ? v.bind(target) : v;
          },
        }),
    });
    await srv.s3.send(new CreateBucketCommand({ Bucket: 'pass' }));
    await srv.s3.send(new CreateBucketCommand({ Bucket: 'other' }));
  });
  afterAll(() => srv?.close());

  it('keeps uploads younger than the expiry and aborts the older ones, in every bucket', async () => {
    const a = await openUpload(srv, 'pass', 'a', 2);
    const b = await openUpload(srv, 'other', 'b', 1);
    await sleep(5);
    const young = await openUpload(srv, 'pass', 'young', 1);
    const initiated = (await srv.gw.meta.getUpload('pass', 'young', young.uploadId))!.initiated;
    const expiry = srv.gw.multipartExpiry;
    // Half an hour on: nothing is old enough.
    let r = await expiry.pass(Date.now() + HOUR / 2);
    expect(r.expired).toBe(0);
    expect(await listed(srv, 'pass')).toEqual(expect.arrayContaining([young.uploadId, a.uploadId]));
    // When `young` is a millisecond short of the expiry, the two before it are past it.
    r = await expiry.pass(initiated + HOUR - 1);
    expect(r).toMatchObject({ expired: 2, parts: 3, lost: 0, errors: 0 });
    await expectAborted(srv, 'pass', 'a', a.uploadId);
    await expectAborted(srv, 'other', 'b', b.uploadId);
    for (const c of chunksOf([...a.parts, ...b.parts])) expect(await gone(srv.store, c)).toBe(true);
    expect(await listed(srv, 'pass')).toContain(young.uploadId);
    for (const c of chunksOf(young.parts)) expect(await gone(srv.store, c)).toBe(false);
    const got = await complete(srv, 'pass', 'young', young.uploadId, young.parts);
    expect(got.ETag).toBeDefined();
    const obj = await srv.s3.send(new GetObjectCommand({ Bucket: 'pass', Key: 'young' }));
    expect(await bytesOf(obj)).toBe(md5(young.bodies[0]));
  });

  it('pages through more uploads than one listing page holds', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) {
      const { UploadId } = await srv.s3.send(
        new CreateMultipartUploadCommand({ Bucket: 'other', Key: `many/${i % 5}` }),
      );
      ids.push(UploadId!);
    }
    // Small pages through a metadata view that caps every listing at 4 uploads.
    const capped = new Proxy(srv.gw.meta, {
      get(target, prop) {
        if (prop === 'listUploads') {
          return (bucket: string, opts: Parameters<MetadataStore['listUploads']>[1]) =>
            target.listUploads(bucket, { ...opts, maxUploads: Math.min(4, opts.maxUploads) });
        }
        const v = Reflect.get(target, prop);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const e = new MultipartExpiry({
      meta: capped,
      data: srv.gw.data,
      log: log(),
      expiryMs: HOUR,
      sweepMs: 0,
    });
    const r = await e.pass(Date.now() + 2 * HOUR);
    expect(r.expired).toBeGreaterThanOrEqual(25);
    const left = await listed(srv, 'other');
    for (const id of ids) expect(left).not.toContain(id);
  });

  it('an expiry that aborts first makes a racing Complete fail cleanly, parts freed', async () => {
    const u = await openUpload(srv, 'pass', 'lost-race', 2, 5 * 1024 * 1024);
    // The gateway has read the upload and its parts; the expiry commits before it does.
    let expired: unknown;
    beforeCommit = async () => {
      expired = await srv.gw.multipartExpiry.pass(Date.now() + 2 * HOUR);
    };
    const err = await s3Error(complete(srv, 'pass', 'lost-race', u.uploadId, u.parts));
    expect(expired).toMatchObject({ expired: 1, parts: 2 });
    expect(err.name).toBe('NoSuchUpload');
    const get = new GetObjectCommand({ Bucket: 'pass', Key: 'lost-race' });
    expect((await s3Error(srv.s3.send(get))).name).toBe('NoSuchKey');
    await expectAborted(srv, 'pass', 'lost-race', u.uploadId);
    for (const c of chunksOf(u.parts)) expect(await gone(srv.store, c)).toBe(true);
  });

  it('a Complete that commits first keeps its object; the expiry frees nothing', async () => {
    const u = await openUpload(srv, 'pass', 'won-race', 2, 5 * 1024 * 1024);
    // The expiry has listed the upload as expired; the client completes before its abort.
    const racing = new Proxy(srv.gw.meta, {
      get(target, prop) {
        if (prop === 'abortUpload') {
          return async (...args: Parameters<MetadataStore['abortUpload']>) => {
            await complete(srv, 'pass', 'won-race', u.uploadId, u.parts);
            return target.abortUpload(...args);
          };
        }
        const v = Reflect.get(target, prop);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const e = new MultipartExpiry({
      meta: racing,
      data: srv.gw.data,
      log: log(),
      expiryMs: HOUR,
      sweepMs: 0,
    });
    const r = await e.pass(Date.now() + 2 * HOUR);
    expect(r).toMatchObject({ expired: 0, lost: 1, errors: 0 });
    for (const c of chunksOf(u.parts)) expect(await gone(srv.store, c)).toBe(false);
    const obj = await srv.s3.send(new GetObjectCommand({ Bucket: 'pass', Key: 'won-race' }));
    expect(await bytesOf(obj)).toBe(md5(Buffer.concat(u.bodies)));
  });

  it('Completes racing two sweeping gateways end as readable objects or clean aborts', async () => {
    const n = 12;
    const ups = await Promise.all(
      Array.from({ length: n }, (_, i) => openUpload(srv, 'pass', `race/${i}`, 1, 3000 + i)),
    );
    const second = new MultipartExpiry({
      meta: srv.gw.meta,
      data: srv.gw.data,
      log: log(),
      expiryMs: HOUR,
      sweepMs: 0,
    });
    const later = Date.now() + 2 * HOUR;
    const [completes, p1, p2] = await Promise.all([
      Promise.allSettled(
        ups.map(async (u, i) => {
          await sleep(i * 40);
          return complete(srv, 'pass', `race/${i}`, u.uploadId, u.parts);
        }),
      ),
      srv.gw.multipartExpiry.pass(later),
      second.pass(later),
    ]);
    let completed = 0;
    for (const [i, u] of ups.entries()) {
      const key = `race/${i}`;
      const c = completes[i]!;
      if (c.status === 'fulfilled') {
        completed++;
        const obj = await srv.s3.send(new GetObjectCommand({ Bucket: 'pass', Key: key }));
        expect(await bytesOf(obj)).toBe(md5(u.bodies[0]));
        for (const ch of chunksOf(u.parts)) expect(await gone(srv.store, ch)).toBe(false);
      } else {
        expect((await s3Error(Promise.reject(c.reason))).name).toBe('NoSuchUpload');
        const get = new GetObjectCommand({ Bucket: 'pass', Key: key });
        expect((await s3Error(srv.s3.send(get))).name).toBe('NoSuchKey');
        await expectAborted(srv, 'pass', key, u.uploadId);
        for (const ch of chunksOf(u.parts)) expect(await gone(srv.store, ch)).toBe(true);
      }
    }
    // Each upload was either completed or aborted by exactly one of the two gateways.
    expect(completed + p1.expired + p2.expired).toBe(n);
    expect(p1.errors + p2.errors).toBe(0);
  });
});

describe.skipIf(process.env.KUBESTORAGE_TEST_DIRECTORY === 'raft')(
  'multipart expiry on a cluster gateway',
  () => {
    let c: TestCluster;
    let gw: Gateway;
    let s3: S3Client;
    beforeAll(async () => {
      c = await startTestCluster(tempDir('ks-mpx-cluster-'), { stores: 3 });
      const cfg = defaultConfig();
      cfg.cluster.offlineAfterMs = 1000;
      cfg.gateway.chunkSize = 64 * 1024;
      cfg.gateway.replicas = 2;
      cfg.gateway.multipartExpiryMs = HOUR;
      cfg.gateway.multipartSweepMs = 0;
      gw = await assembleGateway({
        cfg,
        log: log(),
        meta: { directory: c.dir.urls, auth: c.auth },
        data: { cluster: c.auth },
        root: ROOT,
      });
      const endpoint = await gw.listen('127.0.0.1', 0);
      s3 = s3Client({ endpoint, ...gw.creds! }, { maxAttempts: 1 });
      await s3.send(new CreateBucketCommand({ Bucket: 'clu' }));
    }, 60_000);
    afterAll(async () => {
      s3?.destroy();
      await gw?.close();
      await c?.close();
    });

    it('frees an expired upload’s needles on every replica', async () => {
      const srv = { gw, s3 };
      // 200 KB parts: several 64 KiB needles each.
      const u = await openUpload(srv, 'clu', 'abandoned', 2, 200 * 1000);
      const kept = await openUpload(srv, 'clu', 'completed', 1, 1000);
      await complete(srv, 'clu', 'completed', kept.uploadId, kept.parts);
      const onReplicas = async (ch: ChunkRef) => {
        const vol = (await c.dir.client.getVolume(ch.volumeId))!;
        return Promise.all(
          vol.replicas.map(async (id) => {
            const i = c.nodes.findIndex((n) => n.id === id);
            return gone(c.nodes[i]!.store, ch);
          }),
        );
      };
      const chunks = chunksOf(u.parts);
      expect(chunks.length).toBeGreaterThan(2);
      for (const ch of chunks) expect(await onReplicas(ch)).toEqual([false, false]);
      const r = await gw.multipartExpiry.pass(Date.now() + 2 * HOUR);
      expect(r).toMatchObject({ expired: 1, parts: 2, errors: 0 });
      await expectAborted(srv, 'clu', 'abandoned', u.uploadId);
      for (const ch of chunks) expect(await onReplicas(ch)).toEqual([true, true]);
      const obj = await s3.send(new GetObjectCommand({ Bucket: 'clu', Key: 'completed' }));
      expect(await bytesOf(obj)).toBe(md5(kept.bodies[0]));
    });
  },
);
