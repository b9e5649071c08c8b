// Topology records (nodes, volumes) through the replicated command path, and placement.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { LevelMetadata } from '../engine/meta-level.ts';
import { chooseReplicas } from './placement.ts';
import type { NodeRecord } from './topology.ts';

const node = (id: string, zone: string): NodeRecord => ({
  id,
  url: `http://127.0.0.1:1${id.slice(1)}`,
  zone,
  capacity: 1000,
  state: 'online',
  registeredAt: 1,
  stateSince: 1,
});

describe('topology records', () => {
  let m: LevelMetadata;
  beforeAll(async () => {
    m = await LevelMetadata.open(tempDir('ks-topo-'));
  });
  afterAll(() => m?.close());

  it('registering again updates the address but keeps the state', async () => {
    await m.registerNode(node('s1', 'a'));
    await m.setNodeState('s1', 'offline', 5);
    await m.registerNode({ ...node('s1', 'b'), url: 'http://127.0.0.1:9999' });
    const [n] = await m.listNodes();
    expect(n).toMatchObject({
      id: 's1',
      zone: 'b',
      url: 'http://127.0.0.1:9999',
      state: 'offline',
    });
    await expect(m.setNodeState('nope', 'online', 1)).rejects.toMatchObject({
      code: 'PreconditionFailed',
    });
  });

  it('a state change with `from` is a compare-and-set, and removed is final', async () => {
    await m.registerNode(node('s9', 'a'));
    // The sweep read "online"; the operator's remove landed first: the sweep's write loses.
    await m.setNodeState('s9', 'removed', 10);
    await expect(m.setNodeState('s9', 'offline', 11, 'online')).rejects.toMatchObject({
      code: 'PreconditionFailed',
    });
    await expect(m.setNodeState('s9', 'online', 12)).rejects.toMatchObject({
      code: 'PreconditionFailed',
    });
    expect((await m.listNodes()).find((n) => n.id === 's9')).toMatchObject({
      state: 'removed',
      stateSince: 10,
    });
    await m.registerNode(node('s8', 'a'));
    await m.setNodeState('s8', 'offline', 20, 'online');
    expect((await m.listNodes()).find((n) => n.id === 's8')?.state).toBe('offline');
  });

  it('incarnations: a removed id is re-admitted (offline) only by a new one', async () => {
    const get = async (id: string) => (await m.listNodes()).find((n) => n.id === id);
    await m.registerNode({ ...node('s7', 'a'), incarnation: 'inc-a' });
    expect((await get('s7'))?.incarnation).toBe('inc-a');
    await m.setNodeState('s7', 'removed', 30);
    // The old process heartbeating on (same incarnation, or none sent): still removed.
    await m.registerNode({ ...node('s7', 'a'), incarnation: 'inc-a', stateSince: 31 });
    await m.registerNode({ ...node('s7', 'b'), stateSince: 32 });
    expect(await get('s7')).toMatchObject({ state: 'removed', incarnation: 'inc-a', zone: 'b' });
    // A new data directory under the name: back as offline (reconciled before online).
    await m.registerNode({ ...node('s7', 'a'), incarnation: 'inc-b', stateSince: 33 });
    expect(await get('s7')).toMatchObject({
      state: 'offline',
      incarnation: 'inc-b',
      stateSince: 33,
    });
    await m.setNodeState('s7', 'online', 34, 'offline');
    // An online node whose disk changed under it is taken offline for reconciliation.
    await m.registerNode({ ...node('s7', 'a'), incarnation: 'inc-c', stateSince: 35 });
    expect(await get('s7')).toMatchObject({ state: 'offline', incarnation: 'inc-c' });
    // The first incarnation seen for a node only gets recorded.
    await m.registerNode(node('s6', 'a'));
    await m.registerNode({ ...node('s6', 'a'), incarnation: 'first', stateSince: 40 });
    expect(await get('s6')).toMatchObject({ state: 'online', incarnation: 'first' });
    await expect(m.registerNode({ ...node('s6', 'a'), incarnation: 'bad id!' })).rejects.toThrow(
      /incarnation/,
    );
  });

  it('volumes: create once, compare-and-set updates, distinct replicas', async () => {
    const v = {
      id: 7,
      replicas: ['s1', 's2'],
      replicaCount: 2,
      state: 'writable' as const,
      createdAt: 1,
      version: 1,
    };
    await m.createVolume(v);
    await expect(m.createVolume(v)).rejects.toMatchObject({ code: 'PreconditionFailed' });
    const v2 = await m.updateVolume(7, 1, { state: 'readonly' });
    expect(v2).toMatchObject({ version: 2, state: 'readonly', replicas: ['s1', 's2'] });
    // A stale version loses: two managers cannot both re-home the same volume.
    await expect(m.updateVolume(7, 1, { replicas: ['s3', 's2'] })).rejects.toMatchObject({
      code: 'PreconditionFailed',
    });
    await expect(m.updateVolume(7, 2, { replicas: ['s2', 's2'] })).rejects.toThrow(/distinct/);
    expect((await m.getVolume(7))?.version).toBe(2);
    expect((await m.listVolumes()).map((x) => x.id)).toEqual([7]);
    expect(await m.getVolume(8)).toBeNull();
  });
});

describe('chooseReplicas', () => {
  const c = (id: string, zone: string, used = 0) => ({ id, zone, used, capacity: 100 });

  it('spreads over zones first, then fills distinct nodes, least used first', () => {
    const nodes = [c('a1', 'a', 50), c('a2', 'a', 10), c('b1', 'b', 90), c('b2', 'b', 20)];
    expect(chooseReplicas(nodes, 2)?.map((n) => n.id)).toEqual(['a2', 'b2']);
    expect(chooseReplicas(nodes, 3)?.map((n) => n.id)).toEqual(['a2', 'b2', 'a1']);
    expect(chooseReplicas(nodes, 5)).toBeNull();
  });

  it('spreads new volumes over nodes that hold fewer volumes, before any bytes land', () => {
    const nodes = [
      { ...c('a1', 'a'), volumes: 3 },
      { ...c('a2', 'a'), volumes: 0 },
      { ...c('b1', 'b'), volumes: 2 },
      { ...c('b2', 'b'), volumes: 1 },
    ];
    expect(chooseReplicas(nodes, 2)?.map((n) => n.id)).toEqual(['a2', 'b2']);
  });

  it('avoids nodes that hold the volume and prefers zones it is not in yet', () => {
    const nodes = [c('a1', 'a'), c('a2', 'a'), c('b1', 'b')];
    expect(chooseReplicas(nodes, 1, new Set(['b1']), ['b'])?.map((n) => n.id)).toEqual(['a1']);
    // One zone left: distinct nodes still, same zone allowed.
    expect(chooseReplicas([c('a1', 'a'), c('a2', 'a')], 2)?.map((n) => n.id)).toEqual(['a1', 'a2']);
  });
});
