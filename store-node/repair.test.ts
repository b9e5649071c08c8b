// Scrub repair from another replica (real store servers on loopback as the replicas) and
// the directory lookup that names the replicas (a small recording directory peer).
import { Client } from 'undici';
import { describe, expect, it } from 'vitest';
import { payload } from '../common/payload.ts';
import type { NodeRecord, VolumeRecord } from '../directory/model/topology.ts';
import { useCleanups } from '../test/kit/fixture.ts';
import {
  auth,
  flipDataByte,
  nodeStarter,
  startJsonPeer,
  type TestNode,
} from '../test/kit/test-nodes.ts';
import { directoryKnownStores, directoryReplicaUrls, replicaRepair } from './directory-link.ts';

const cleanups = useCleanups();
const node = nodeStarter(cleanups);

async function metric(n: TestNode, name: string): Promise<number> {
  const text = await n.server.metrics.registry.metrics();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return Number(m?.[1]);
}

describe('scrub repair', () => {
  it('rewrites corrupt needles with good bytes from another replica', async () => {
    const [a, b, c] = [await node(), await node(), await node()];
    for (let i = 1n; i <= 30n; i++) {
      const ref = { volumeId: 1, needleId: i, cookie: Number(i) + 100 };
      await a.client.put(ref, payload(i, 3000), undefined, { replicas: [b.url, c.url] });
    }
    // Learn offsets by rewriting the three victims (same bytes, same cookie), then damage
    // 5 on a and b (b then cannot help, c can), 6 on a only, and 7 on every replica.
    const victim = async (n: TestNode, id: bigint) => {
      const w = await n.store.write(1, id, Number(id) + 100, payload(id, 3000));
      flipDataByte(n, 1, w.offset, 1234);
    };
    for (const [n, id] of [
      [a, 5n],
      [b, 5n],
      [a, 6n],
      [a, 7n],
      [b, 7n],
      [c, 7n],
    ] as const)
      await victim(n, id);
    await a.store.seal(1); // repair works on sealed volumes too (that is where most data is)

    const asked: number[] = [];
    a.store.repairHook = replicaRepair(
      async (vid) => {
        asked.push(vid);
        return [b.url, c.url];
      },
      (url) => a.server.replicator.client(url),
    );
    const [r] = await a.store.scrub();
    expect(r!.corrupt.sort()).toEqual([5n, 6n, 7n]);
    expect(r!.repaired.sort()).toEqual([5n, 6n]);
    expect(asked).toEqual([1, 1, 1]);
    for (const id of [5n, 6n]) {
      const got = await a.client.get({ volumeId: 1, needleId: id, cookie: Number(id) + 100 });
      expect(got.data.equals(payload(id, 3000))).toBe(true);
    }
    expect(await metric(a, 'kubestorage_store_repaired_needles')).toBe(2);
    expect((await a.store.status()).lastScrub).toMatchObject({
      corrupt: expect.arrayContaining(['1/5', '1/6', '1/7']),
      repaired: expect.arrayContaining(['1/5', '1/6']),
    });
    // Next scrub: only the needle no replica has intact is still corrupt.
    const [r2] = await a.store.scrub();
    expect(r2!.corrupt).toEqual([7n]);
    expect(r2!.repaired).toEqual([]);
    // Through the HTTP API as well.
    const client = new Client(a.url);
    const res = await client.request({
      method: 'POST',
      path: '/scrub?volume=1',
      headers: { 'x-ks-auth': auth.sign('POST', '/scrub?volume=1') },
    });
    const viaHttp = (await res.body.json()) as Array<{ corrupt: string[]; repaired: string[] }>;
    await client.close();
    expect(viaHttp[0]).toMatchObject({ corrupt: ['7'], repaired: [] });
  });

  it('leaves a needle corrupt when the hook has nothing or the cookie disagrees', async () => {
    const a = await node();
    const w = await a.store.write(1, 1n, 11, payload(1n, 2000));
    flipDataByte(a, 1, w.offset);
    a.store.repairHook = async () => null;
    expect((await a.store.scrub())[0]).toMatchObject({ corrupt: [1n], repaired: [] });
    // A different object under the same id must not replace this one.
    a.store.repairHook = async () => ({ cookie: 12, data: payload(1n, 2000) });
    expect((await a.store.scrub())[0]).toMatchObject({ corrupt: [1n], repaired: [] });
    a.store.repairHook = async () => {
      throw new Error('directory down');
    };
    expect((await a.store.scrub())[0]).toMatchObject({ corrupt: [1n], repaired: [] });
  });
});

describe('directoryReplicaUrls', () => {
  it('asks the directory for the volume and the nodes, leaving itself out', async () => {
    const calls: Array<{ path: string; body: unknown; authOk: boolean }> = [];
    const vol: VolumeRecord = {
      id: 4,
      replicas: ['n1', 'n2', 'n3', 'gone'],
      replicaCount: 3,
      state: 'writable',
      createdAt: 0,
      version: 1,
    };
    const nodeRec = (id: string, url: string): NodeRecord => ({
      id,
      url,
      zone: '',
      capacity: 1,
      state: 'online',
      registeredAt: 0,
      stateSince: 0,
    });
    const nodes = [
      nodeRec('n1', 'http://10.0.0.1:8080'),
      nodeRec('n2', 'http://10.0.0.2:8080'),
      nodeRec('n3', 'http://10.0.0.3:8080'),
    ];
    const dir = await startJsonPeer(auth, (path, body, authOk) => {
      calls.push({ path, body, authOk });
      const r = path === '/meta/getVolume' ? ((body as number[])[0] === 4 ? vol : null) : nodes;
      return { r };
    });
    cleanups.push(() => dir.close());
    const urls = directoryReplicaUrls({
      // The first directory replica is down: the next one answers.
      directories: ['http://127.0.0.1:1', dir.url],
      auth,
      selfId: 'n2',
      selfUrl: 'http://10.0.0.2:8080',
    });
    expect(await urls(4)).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.3:8080']);
    expect(await urls(5)).toEqual([]);
    expect(calls.slice(0, 2)).toEqual([
      { path: '/meta/getVolume', body: [4], authOk: true },
      { path: '/meta/listNodes', body: [], authOk: true },
    ]);
  });
});

describe('directoryKnownStores', () => {
  it('knows the stores the directory lists, re-reads on a miss, keeps the list when it is down', async () => {
    const nodeRec = (id: string, url: string, state: NodeRecord['state']): NodeRecord => ({
      id,
      url,
      zone: '',
      capacity: 1,
      state,
      registeredAt: 0,
      stateSince: 0,
    });
    let nodes = [
      nodeRec('n1', 'http://10.0.0.1:8080/', 'online'),
      nodeRec('n2', 'http://10.0.0.2:8080', 'offline'),
      nodeRec('n3', 'http://10.0.0.3:8080', 'removed'),
    ];
    let lists = 0;
    const dir = await startJsonPeer(auth, (path, _body, authOk) => {
      if (path === '/meta/listNodes' && authOk) lists++;
      return { r: nodes };
    });
    cleanups.push(() => dir.close());
    let t = 0;
    const known = directoryKnownStores({
      directories: [dir.url],
      auth,
      timeoutMs: 500,
      ttlMs: 10_000,
      missRereadMs: 100,
      now: () => t,
    });
    expect(await known('http://10.0.0.1:8080')).toBe(true);
    expect(await known('http://10.0.0.2:8080')).toBe(true); // offline: still a store
    expect(lists).toBe(1);
    // Removed, or never a store: a miss re-reads the list, at most every missRereadMs.
    expect(await known('http://10.0.0.3:8080')).toBe(false);
    expect(await known('http://10.9.9.9:1')).toBe(false);
    expect(lists).toBe(1);
    // A store added a moment ago is accepted at its first forward.
    nodes = [...nodes, nodeRec('n4', 'http://10.0.0.4:8080', 'online')];
    t = 150;
    expect(await known('http://10.0.0.4:8080')).toBe(true);
    expect(lists).toBe(2);
    // Hits do not ask again within the TTL; past it the list is read again.
    t = 5_000;
    expect(await known('http://10.0.0.1:8080')).toBe(true);
    expect(lists).toBe(2);
    nodes = nodes.filter((n) => n.id !== 'n1');
    t = 20_000;
    expect(await known('http://10.0.0.1:8080')).toBe(false);
    expect(lists).toBe(3);
    // The directory unreachable: the last list read still answers.
    await dir.close();
    t = 40_000;
    expect(await known('http://10.0.0.4:8080')).toBe(true);
    // Never read at all: cannot tell, which is an error, not a yes.
    const blind = directoryKnownStores({
      directories: ['http://127.0.0.1:1'],
      auth,
      timeoutMs: 200,
    });
    await expect(blind('http://10.0.0.1:8080')).rejects.toThrow();
  });
});
