// A store removed for good, and its name coming back (issue 13: a StatefulSet scaled
// 6→5→6 reuses ordinal 5). The directory tells them apart by the data directory's
// incarnation in the heartbeats: the old process (same incarnation) stays removed; a new
// data directory under the name is re-admitted, reconciled and online, and gets writes.
// Real stores and a real 3-replica directory; the cluster manager runs on its leader.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { retireIfRemoved } from '../../cli/store.ts';
import { createLogger } from '../../common/log.ts';
import type { ObjectData } from '../../data-path/object-data.ts';
import { INCARNATION_FILE, storeIncarnation } from '../../store-node/heartbeat.ts';
import { Store } from '../../store-node/store.ts';
import { startDataCluster, type TestCluster } from '../../test/kit/data-cluster.ts';
import { once, useCleanups } from '../../test/kit/fixture.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { until as poll, sleep } from '../../test/kit/until.ts';
import type { ChunkRef } from '../model/api.ts';
import type { NodeRecord } from '../model/topology.ts';
import { MetadataClient } from '../wire/client.ts';

const cleanups = useCleanups();
const until = <T>(what: string, fn: () => Promise<T | undefined>) =>
  poll(what, fn, 20_000, { everyMs: 100 });

async function readBack(data: ObjectData, chunks: ChunkRef[], size: number): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of data.read(chunks, 0, size - 1)) out.push(b);
  return Buffer.concat(out);
}

/**
 * Heartbeats for node i with an incarnation, to every directory replica, every 250 ms (the
 * test kit's own beats carry none: they are turned off for that node).
 */
function beatWith(c: TestCluster, i: number) {
  const n = c.nodes[i]!;
  n.beating = false;
  const clients = c.dir.urls.map((u) => new MetadataClient(u, c.auth, { deadlineMs: 1000 }));
  const state = { incarnation: 'inc-a', on: true };
  const send = () =>
    Promise.all(
      clients.map((cl) =>
        cl
          .heartbeat({
            id: n.id,
            url: n.url,
            zone: n.zone,
            capacity: 1 << 30,
            used: 0,
            volumes: [],
            load: 0,
            incarnation: state.incarnation,
          })
          .catch(() => {}),
      ),
    );
  const timer = setInterval(() => {
    if (state.on) void send();
  }, 250);
  cleanups.push(async () => {
    clearInterval(timer);
    await Promise.all(clients.map((cl) => cl.close()));
  });
  void send();
  return state;
}

describe('a removed store name coming back', () => {
  it('with a new incarnation is re-admitted and gets writes; with the same one stays removed', async () => {
    const root = tempDir();
    const dc = await startDataCluster(root, 3);
    cleanups.push(() => dc.close());
    const { c, data } = dc;
    const i = 2;
    const id = c.nodes[i]!.id;
    const record = async () => (await c.dir.client.listNodes()).find((n) => n.id === id);
    const hb = beatWith(c, i);
    // The leader's manager records the incarnation it hears.
    await until('incarnation recorded', async () =>
      (await record())?.incarnation === 'inc-a' ? true : undefined,
    );

    const bodies = [0, 1, 2].map((k) => Buffer.from(`before the scale-down ${k} `.repeat(300)));
    const written = [];
    for (const b of bodies) {
      written.push(await data.write(once(b), { maxSize: 1 << 20, replicaCount: 2 }));
    }

    // Scale-down: drained (whatever it holds copied to the other two) and removed.
    await c.dir.client.setNodeState(id, 'draining', Date.now());
    await until('drained and removed', async () =>
      (await record())?.state === 'removed' ? true : undefined,
    );
    for (const v of await c.dir.client.listVolumes()) expect(v.replicas).not.toContain(id);
    expect((await record())?.incarnation).toBe('inc-a');

    // The old process heartbeating on: removed for good, never placed on.
    await sleep(3000); // a few manager rounds
    expect((await record())?.state).toBe('removed');
    await expect(c.dir.client.allocateVolume(3)).rejects.toMatchObject({ code: 'Unavailable' });

    // Scale-up: a new pod under the same name on a new, empty data directory.
    hb.on = false;
    await c.stopNode(i);
    const node = c.nodes[i]!;
    await node.store.close();
    await fsp.rm(path.join(root, `store${i + 1}`), { recursive: true, force: true });
    node.store = await Store.open(path.join(root, `store${i + 1}`), {
      compactCheckMs: 0,
      scrubIntervalMs: 0,
    });
    await c.startNode(i);
    node.beating = false;
    hb.incarnation = 'inc-b';
    hb.on = true;
    await until('re-admitted and online', async () => {
      const r = await record();
      return r?.state === 'online' && r.incarnation === 'inc-b' ? r : undefined;
    });

    // It gets writes: three copies wanted, so one is on it.
    const body = Buffer.from('after the scale-up '.repeat(300));
    const w = await data.write(once(body), { maxSize: 1 << 20, replicaCount: 3 });
    const ch = w.chunks[0]!;
    expect((await c.dir.client.getVolume(ch.volumeId))!.replicas).toContain(id);
    const ref = { volumeId: ch.volumeId, needleId: BigInt(ch.needleId), cookie: ch.cookie };
    expect(Buffer.from((await c.direct(i).get(ref)).data).equals(body)).toBe(true);
    // What was written before still reads back (from the stores that kept it).
    for (const [k, x] of written.entries()) {
      expect((await readBack(data, x.chunks, x.size)).equals(bodies[k]!)).toBe(true);
    }
  });
});

describe('the store side of an incarnation', () => {
  const log = createLogger('readmit-test', 'silent');
  const rec = (over: Partial<NodeRecord>): NodeRecord => ({
    id: 'ks-store-5',
    url: 'http://127.0.0.1:1',
    zone: '',
    capacity: 1,
    state: 'removed',
    registeredAt: 1,
    stateSince: 1,
    ...over,
  });

  it('is written once and kept; a data directory removed with it is retired', () => {
    const dir = tempDir();
    const inc = storeIncarnation(dir);
    expect(inc).toMatch(/^[0-9a-f]{32}$/);
    expect(storeIncarnation(dir)).toBe(inc);
    expect(fs.readFileSync(path.join(dir, INCARNATION_FILE), 'utf8').trim()).toBe(inc);
    for (const f of ['1.dat', '1.idx', '2.dat', '2.sealed', 'cluster.secret']) {
      fs.writeFileSync(path.join(dir, f), 'x');
    }
    fs.mkdirSync(path.join(dir, 'extra'));

    // Not removed, removed under another incarnation, or no directory answer: untouched.
    expect(retireIfRemoved(dir, inc, rec({ state: 'online', incarnation: inc }), log)).toBe(inc);
    expect(retireIfRemoved(dir, inc, rec({ incarnation: 'other' }), log)).toBe(inc);
    expect(retireIfRemoved(dir, inc, undefined, log)).toBe(inc);
    expect(fs.existsSync(path.join(dir, '1.dat'))).toBe(true);

    // Removed with this incarnation: volumes moved aside, a new incarnation on disk.
    const next = retireIfRemoved(dir, inc, rec({ incarnation: inc }), log);
    expect(next).not.toBe(inc);
    expect(storeIncarnation(dir)).toBe(next);
    const left = fs.readdirSync(dir).sort();
    expect(left).toEqual(['cluster.secret', INCARNATION_FILE, `retired-${inc}`].sort());
    expect(fs.readdirSync(path.join(dir, `retired-${inc}`)).sort()).toEqual(
      ['1.dat', '1.idx', '2.dat', '2.sealed', 'extra'].sort(),
    );
  });
});
