// Re-replication when there is nowhere to copy to yet: the directory leader keeps the
// volume on its survivors, and tops it up to its replica count once a store is back.
import { describe, expect, it } from 'vitest';
import type { ObjectData } from '../data-path/object-data.ts';
import { startDataCluster, type TestCluster } from './kit/data-cluster.ts';
import { once, useFixture } from './kit/fixture.ts';
import { tempDir } from './kit/temp-dirs.ts';
import { until as poll } from './kit/until.ts';

let c: TestCluster;
let data: ObjectData;
useFixture(
  () => startDataCluster(tempDir(), 3),
  (dc) => ({ c, data } = dc),
);

/** Re-replication takes seconds; 20 s leaves room on a loaded machine. */
const until = <T>(what: string, fn: () => Promise<T | undefined>) =>
  poll(what, fn, 20_000, { everyMs: 100 });

describe('re-replication', () => {
  it('a volume trimmed for want of nodes gets its replica count back when a store returns', async () => {
    const body = Buffer.from('kept through a removal and an outage');
    const w = await data.write(once(body), { maxSize: 1 << 20 });
    const ch = w.chunks[0]!;
    const vol = (await c.dir.client.listVolumes()).find((v) => v.id === ch.volumeId)!;
    expect(vol.replicas).toHaveLength(2);
    const [removed, survivor] = vol.replicas as [string, string];
    const spare = c.nodes.findIndex((n) => !vol.replicas.includes(n.id));
    // The only other store goes offline, then a replica is removed for good: nowhere to copy.
    await c.stopNode(spare);
    await until('the spare offline', async () =>
      (await c.dir.client.listNodes()).find((n) => n.id === c.nodes[spare]!.id)?.state === 'offline'
        ? true
        : undefined,
    );
    await c.dir.client.setNodeState(removed, 'removed', Date.now());
    const trimmed = await until('the volume trimmed to its survivor', async () => {
      const v = (await c.dir.client.listVolumes()).find((x) => x.id === vol.id)!;
      return v.replicas.length === 1 ? v : undefined;
    });
    expect(trimmed.replicas).toEqual([survivor]);
    expect(trimmed.state).toBe('readonly');
    // The spare comes back: the volume must be copied to it, not left at one replica.
    await c.startNode(spare);
    const full = await until('the volume back at two replicas', async () => {
      const v = (await c.dir.client.listVolumes()).find((x) => x.id === vol.id)!;
      return v.replicas.length === 2 ? v : undefined;
    });
    expect(full.replicas).toEqual([survivor, c.nodes[spare]!.id]);
    const ref = { volumeId: ch.volumeId, needleId: BigInt(ch.needleId), cookie: ch.cookie };
    const got = await c.direct(spare).get(ref);
    expect(Buffer.from(got.data).equals(body)).toBe(true);
  });
});
