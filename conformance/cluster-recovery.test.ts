// Store failures on a real cluster (`kubestorage cluster up`: 3 Raft directory replicas, 4
// store nodes over 2 zones, 2 gateways, every one its own process on loopback):
//
//  1. A store removed for good (`admin store remove`), then another one silent past
//     --rereplicate-after-ms: the directory leader re-replicates their volumes until every
//     volume has its full replica count on online nodes again; the replicas of each volume
//     hold the same live needles and every object reads back byte-exact through both
//     gateways.
//  2. A store killed and restarted within the grace period: while it is down objects are
//     deleted and a survivor gets a needle it never saw; on its return the directory
//     reconciles it (missing needles copied, deletes applied) before marking it online,
//     and with the other replica of a volume killed it serves that volume alone.
//
// The real cluster already runs the Raft directory, so the integration-raft project (the
// same files with KUBESTORAGE_TEST_DIRECTORY=raft) skips it rather than run it twice.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import type { VolumeRecord } from '../directory/model/topology.ts';
import type { MetadataClient } from '../directory/wire/client.ts';
import { liveNeedles, startCluster, type TestCluster, until } from './cluster-util.ts';

const RUN = process.env.KUBESTORAGE_TEST_DIRECTORY !== 'raft';
const BUCKET = 'recovery';

interface Obj {
  key: string;
  data: Buffer;
  volumeId: number;
  needleId: string;
}

async function pool<T>(items: T[], width: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

/** `n` objects of 1–6 KiB random bytes, spread over both gateways; where each one landed. */
async function putObjects(c: TestCluster, prefix: string, n: number): Promise<Obj[]> {
  const objs = Array.from({ length: n }, (_, i) => ({
    key: `${prefix}/obj-${String(i).padStart(4, '0')}`,
    data: crypto.randomBytes(1024 + crypto.randomInt(5 * 1024)),
    volumeId: 0,
    needleId: '',
  }));
  await pool(objs, 8, async (o, i) => {
    await c.s3[i % c.s3.length]?.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: o.key, Body: o.data }),
    );
  });
  for (const o of objs) {
    const rec = await c.meta.getObject(BUCKET, o.key);
    expect(rec?.chunks.length, o.key).toBe(1);
    o.volumeId = rec?.chunks[0]?.volumeId ?? 0;
    o.needleId = rec?.chunks[0]?.needleId ?? '';
  }
  return objs;
}

async function read(s3: S3Client, key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from((await r.Body?.transformToByteArray()) ?? []);
}

/** Every object through every gateway, byte for byte. */
async function expectReadable(c: TestCluster, objs: Obj[]): Promise<void> {
  for (const [g, s3] of c.s3.entries()) {
    await pool(objs, 8, async (o) => {
      const got = await read(s3, o.key).catch((e: Error) => {
        throw new Error(`gateway ${g + 1}: GET ${o.key} (volume ${o.volumeId}): ${e.message}`);
      });
      expect(got.equals(o.data), `gateway ${g + 1}: ${o.key} byte-exact`).toBe(true);
    });
  }
}

/**
 * The volume table once re-replication is done: every volume at its full replica count, on
 * distinct nodes, none of them in `gone`, all of them online. False until then.
 */
async function settled(meta: MetadataClient, gone: string[]): Promise<VolumeRecord[] | false> {
  const [vols, nodes] = await Promise.all([meta.listVolumes(), meta.listNodes()]);
  const online = new Set(nodes.filter((n) => n.state === 'online').map((n) => n.id));
  const ok = vols.every(
    (v) =>
      v.replicas.length === v.replicaCount &&
      new Set(v.replicas).size === v.replicas.length &&
      v.replicas.every((r) => online.has(r) && !gone.includes(r)),
  );
  return ok && vols;
}

/** Walks the table and asserts what `settled` checks, one volume at a time. */
async function expectSettled(meta: MetadataClient, gone: string[]): Promise<VolumeRecord[]> {
  const [vols, nodes] = await Promise.all([meta.listVolumes(), meta.listNodes()]);
  const state = new Map(nodes.map((n) => [n.id, n.state]));
  expect(vols.length).toBeGreaterThan(0);
  for (const v of vols) {
    expect(v.replicas.length, `volume ${v.id}: ${v.replicas}`).toBe(v.replicaCount);
    expect(new Set(v.replicas).size, `volume ${v.id}: distinct nodes`).toBe(v.replicas.length);
    for (const r of v.replicas) {
      expect(gone, `volume ${v.id} still lists ${r}`).not.toContain(r);
      expect(state.get(r), `volume ${v.id}: replica ${r}`).toBe('online');
    }
  }
  return vols;
}

/** For every volume, each replica's live needle list is the same (and holds its objects). */
async function expectReplicasAgree(
  c: TestCluster,
  vols: VolumeRecord[],
  objs: Obj[],
): Promise<void> {
  for (const v of vols) {
    const lists = await Promise.all(v.replicas.map((r) => liveNeedles(c.store(r), v.id)));
    for (const [i, l] of lists.entries()) {
      expect(l, `volume ${v.id}: ${v.replicas[i]} vs ${v.replicas[0]}`).toEqual(lists[0]);
    }
    const ids = new Set(lists[0]?.map((s) => s.split(':')[0]));
    for (const o of objs.filter((x) => x.volumeId === v.id)) {
      expect(ids.has(o.needleId), `volume ${v.id}: needle of ${o.key}`).toBe(true);
    }
  }
}

function isNoSuchKey(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NoSuchKey' && err.$metadata?.httpStatusCode === 404;
}

describe.skipIf(!RUN)('a store removed for good', () => {
  let c: TestCluster | undefined;

  beforeAll(async () => {
    c = await startCluster('recovery-remove', [
      '--offline-after-ms',
      '1000',
      '--rereplicate-after-ms',
      '3000',
    ]);
  }, 60_000);

  afterAll(async () => {
    await c?.close();
  }, 60_000);

  it('cluster up wrote cluster.json as documented, readable by its owner only', async () => {
    const cl = c as TestCluster;
    const file = path.join(cl.dir, 'cluster.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const j = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(j.gateways).toHaveLength(2);
    for (const g of j.gateways) expect(g).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(j.directories.map((d: { id: string }) => d.id)).toEqual(['d1', 'd2', 'd3']);
    expect(j.stores.map((s: { id: string; zone: string }) => `${s.id}@${s.zone}`)).toEqual([
      's1@z1',
      's2@z2',
      's3@z1',
      's4@z2',
    ]);
    for (const p of [...j.directories, ...j.stores]) {
      expect(p).toMatchObject({ url: expect.stringMatching(/^http:/), pid: expect.any(Number) });
    }
    expect(j.accessKey).toMatch(/^KS[0-9A-F]+$/);
    expect(typeof j.secretKey).toBe('string');
    // Every process listens where cluster.json says.
    const all = [...j.gateways, ...j.directories.map((d: { url: string }) => d.url)];
    for (const u of [...all, ...j.stores.map((s: { url: string }) => s.url)]) {
      const r = await fetch(`${u}/`, { signal: AbortSignal.timeout(5_000) });
      expect(r.status).toBeGreaterThanOrEqual(200);
      await r.body?.cancel();
    }
  });

  it('re-replicates its volumes onto the other stores, and then those of a store gone silent', async () => {
    const cl = c as TestCluster;
    onTestFailed(() => {
      console.log(cl.logTail());
    });
    await cl.s3[0]?.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const objs = await putObjects(cl, 'a', 100);
    const before = await cl.meta.listVolumes();
    expect(before.some((v) => v.replicas.includes('s1'))).toBe(true);

    // Removal for good: kill -9, then the operator says it is not coming back.
    await cl.killStore('s1');
    const t0 = Date.now();
    const said = await cl.adminStore(['remove', 's1']);
    expect(said).toContain('removed');
    await until('s1 volumes re-replicated', () => settled(cl.meta, ['s1']), 60_000);
    const removeMs = Date.now() - t0;
    let vols = await expectSettled(cl.meta, ['s1']);
    expect((await cl.meta.listNodes()).find((n) => n.id === 's1')?.state).toBe('removed');
    await expectReplicasAgree(cl, vols, objs);
    await expectReadable(cl, objs);
    const moved = before.filter((v) => v.replicas.includes('s1')).length;
    console.log(
      `re-replication after 'admin store remove s1': ${removeMs} ms (${moved} of ${before.length} volumes)`,
    );

    // The other path: s3 goes silent and stays away past --rereplicate-after-ms.
    const before3 = vols.filter((v) => v.replicas.includes('s3')).length;
    expect(before3).toBeGreaterThan(0);
    await cl.killStore('s3');
    const t1 = Date.now();
    await until(
      's3 marked offline',
      async () => (await cl.meta.listNodes()).find((n) => n.id === 's3')?.state === 'offline',
      20_000,
      100,
    );
    const offlineMs = Date.now() - t1;
    await until('s3 volumes re-replicated', () => settled(cl.meta, ['s1', 's3']), 90_000);
    const silentMs = Date.now() - t1;
    vols = await expectSettled(cl.meta, ['s1', 's3']);
    await expectReplicasAgree(cl, vols, objs);
    await expectReadable(cl, objs);
    console.log(
      `re-replication after kill -9 s3: offline after ${offlineMs} ms, all ${before3} of its volumes re-homed after ${silentMs} ms`,
    );
  }, 170_000);
});

describe.skipIf(!RUN)('a restarted store', () => {
  let c: TestCluster | undefined;

  beforeAll(async () => {
    c = await startCluster('recovery-restart', [
      '--offline-after-ms',
      '1000',
      '--rereplicate-after-ms',
      '600000',
    ]);
  }, 60_000);

  afterAll(async () => {
    await c?.close();
  }, 60_000);

  it('is reconciled before it serves again, and then serves a volume alone', async () => {
    const cl = c as TestCluster;
    onTestFailed(() => {
      console.log(cl.logTail());
    });
    await cl.s3[0]?.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const objs = await putObjects(cl, 'b', 80);
    const onS2 = (await cl.meta.listVolumes()).filter((v) => v.replicas.includes('s2'));
    const s2Vols = new Set(onS2.map((v) => v.id));
    expect(
      objs.some((o) => s2Vols.has(o.volumeId)),
      'some object on a volume of s2',
    ).toBe(true);

    await cl.killStore('s2');
    const tKill = Date.now();
    // Only a store the directory saw go offline is reconciled on its return.
    await until(
      's2 marked offline',
      async () => (await cl.meta.listNodes()).find((n) => n.id === 's2')?.state === 'offline',
      20_000,
      100,
    );
    const offlineMs = Date.now() - tKill;

    // While s2 is down: delete every third object (s2 misses the tombstones) ...
    const deleted = objs.filter((_, i) => i % 3 === 0);
    const kept = objs.filter((_, i) => i % 3 !== 0);
    await pool(deleted, 4, async (o, i) => {
      await cl.s3[i % cl.s3.length]?.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: o.key }));
    });
    expect(
      deleted.some((o) => s2Vols.has(o.volumeId)),
      'a delete s2 missed',
    ).toBe(true);
    // ... and give a survivor a needle s2 never saw, on the s2 volume with the most objects.
    const count = (vid: number) => kept.filter((o) => o.volumeId === vid).length;
    const target = [...onS2].sort((a, b) => count(b.id) - count(a.id))[0] as VolumeRecord;
    expect(count(target.id)).toBeGreaterThan(0);
    const survivor = target.replicas.find((r) => r !== 's2') as string;
    const extra = {
      volumeId: target.id,
      needleId: (1n << 62n) + BigInt(crypto.randomInt(1 << 30)),
      cookie: crypto.randomInt(2 ** 32),
    };
    const extraData = crypto.randomBytes(3000);
    await cl.store(survivor).put(extra, extraData, 'application/octet-stream');

    const tStart = Date.now();
    const pid = cl.restartStore('s2');
    await until(
      's2 back online',
      async () => (await cl.meta.listNodes()).find((n) => n.id === 's2')?.state === 'online',
      60_000,
      100,
    );
    const reconcileMs = Date.now() - tStart;
    console.log(
      `reconcile: s2 offline ${offlineMs} ms after kill -9; restarted (pid ${pid}) and back online after ${reconcileMs} ms (down ${Date.now() - tKill} ms in all)`,
    );

    // Within the grace period nothing was re-homed: s2 still holds its volumes.
    const vols = await cl.meta.listVolumes();
    for (const v of onS2) {
      expect(vols.find((x) => x.id === v.id)?.replicas, `volume ${v.id}`).toContain('s2');
    }
    const deletedIds = new Set(deleted.map((o) => o.needleId));
    for (const v of vols.filter((x) => x.replicas.includes('s2'))) {
      const mine = await liveNeedles(cl.store('s2'), v.id);
      for (const r of v.replicas.filter((x) => x !== 's2')) {
        expect(mine, `volume ${v.id}: s2 vs ${r}`).toEqual(await liveNeedles(cl.store(r), v.id));
      }
      for (const n of mine) {
        expect(deletedIds.has(n.split(':')[0] as string), `volume ${v.id}: ${n} deleted`).toBe(
          false,
        );
      }
    }
    const copied = await cl.store('s2').getRaw(extra.volumeId, extra.needleId);
    expect(copied.cookie).toBe(extra.cookie);
    expect(copied.data.equals(extraData), 'the needle s2 missed, copied byte-exact').toBe(true);

    await expectReadable(cl, kept);
    for (const [g, s3] of cl.s3.entries()) {
      for (const o of deleted) {
        const err = await read(s3, o.key).then(
          () => null,
          (e: unknown) => e,
        );
        expect(isNoSuchKey(err), `gateway ${g + 1}: deleted ${o.key} → 404`).toBe(true);
      }
    }

    // The other replica of the target volume dies: s2 alone serves it.
    await cl.killStore(survivor);
    const alone = kept.filter((o) => o.volumeId === target.id);
    const tAlone = Date.now();
    await expectReadable(cl, alone);
    console.log(
      `volume ${target.id}: ${alone.length} objects read from s2 alone through ${cl.s3.length} gateways in ${Date.now() - tAlone} ms (${survivor} killed)`,
    );
  }, 170_000);
});
