// The settings that used to be hard-coded in the cluster data path (3 s down, 5 s
// suspicion, 30 s store calls) reach it from the config, environment overrides included.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type Config, loadConfig } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { MetadataError } from '../directory/model/api.ts';
import type { NodeRecord, VolumeRecord } from '../directory/model/topology.ts';
import { type ClusterDataPath, clusterDataPath } from './gateway.ts';

const now = Date.now();
const node = (id: string, url: string): NodeRecord => ({
  id,
  url,
  zone: '',
  capacity: 1 << 30,
  state: 'online',
  registeredAt: now,
  stateSince: now,
});
const volume: VolumeRecord = {
  id: 1,
  replicas: ['n1'],
  replicaCount: 1,
  state: 'writable',
  createdAt: now,
  version: 1,
};

/** Replica counts asked of allocateVolume. */
const allocations: number[] = [];

/** A directory that knows one node, last heard from `silentMs` ago, holding volume 1. */
function directory(url: string, silentMs: number) {
  return {
    listNodes: async () => [node('n1', url)],
    liveness: async () => [{ id: 'n1', silentMs, load: 0, used: 0 }],
    getVolume: async (id: number) => (id === 1 ? volume : null),
    allocateVolume: async (replicaCount: number): Promise<never> => {
      allocations.push(replicaCount);
      throw new MetadataError('Unavailable', 'no volumes in this test');
    },
    allocateNeedleIds: async () => ({ first: 1n, count: 10 }),
  };
}

const auth = new InternalAuth('compose-test-secret-0123');
const paths: ClusterDataPath[] = [];
const servers: http.Server[] = [];

afterEach(async () => {
  for (const p of paths.splice(0)) await p.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

function dataPath(cfg: Config, url: string, silentMs: number): ClusterDataPath {
  const p = clusterDataPath(cfg, directory(url, silentMs), auth);
  paths.push(p);
  return p;
}

describe('clusterDataPath', () => {
  it('counts a store down after cluster.offlineAfterMs (KUBESTORAGE_CLUSTER_OFFLINE_AFTER_MS)', async () => {
    const byDefault = dataPath(loadConfig({ env: {} }), 'http://127.0.0.1:1', 2_000);
    await byDefault.store.view.refreshNodes();
    expect(byDefault.store.view.usable('n1')).toBe(true);

    const env = { KUBESTORAGE_CLUSTER_OFFLINE_AFTER_MS: '1000' };
    const tight = dataPath(loadConfig({ env }), 'http://127.0.0.1:1', 2_000);
    await tight.store.view.refreshNodes();
    expect(tight.store.view.usable('n1')).toBe(false);
  });

  it('suspects a store for gateway.suspectMs (KUBESTORAGE_GATEWAY_SUSPECT_MS)', async () => {
    const byDefault = dataPath(loadConfig({ env: {} }), 'http://127.0.0.1:1', 0);
    const short = dataPath(
      loadConfig({ env: { KUBESTORAGE_GATEWAY_SUSPECT_MS: '20' } }),
      'http://127.0.0.1:1',
      0,
    );
    for (const p of [byDefault, short]) {
      await p.store.view.refreshNodes();
      p.store.view.suspect('n1');
      expect(p.store.view.usable('n1')).toBe(false);
    }
    await new Promise((r) => setTimeout(r, 60));
    expect(short.store.view.usable('n1')).toBe(true);
    expect(byDefault.store.view.usable('n1')).toBe(false);
  });

  it('bounds a store call by gateway.storeTimeoutMs (KUBESTORAGE_GATEWAY_STORE_TIMEOUT_MS)', async () => {
    // Takes requests and never answers: a hung store process.
    const hung = http.createServer(() => {});
    servers.push(hung);
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
    const env = { KUBESTORAGE_GATEWAY_STORE_TIMEOUT_MS: '200' };
    const p = dataPath(loadConfig({ env }), url, 0);
    const t0 = performance.now();
    await expect(p.store.get({ volumeId: 1, needleId: 1n, cookie: 1 })).rejects.toBeDefined();
    // The default would hang for 30 s (and time the test out).
    expect(performance.now() - t0).toBeLessThan(5_000);
  });

  it('asks for volumes of gateway.replicas copies unless told otherwise', async () => {
    const cfg = loadConfig({ env: { KUBESTORAGE_GATEWAY_REPLICAS: '3' } });
    const p = dataPath(cfg, 'http://127.0.0.1:1', 0);
    allocations.length = 0;
    await expect(p.placement.assign(10)).rejects.toThrow(/no volumes/);
    await expect(p.placement.assign(10, 1)).rejects.toThrow(/no volumes/);
    expect(allocations).toEqual([3, 1]);
    expect(() => loadConfig({ env: { KUBESTORAGE_GATEWAY_REPLICAS: '6' } })).toThrow(
      /gateway.replicas: an integer from 1 to 5/,
    );
  });
});
