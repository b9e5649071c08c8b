// ClusterPlacement + ClusterNeedleStore + ObjectData on a real loopback cluster (Raft
// directory, four store nodes), and the S3 gateway on top of them.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../common/log.ts';
import type { ClusterPlacement } from '../data-path/cluster-placement.ts';
import type { ClusterNeedleStore } from '../data-path/cluster-store.ts';
import type { ObjectData } from '../data-path/object-data.ts';
import type { ChunkRef } from '../directory/model/api.ts';
import { createGatewayServer } from '../gateway/app.ts';
import { ensureRootCredentials } from '../gateway/users.ts';
import { StoreError } from '../store-node/errors.ts';
import { type DataCluster, startDataCluster, type TestCluster } from './kit/data-cluster.ts';
import { tempDir } from './kit/temp-dirs.ts';

let dc: DataCluster;
let c: TestCluster;
let cs: ClusterNeedleStore;
let placement: ClusterPlacement;
let data: ObjectData;
const log = createLogger('cluster-test', process.env.KUBESTORAGE_LOG_LEVEL ?? 'silent');

beforeAll(async () => {
  dc = await startDataCluster(tempDir(), 4);
  ({ c, cs, placement, data } = dc);
});

afterAll(() => dc?.close());

async function* body(b: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += 10_000) yield b.subarray(i, i + 10_000);
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of it) out.push(b);
  return Buffer.concat(out);
}

/** Which test nodes hold each chunk, read from the stores themselves. */
async function holders(chunks: ChunkRef[]): Promise<string[][]> {
  return Promise.all(
    chunks.map(async (ch) => {
      const ref = { volumeId: ch.volumeId, needleId: BigInt(ch.needleId), cookie: ch.cookie };
      const found: string[] = [];
      for (let i = 0; i < c.nodes.length; i++) {
        if (!c.nodes[i]!.server) continue;
        const got = await c
          .direct(i)
          .get(ref)
          .catch(() => null);
        if (got?.data.length === ch.size) found.push(c.nodes[i]!.id);
      }
      return found;
    }),
  );
}

describe('ClusterPlacement', () => {
  it('writes objects onto directory-allocated volumes, on every replica', async () => {
    const bytes = Buffer.alloc(200 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 255;
    const { chunks, size } = await data.write(body(bytes), { maxSize: 1 << 30 });
    expect(size).toBe(bytes.length);
    expect(chunks).toHaveLength(4);
    for (const [i, h] of (await holders(chunks)).entries()) {
      const rec = await c.dir.client.getVolume(chunks[i]!.volumeId);
      expect(h.sort()).toEqual([...rec!.replicas].sort());
      expect(h).toHaveLength(2);
    }
    expect(await collect(data.read(chunks, 0, bytes.length - 1))).toEqual(bytes);
    expect(await collect(data.read(chunks, 70_000, 140_000))).toEqual(
      bytes.subarray(70_000, 140_001),
    );
    await data.free(chunks);
    expect((await holders(chunks)).flat()).toEqual([]);
  });

  it('keeps a pool per replica count', async () => {
    const ref = await placement.assign(10, 3);
    const rec = await c.dir.client.getVolume(ref.volumeId);
    expect(rec!.replicas).toHaveLength(3);
    expect(placement.pooled(3)).toContain(ref.volumeId);
    expect(placement.pooled()).not.toContain(ref.volumeId);
  });

  it('moves to other volumes when a replica of its volumes goes down', async () => {
    const first = await placement.assign(10);
    const down = (await c.dir.client.getVolume(first.volumeId))!.replicas[0]!;
    const i = c.nodes.findIndex((n) => n.id === down);
    await c.stopNode(i);
    // What the directory's failure detector will do; until then the operator's call.
    await c.dir.client.setNodeState(down, 'offline', Date.now());
    try {
      await cs.view.refreshNodes();
      for (let k = 0; k < 6; k++) {
        const r = await placement.assign(10);
        expect((await c.dir.client.getVolume(r.volumeId))!.replicas).not.toContain(down);
      }
      const { chunks } = await data.write(body(Buffer.from('while a node is down')), {
        maxSize: 100,
      });
      expect((await holders(chunks))[0]).toHaveLength(2);
    } finally {
      await c.dir.client.setNodeState(down, 'online', Date.now());
      await c.startNode(i);
    }
  });

  it('a replica that dies before anyone noticed: the write fails there and lands whole elsewhere', async () => {
    const r = await placement.assign(10);
    const victim = (await c.dir.client.getVolume(r.volumeId))!.replicas[1]!;
    const i = c.nodes.findIndex((n) => n.id === victim);
    // Killed, and neither the directory nor this gateway knows yet: volumes on it stay pooled.
    await c.stopNode(i);
    const orig = placement.writeFailed.bind(placement);
    const failed: number[] = [];
    placement.writeFailed = (vid, e) => {
      failed.push(vid);
      return orig(vid, e);
    };
    try {
      for (let k = 0; k < 12; k++) {
        const text = Buffer.from(`written while ${victim} is dead, #${k}`);
        const { chunks } = await data.write(body(text), { maxSize: 100 });
        for (const ch of chunks) {
          expect((await c.dir.client.getVolume(ch.volumeId))!.replicas).not.toContain(victim);
        }
        // Every replica of the volume it landed on holds it, byte for byte.
        expect((await holders(chunks))[0]).toHaveLength(2);
        expect(await collect(data.read(chunks, 0, text.length - 1))).toEqual(text);
      }
      // Writes did hit the dead replica (then this gateway suspects it and avoids the rest
      // of its volumes), and only volumes with it failed.
      expect(failed.length).toBeGreaterThan(0);
      for (const vid of failed) {
        expect((await c.dir.client.getVolume(vid))!.replicas).toContain(victim);
        expect(placement.pooled()).not.toContain(vid);
      }
    } finally {
      placement.writeFailed = orig;
      await c.startNode(i);
      // Back: once the directory has heard from it since this gateway's failed call, the
      // suspicion ends, however long it was meant to last (it used to hold its 5 s; with the
      // node of the test before also suspected, the next test's 3 replicas on 4 nodes got
      // 503 meanwhile).
      cs.view.suspect(victim, 60_000);
      const t0 = Date.now();
      while (cs.view.suspected().includes(victim) && Date.now() - t0 < 4_000) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(cs.view.suspected()).not.toContain(victim);
    }
  });

  it('tells which write failures to retry on another volume', async () => {
    const r = await placement.assign(10);
    expect(placement.writeFailed(r.volumeId, new StoreError('InvalidArgument', 'x'))).toBe(false);
    expect(placement.pooled()).toContain(r.volumeId);
    expect(placement.writeFailed(r.volumeId, new StoreError('ReplicaWriteFailed', 'x'))).toBe(true);
    expect(placement.pooled()).not.toContain(r.volumeId);
    expect(placement.writeFailed(1, Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(
      true,
    );
  });
});

describe('S3 gateway on the cluster', () => {
  let server: Server;
  let s3: S3Client;
  let s3opts: S3ClientConfig;

  beforeAll(async () => {
    const creds = await ensureRootCredentials(
      c.dir.client,
      'KSCLUSTERTESTKEY0001',
      'cluster-secret-key-0123456789abcdefghij',
    );
    server = createGatewayServer({
      meta: c.dir.client,
      data,
      log,
      config: { region: 'us-east-1', maxObjectSize: 1 << 30 },
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    s3opts = {
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: creds.accessKey, secretAccessKey: creds.secretKey },
    };
    s3 = new S3Client(s3opts);
  });

  afterAll(async () => {
    s3?.destroy();
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  });

  it('puts, gets, lists and deletes objects stored on two replicas', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'cluster' }));
    const big = Buffer.alloc(150 * 1024, 'k');
    await s3.send(new PutObjectCommand({ Bucket: 'cluster', Key: 'small.txt', Body: 'hello' }));
    await s3.send(new PutObjectCommand({ Bucket: 'cluster', Key: 'big.bin', Body: big }));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'cluster', Key: 'small.txt' }));
    expect(await got.Body!.transformToString()).toBe('hello');
    const gotBig = await s3.send(new GetObjectCommand({ Bucket: 'cluster', Key: 'big.bin' }));
    expect(Buffer.from(await gotBig.Body!.transformToByteArray())).toEqual(big);
    const list = await s3.send(new ListObjectsV2Command({ Bucket: 'cluster' }));
    expect(list.Contents?.map((o) => o.Key)).toEqual(['big.bin', 'small.txt']);

    const rec = await c.dir.client.getObject('cluster', 'small.txt');
    expect((await holders(rec!.chunks))[0]).toHaveLength(2);
    await s3.send(new DeleteObjectCommand({ Bucket: 'cluster', Key: 'small.txt' }));
    expect((await holders(rec!.chunks)).flat()).toEqual([]);
    const after = await s3.send(new ListObjectsV2Command({ Bucket: 'cluster' }));
    expect(after.Contents?.map((o) => o.Key)).toEqual(['big.bin']);
  });

  it('keeps as many copies as the bucket or the request says (x-ks-replica-count)', async () => {
    // A client that adds one header to every request it sends.
    const withHeader = (value: string) => {
      const client = new S3Client(s3opts);
      client.middlewareStack.add(
        (next) => (args) => {
          (args.request as { headers: Record<string, string> }).headers['x-ks-replica-count'] =
            value;
          return next(args);
        },
        { step: 'build', name: 'replicaCount' },
      );
      return client;
    };
    const three = withHeader('3');
    const one = withHeader('1');
    // Three copies need three of the four nodes usable in this gateway's view; the tests
    // above stopped and restarted two of them, and on a loaded machine the view may not
    // have heard of them back yet (that 503 is right, but not what this test is about).
    const t0 = Date.now();
    for (;;) {
      await cs.view.refreshNodes();
      if (c.nodes.every((n) => cs.view.usable(n.id))) break;
      if (Date.now() - t0 > 15_000) throw new Error(`nodes not usable: ${cs.view.suspected()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      await three.send(new CreateBucketCommand({ Bucket: 'triple' }));
      expect((await c.dir.client.getBucket('triple'))?.replicaCount).toBe(3);
      // The bucket's setting applies to plain PUTs...
      await s3.send(new PutObjectCommand({ Bucket: 'triple', Key: 'a', Body: 'three copies' }));
      const a = await c.dir.client.getObject('triple', 'a');
      expect((await holders(a!.chunks))[0]).toHaveLength(3);
      // ...and the request header overrides it.
      await one.send(new PutObjectCommand({ Bucket: 'triple', Key: 'b', Body: 'one copy' }));
      const b = await c.dir.client.getObject('triple', 'b');
      expect((await holders(b!.chunks))[0]).toHaveLength(1);
      const bad = withHeader('9');
      await expect(
        bad.send(new PutObjectCommand({ Bucket: 'triple', Key: 'c', Body: 'x' })),
      ).rejects.toMatchObject({ name: 'InvalidArgument', $metadata: { httpStatusCode: 400 } });
      bad.destroy();
    } finally {
      three.destroy();
      one.destroy();
    }
  });
});
