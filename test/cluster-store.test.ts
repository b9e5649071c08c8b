// ClusterNeedleStore against a real cluster on loopback: a Raft directory and three store
// nodes, one of them behind a proxy that can make it slow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterNeedleStore } from '../data-path/cluster-store.ts';
import type { NeedleRef } from '../store-node/api.ts';
import { StoreError } from '../store-node/errors.ts';
import { startTestCluster, type TestCluster } from './kit/data-cluster.ts';
import { tempDir } from './kit/temp-dirs.ts';
import { until as poll } from './kit/until.ts';

let c: TestCluster;
let cs: ClusterNeedleStore;
let nextNeedle = 1n;

beforeAll(async () => {
  c = await startTestCluster(tempDir(), { stores: 3, slow: [2] });
  cs = new ClusterNeedleStore({ directory: c.dir.client, auth: c.auth, aliveMs: 1000 });
});

afterAll(async () => {
  await cs?.close();
  await c?.close();
});

async function volumeOn(replicas: string[]): Promise<number> {
  const id = await c.dir.client.allocateVolumeId();
  await c.dir.client.createVolume({
    id,
    replicas,
    replicaCount: replicas.length,
    state: 'writable',
    createdAt: Date.now(),
    version: 1,
  });
  await cs.createVolume(id);
  return id;
}

function ref(volumeId: number): NeedleRef {
  return { volumeId, needleId: nextNeedle++, cookie: 0x1234 + Number(nextNeedle) };
}

/** Sets nodes' heartbeat load (lower is read first) and makes the store see it. */
async function loads(l: Record<string, number>): Promise<void> {
  for (const n of c.nodes) n.load = l[n.id] ?? 50;
  await c.beat();
  await cs.view.refreshNodes();
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof StoreError ? e.code : String(e);
  }
}

const until = (cond: () => boolean | Promise<boolean>) =>
  poll('condition', cond, 10_000, { everyMs: 50 });

describe('ClusterNeedleStore', () => {
  it('writes through the primary to every replica and reads back', async () => {
    const vid = await volumeOn(['s1', 's2']);
    const r = ref(vid);
    const body = Buffer.from('replicated needle body');
    await cs.put(r, body, 'text/plain');
    expect((await c.direct(0).get(r)).data).toEqual(body);
    expect((await c.direct(1).get(r)).data).toEqual(body);
    expect(await code(c.direct(2).get(r))).toBe('NoSuchVolume');
    expect((await cs.get(r)).data).toEqual(body);
    expect((await cs.get(r, { start: 11, end: 16 })).data.toString()).toBe('needle');
    expect(await cs.head(r)).toEqual({ size: body.length });
  });

  it('fails a write with ReplicaWriteFailed when a replica is down', async () => {
    const vid = await volumeOn(['s1', 's2']);
    await c.stopNode(1);
    try {
      expect(await code(cs.put(ref(vid), Buffer.from('x')))).toBe('ReplicaWriteFailed');
    } finally {
      await c.startNode(1);
    }
  });

  it('reads from another replica when the first is down', async () => {
    const vid = await volumeOn(['s1', 's2']);
    const r = ref(vid);
    await cs.put(r, Buffer.from('fallback'));
    await loads({ s1: 0, s2: 100 });
    // The store still believes s1 is up: the read must find out by failing over.
    await c.stopNode(0);
    try {
      const before = cs.stats.fallbacks + cs.stats.hedgeWins;
      expect((await cs.get(r)).data.toString()).toBe('fallback');
      expect(cs.stats.fallbacks + cs.stats.hedgeWins).toBe(before + 1);
    } finally {
      await c.startNode(0);
    }
  });

  it('reads a needle missing on one replica from another', async () => {
    const vid = await volumeOn(['s1', 's2']);
    const r = ref(vid);
    await cs.put(r, Buffer.from('still on s2'));
    await c.direct(0).delete(r);
    await loads({ s1: 0, s2: 100 });
    expect((await cs.get(r)).data.toString()).toBe('still on s2');
    await c.direct(1).delete(r);
    expect(await code(cs.get(r))).toBe('NoSuchNeedle');
  });

  it('hedges a read when the first replica is slow', async () => {
    const vid = await volumeOn(['s3', 's1']);
    const r = ref(vid);
    await cs.put(r, Buffer.from('hedged'));
    await loads({ s3: 0, s1: 100 });
    c.nodes[2]!.delayMs = 1500;
    try {
      const before = { ...cs.stats };
      const t0 = Date.now();
      expect((await cs.get(r)).data.toString()).toBe('hedged');
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(cs.stats.hedged).toBe(before.hedged + 1);
      expect(cs.stats.hedgeWins).toBe(before.hedgeWins + 1);
    } finally {
      c.nodes[2]!.delayMs = 0;
    }
  });

  it('deletes on every replica, and later on one that was down', async () => {
    const vid = await volumeOn(['s1', 's2']);
    const r = ref(vid);
    await cs.put(r, Buffer.from('to delete'));
    // On s2's disk before it goes down (it keeps it across the restart); checked here, not
    // after the restart, where the retry queue may already have deleted it.
    expect((await c.direct(1).get(r)).data.toString()).toBe('to delete');
    await c.stopNode(1);
    try {
      await cs.delete(r);
      expect(cs.pendingDeletes).toBe(1);
      expect(await code(c.direct(0).get(r))).toBe('NoSuchNeedle');
      await new Promise((res) => setTimeout(res, 500));
      expect(cs.pendingDeletes).toBe(1); // retries fail while it is down
    } finally {
      await c.startNode(1);
    }
    await until(() => cs.pendingDeletes === 0);
    expect(await code(c.direct(1).get(r))).toBe('NoSuchNeedle');
    expect(await code(cs.delete(r))).toBe('NoSuchNeedle');
  });

  it('reports a volume the directory does not know', async () => {
    expect(await code(cs.get({ volumeId: 999_999, needleId: 1n, cookie: 1 }))).toBe('NoSuchVolume');
  });
});
