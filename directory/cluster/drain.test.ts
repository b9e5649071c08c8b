// Draining a store (issue 13): the directory leader's cluster manager copies every volume
// that lists a draining store to other stores — from the draining store itself when it
// holds the only copy — drops it from the volumes, then marks it removed. Real stores and a
// real 3-replica directory; the manager runs on its leader.
import { describe, expect, it, vi } from 'vitest';
import { main as adminStore } from '../../cli/admin-store.ts';
import type { ObjectData } from '../../data-path/object-data.ts';
import { startDataCluster, type TestCluster } from '../../test/kit/data-cluster.ts';
import { once, useCleanups } from '../../test/kit/fixture.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { TEST_SECRET } from '../../test/kit/test-directory.ts';
import { until as poll } from '../../test/kit/until.ts';
import type { ChunkRef } from '../model/api.ts';

let c: TestCluster;
let data: ObjectData;
const cleanups = useCleanups();

/** A fresh directory and 3 stores per test (a drain needs somewhere to copy to). */
async function start(): Promise<void> {
  const dc = await startDataCluster(tempDir(), 3);
  cleanups.push(() => dc.close());
  ({ c, data } = dc);
}

/** Copying takes a few manager rounds (1 s each); 20 s leaves room on a loaded machine. */
const until = <T>(what: string, fn: () => Promise<T | undefined>) =>
  poll(what, fn, 20_000, { everyMs: 100 });

async function readBack(chunks: ChunkRef[], size: number): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of data.read(chunks, 0, size - 1)) out.push(b);
  return Buffer.concat(out);
}

const nodeState = async (id: string) =>
  (await c.dir.client.listNodes()).find((n) => n.id === id)?.state;

describe('draining a store', () => {
  it('two copies: the volume gets a replica on the third store, the drained one is removed', async () => {
    await start();
    const bodies = [0, 1, 2, 3].map((i) => Buffer.from(`object ${i} `.repeat(200 + i)));
    const written = [];
    for (const b of bodies) {
      written.push(await data.write(once(b), { maxSize: 1 << 20, replicaCount: 2 }));
    }
    const vid = written[0]!.chunks[0]!.volumeId;
    const vol = (await c.dir.client.getVolume(vid))!;
    expect(vol.replicas).toHaveLength(2);
    const leaving = vol.replicas[1]!;
    const stay = vol.replicas[0]!;
    const third = c.nodes.find((n) => !vol.replicas.includes(n.id))!.id;

    await c.dir.client.setNodeState(leaving, 'draining', Date.now());
    await until('the drained store removed', async () =>
      (await nodeState(leaving)) === 'removed' ? true : undefined,
    );
    const after = (await c.dir.client.getVolume(vid))!;
    expect(after.replicas).not.toContain(leaving);
    expect([...after.replicas].sort()).toEqual([stay, third].sort());
    expect(after.state).toBe('readonly');
    // No volume lists the drained store any more.
    for (const v of await c.dir.client.listVolumes()) expect(v.replicas).not.toContain(leaving);
    // Every object reads back, and the new replica holds its copy itself.
    for (const [i, w] of written.entries()) {
      expect((await readBack(w.chunks, w.size)).equals(bodies[i]!)).toBe(true);
    }
    const ch = written[0]!.chunks[0]!;
    const ref = { volumeId: ch.volumeId, needleId: BigInt(ch.needleId), cookie: ch.cookie };
    const i3 = c.nodes.findIndex((n) => n.id === third);
    expect(Buffer.from((await c.direct(i3).get(ref)).data).equals(bodies[0]!)).toBe(true);

    // Two stores left and two copies wanted: a second drain has nowhere to copy to. The
    // store stays draining and listed, its data readable, until there is room.
    await c.dir.client.setNodeState(stay, 'draining', Date.now());
    await new Promise((r) => setTimeout(r, 3000)); // a few manager rounds
    expect(await nodeState(stay)).toBe('draining');
    expect((await c.dir.client.getVolume(vid))!.replicas).toContain(stay);
    for (const [i, w] of written.entries()) {
      expect((await readBack(w.chunks, w.size)).equals(bodies[i]!)).toBe(true);
    }
  });

  it('one copy: it is copied off the draining store before that store is removed', async () => {
    await start();
    const body = Buffer.from('the only copy, until the drain '.repeat(100));
    const w = await data.write(once(body), { maxSize: 1 << 20, replicaCount: 1 });
    const ch = w.chunks[0]!;
    const vol = (await c.dir.client.getVolume(ch.volumeId))!;
    expect(vol.replicas).toHaveLength(1);
    expect(vol.replicaCount).toBe(1);
    const leaving = vol.replicas[0]!;
    const li = c.nodes.findIndex((n) => n.id === leaving);

    await c.dir.client.setNodeState(leaving, 'draining', Date.now());
    await until('the drained store removed', async () =>
      (await nodeState(leaving)) === 'removed' ? true : undefined,
    );
    const after = (await c.dir.client.getVolume(ch.volumeId))!;
    expect(after.replicas).toHaveLength(1);
    expect(after.replicas[0]).not.toBe(leaving);
    const ti = c.nodes.findIndex((n) => n.id === after.replicas[0]);
    const ref = { volumeId: ch.volumeId, needleId: BigInt(ch.needleId), cookie: ch.cookie };
    expect(Buffer.from((await c.direct(ti).get(ref)).data).equals(body)).toBe(true);
    // The drained store goes: the object still reads back through the gateway's data path.
    await c.stopNode(li);
    expect((await readBack(w.chunks, w.size)).equals(body)).toBe(true);
  });
});

/** Runs `kubestorage admin store ...` in this process; its output and exit code. */
async function cli(args: string[]): Promise<{ out: string; err: string; code: number }> {
  vi.stubEnv('KUBESTORAGE_CLUSTER_SECRET', TEST_SECRET);
  const out: string[] = [];
  const err: string[] = [];
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out.push(String(s));
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err.push(String(s));
    return true;
  });
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await adminStore([...args, '--directory', c.dir.urls.join(','), '--poll-ms', '100']);
    return { out: out.join(''), err: err.join(''), code: Number(process.exitCode ?? 0) };
  } finally {
    process.exitCode = before;
    o.mockRestore();
    e.mockRestore();
    vi.unstubAllEnvs();
  }
}

describe('kubestorage admin store drain / wait-drained', () => {
  it('drain --wait returns once the store is removed; wait-drained skips a store not draining', async () => {
    await start();
    const body = Buffer.from('drained through the CLI');
    const w = await data.write(once(body), { maxSize: 1 << 20, replicaCount: 1 });
    const leaving = (await c.dir.client.getVolume(w.chunks[0]!.volumeId))!.replicas[0]!;
    const other = c.nodes.find((n) => n.id !== leaving)!.id;

    // A store nobody drains (a rollout): the preStop wait returns after the settle time.
    const t0 = Date.now();
    const skip = await cli(['wait-drained', other, '--settle', '0.3']);
    expect(skip.code).toBe(0);
    expect(skip.out).toMatch(/is online: nothing to wait for/);
    expect(Date.now() - t0).toBeLessThan(5000);

    const r = await cli(['drain', leaving, '--wait', '--timeout', '20']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/drained and removed/);
    expect(await nodeState(leaving)).toBe('removed');
    expect((await readBack(w.chunks, w.size)).equals(body)).toBe(true);
    // Removed: waiting on it returns at once.
    expect((await cli(['wait-drained', leaving, '--settle', '0'])).code).toBe(0);
  });

  it('drain --wait times out with exit 1 and says why when there is nowhere to copy to', async () => {
    await start();
    await c.stopNode(2); // two stores serving, two copies wanted
    await until('s3 offline', async () =>
      (await nodeState(c.nodes[2]!.id)) === 'offline' ? true : undefined,
    );
    const w = await data.write(once(Buffer.from('x')), { maxSize: 1 << 20, replicaCount: 2 });
    const id = (await c.dir.client.getVolume(w.chunks[0]!.volumeId))!.replicas[0]!;
    const r = await cli(['drain', id, '--wait', '--timeout', '1.5']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/timed out after 1.5 s: store \S+ is still draining with \d+ volume/);
    expect(await nodeState(id)).toBe('draining');
  });
});
