// Extra replicas with real stores and a real 3-replica Raft directory: read counts sent
// through the network client (reportReads, forwarded to the leader), the leader's policy
// copying a hot needle onto the stores that do not hold its volume, listing them in the
// replicated xrep table only once they hold it, re-pointing after an overwrite, and
// dropping a store that went offline.
import { describe, expect, it, vi } from 'vitest';
import { main as adminCache } from '../../cli/admin-cache.ts';
import { AUTH_HEADER } from '../../common/internal-auth.ts';
import type { ObjectData } from '../../data-path/object-data.ts';
import { StoreError } from '../../store-node/errors.ts';
import { startDataCluster, type TestCluster } from '../../test/kit/data-cluster.ts';
import { once, useFixture } from '../../test/kit/fixture.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { TEST_SECRET } from '../../test/kit/test-directory.ts';
import { until as poll } from '../../test/kit/until.ts';
import type { ChunkRef, ObjectRecord } from '../model/api.ts';
import type { ExtraReplicaRecord } from '../model/hot.ts';
import { MetadataClient } from '../wire/client.ts';

let c: TestCluster;
let data: ObjectData;
useFixture(
  () => startDataCluster(tempDir(), 4),
  (dc) => ({ c, data } = dc),
);

/** Copies, removals and offline marks take a few leader ticks or manager rounds. */
const until = <T>(what: string, fn: () => Promise<T | undefined>) =>
  poll(what, fn, 20_000, { everyMs: 100 });

const refOf = (ch: ChunkRef) => ({
  volumeId: ch.volumeId,
  needleId: BigInt(ch.needleId),
  cookie: ch.cookie,
});

async function putObject(key: string, body: Buffer): Promise<ChunkRef> {
  const w = await data.write(once(body), { maxSize: 1 << 20, replicaCount: 2 });
  const rec: ObjectRecord = {
    key,
    size: w.size,
    etag: '0'.repeat(32),
    lastModified: 1,
    userMeta: {},
    chunks: w.chunks,
    owner: 'root',
    contentType: 'image/jpeg',
  };
  await c.dir.client.putObject('hot', rec);
  expect(w.chunks).toHaveLength(1);
  return w.chunks[0]!;
}

/** Reads 600 times (over the replicate threshold of 500) as gateway g1, and gets the table. */
const report = (key: string, reads = 600) =>
  c.dir.client.reportReads({ gateway: 'g1', counts: [['hot', key, reads]], stats: { hits: 3 } });

const entryOf = (extra: ExtraReplicaRecord[], ch: ChunkRef) =>
  extra.find((x) => x.volumeId === ch.volumeId && x.needleId === ch.needleId);

const index = (id: string) => c.nodes.findIndex((n) => n.id === id);

describe('extra replicas of a hot object', () => {
  it('are copied to the stores without its volume, listed once there, and follow the object', async () => {
    await c.dir.client.createBucket({ name: 'hot', owner: 'root', createdAt: 1, region: 'r' });
    const body = Buffer.from('a hot photo '.repeat(100));
    const ch = await putObject('cat.jpg', body);
    const holders = (await c.dir.client.getVolume(ch.volumeId))!.replicas;
    const others = c.nodes.map((n) => n.id).filter((id) => !holders.includes(id));
    expect(others).toHaveLength(2);

    // Counted on the leader (this client may reach a follower: forwarded), answered with
    // the table; the copies come a tick or two later, and are listed only once made.
    await report('cat.jpg'); // once: over the replicate threshold, under the cache one
    const entry = await until('two extra replicas listed', async () => {
      const snap = await report('cat.jpg', 0);
      expect(snap).toMatchObject({ periodMs: 600_000, leaseMs: 1_000 });
      const e = entryOf(snap.extra, ch);
      return e && e.stores.length === 2 ? e : undefined;
    });
    expect([...entry.stores].sort()).toEqual([...others].sort());
    expect(entry).toMatchObject({ bucket: 'hot', key: 'cat.jpg', cookie: ch.cookie });
    const snap = await report('cat.jpg', 0);
    expect(snap.objects.find((r) => r.key === 'cat.jpg')).toMatchObject({
      level: 'replicas',
      needleId: ch.needleId,
    });
    // Each copy reads back through the store's normal needle GET.
    for (const id of entry.stores) {
      const got = await c.direct(index(id)).get(refOf(ch));
      expect(Buffer.from(got.data).equals(body)).toBe(true);
    }
    // Every replica's table says the same (replicated), and the leader's status shows them.
    const status = await cacheStatus();
    expect(status.leader.here).toBe(true);
    expect(status.stats.extraAdded).toBe(2);
    expect(status.gateways.g1?.stats).toEqual({ hits: 3 });
    expect(status.top[0]).toMatchObject({ bucket: 'hot', key: 'cat.jpg' });
    expect(entryOf(status.extra, ch)?.stores.length).toBe(2);
    await checkCli(ch, entry.stores);
    // A follower passes a report on to the leader, and answers with the same table.
    const follower = c.dir.replicas.findIndex((r) => r !== null && !r.host.isLeader);
    const viaFollower = new MetadataClient(c.dir.urls[follower]!, c.auth, { batch: false });
    try {
      const before = await cacheStatus();
      const s = await viaFollower.reportReads({ gateway: 'g2', counts: [['hot', 'cat.jpg', 1]] });
      expect(entryOf(s.extra, ch)?.stores.length).toBe(2);
      expect(s.objects.map((o) => o.key)).toEqual(['cat.jpg']);
      const after = await cacheStatus();
      expect(after.stats.reports).toBe(before.stats.reports + 1);
      expect(after.top[0]?.reads).toBe(before.top[0]!.reads + 1);
    } finally {
      await viaFollower.close();
    }

    // Overwritten: the record moves to the new needle, which gets its own copies, and the
    // old needle's copies are removed from the table and then from the stores.
    const body2 = Buffer.from('the new photo '.repeat(90));
    const ch2 = await putObject('cat.jpg', body2);
    // The writing gateway says so with its next report (the policy re-reads just those).
    await c.dir.client.reportReads({ gateway: 'g1', counts: [], written: [['hot', 'cat.jpg']] });
    const moved = await until('the new needle with its extra replicas', async () => {
      const s = await report('cat.jpg', 0);
      const rec = s.objects.find((r) => r.key === 'cat.jpg');
      const e = entryOf(s.extra, ch2);
      return rec?.needleId === ch2.needleId && !entryOf(s.extra, ch) && e?.stores.length
        ? e
        : undefined;
    });
    for (const id of moved.stores) {
      const got = await c.direct(index(id)).get(refOf(ch2));
      expect(Buffer.from(got.data).equals(body2)).toBe(true);
    }
    const oldHolders = (await c.dir.client.getVolume(ch.volumeId))!.replicas;
    for (const id of entry.stores.filter((s) => !oldHolders.includes(s))) {
      await until(`the old copy removed from ${id}`, async () => {
        const e = await c
          .direct(index(id))
          .get(refOf(ch))
          .then(
            () => undefined,
            (x: unknown) => x,
          );
        return e instanceof StoreError ? true : undefined;
      });
    }

    // A store holding a copy goes offline: it is dropped from the entry (reads then go to
    // the volume's replicas and the other copy).
    const gone = moved.stores[0]!;
    await c.stopNode(index(gone));
    const left = await until('the offline store dropped', async () => {
      const e = entryOf((await report('cat.jpg', 0)).extra, ch2);
      return e && !e.stores.includes(gone) ? e : undefined;
    });
    expect(left.stores).not.toContain(gone);
    await c.startNode(index(gone));
  }, 90_000);
});

interface CacheStatus {
  leader: { id: string | null; url: string | null; here: boolean };
  stats: { extraAdded: number; reports: number };
  gateways: Record<string, { at: number; stats: Record<string, number> }>;
  top: Array<{ bucket: string; key: string; reads: number }>;
  extra: ExtraReplicaRecord[];
}

/** GET /cluster/cache of the leader, signed like every internal call. */
async function cacheStatus(): Promise<CacheStatus> {
  const leader = c.dir.urls[c.dir.replicas.findIndex((r) => r?.host.isLeader)]!;
  const res = await fetch(`${leader}/cluster/cache`, {
    headers: { [AUTH_HEADER]: c.auth.sign('GET', '/cluster/cache') },
  });
  expect(res.status).toBe(200);
  const unsigned = await fetch(`${leader}/cluster/cache`);
  expect(unsigned.status).toBe(403);
  return (await res.json()) as CacheStatus;
}

/** Runs `kubestorage admin cache status [args]` in this process: its output. */
async function cli(args: string[]): Promise<string> {
  vi.stubEnv('KUBESTORAGE_CLUSTER_SECRET', TEST_SECRET);
  const out: string[] = [];
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out.push(String(s));
    return true;
  });
  // A follower first: the CLI must find the leader, which alone has the counts.
  const follower = c.dir.replicas.findIndex((r) => r !== null && !r.host.isLeader);
  const urls = [c.dir.urls[follower]!, ...c.dir.urls.filter((_, i) => i !== follower)];
  try {
    await adminCache(['status', '--directory', urls.join(','), ...args]);
    return out.join('');
  } finally {
    o.mockRestore();
    vi.unstubAllEnvs();
  }
}

async function checkCli(ch: ChunkRef, stores: string[]): Promise<void> {
  const j = JSON.parse(await cli(['--json'])) as {
    directory: CacheStatus;
    stores: Array<{ id: string; status?: { extra: { count: number } } }>;
  };
  expect(j.directory.leader.here).toBe(true);
  expect(entryOf(j.directory.extra, ch)?.stores.sort()).toEqual([...stores].sort());
  for (const id of stores) {
    expect(j.stores.find((s) => s.id === id)?.status?.extra.count).toBe(1);
  }
  const text = await cli([]);
  expect(text).toContain('HOT OBJECTS (1): gateway 0, store 0, replicas 1, cooling 0');
  expect(text).toMatch(new RegExp(`${ch.volumeId}/${ch.needleId}\\s+hot/cat\\.jpg\\s+\\S+ \\S+`));
  expect(text).toMatch(/g1\s+\d+s ago\s+3\s/); // the gateway's reported hits
  for (const id of stores) expect(text).toMatch(new RegExp(`\\n${id}\\s+online\\s`));
}
