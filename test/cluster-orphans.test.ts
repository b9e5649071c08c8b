// Orphan needles (written to stores, never committed) are reclaimed by the directory
// leader's sweep after a grace period — and nothing a record points at is touched.
import { describe, expect, it } from 'vitest';
import type { ObjectData } from '../data-path/object-data.ts';
import type { ChunkRef, ObjectRecord } from '../directory/model/api.ts';
import { startDataCluster, type TestCluster } from './kit/data-cluster.ts';
import { once, useFixture } from './kit/fixture.ts';
import { tempDir } from './kit/temp-dirs.ts';

let c: TestCluster;
let data: ObjectData;
const DAY = 24 * 3_600_000;
useFixture(
  () => startDataCluster(tempDir(), 3),
  (dc) => ({ c, data } = dc),
);

const write = (text: string) => data.write(once(Buffer.from(text)), { maxSize: 1 << 20 });

/** How many of the test nodes hold each chunk (read from the stores directly). */
async function copies(chunks: ChunkRef[]): Promise<number> {
  let n = 0;
  for (const ch of chunks) {
    const ref = { volumeId: ch.volumeId, needleId: BigInt(ch.needleId), cookie: ch.cookie };
    for (let i = 0; i < c.nodes.length; i++) {
      if (
        await c
          .direct(i)
          .get(ref)
          .then(
            () => true,
            () => false,
          )
      )
        n++;
    }
  }
  return n;
}

describe('orphan sweep', () => {
  it('reclaims needles no record refers to, after the grace period only', async () => {
    await c.dir.client.createBucket({
      name: 'o',
      owner: 'root',
      createdAt: 1,
      region: 'us-east-1',
    });
    const kept = await write('committed object');
    const rec: ObjectRecord = {
      key: 'k',
      size: kept.size,
      etag: '0'.repeat(32),
      lastModified: 1,
      userMeta: {},
      chunks: kept.chunks,
      owner: 'root',
    };
    await c.dir.client.putObject('o', rec);
    const orphan = await write('written, then the gateway died before the commit');
    expect(await copies(orphan.chunks)).toBe(2);

    const manager = c.dir.leader()?.manager;
    if (!manager) throw new Error('no leader');
    const t0 = Date.now();
    const first = await manager.sweepOrphans(undefined, t0);
    expect(first.removed).toBe(0);
    expect(first.candidates).toBe(1);

    // A write in flight during the next pass is only marked, never removed in the same pass.
    const late = await write('in flight during the second pass');
    const early = await manager.sweepOrphans(undefined, t0 + DAY / 2);
    expect(early.removed).toBe(0);

    const second = await manager.sweepOrphans(undefined, t0 + DAY + 1);
    expect(second.removed).toBe(1);
    expect(await copies(orphan.chunks)).toBe(0);
    expect(await copies(late.chunks)).toBe(2);
    expect(await copies(kept.chunks)).toBe(2);
    // Committing the late one in time saves it from the next pass.
    await c.dir.client.putObject('o', {
      ...rec,
      key: 'late',
      chunks: late.chunks,
      size: late.size,
    });
    const third = await manager.sweepOrphans(undefined, t0 + 3 * DAY);
    expect(third.removed).toBe(0);
    expect(await copies(late.chunks)).toBe(2);
  });

  it('finds an orphan that only a second replica holds', async () => {
    const manager = c.dir.leader()!.manager;
    const held = await write('the volume this lands in');
    const vid = held.chunks[0]!.volumeId;
    const vol = (await c.dir.client.listVolumes()).find((v) => v.id === vid)!;
    const second = c.nodes.findIndex((n) => n.id === vol.replicas[1]);
    // Stored on the second replica alone (a copy the first never got, or lost a delete).
    const ref = { volumeId: vid, needleId: 987_654_321n, cookie: 42 };
    await c.direct(second).put(ref, Buffer.from('only here'));
    const t0 = Date.now() + 10 * DAY;
    const marked = await manager.sweepOrphans(undefined, t0);
    expect(marked.removed).toBe(0);
    const swept = await manager.sweepOrphans(undefined, t0 + DAY + 1);
    expect(swept.removed).toBeGreaterThanOrEqual(1);
    await expect(c.direct(second).get(ref)).rejects.toMatchObject({ code: 'NoSuchNeedle' });
  });
});
