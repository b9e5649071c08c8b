// A store pod whose PVC was lost comes back empty under its old id, faster than the
// heartbeat timeout: without the pod watch the directory would never have seen it go, and
// would keep it online with nothing on it. With the watch, the pod's deletion marks it
// offline at once, so on its return the cluster manager reconciles it: every volume that
// lists it is synced back from a healthy replica before it is online again.
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../store-node/store.ts';
import { startDataCluster } from '../../test/kit/data-cluster.ts';
import { once, useCleanups } from '../../test/kit/fixture.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { until } from '../../test/kit/until.ts';
import { FakeKubeApi } from './fake.ts';
import { StoreWatcher } from './store-watch.ts';
import { recordingLogger, storePod, terminating } from './test-helpers.ts';

const cleanups = useCleanups();

describe('a store pod back without its PVC', () => {
  it('is marked offline when its pod goes, and re-seeded from the replicas on its return', async () => {
    const root = tempDir();
    const dc = await startDataCluster(root, 3);
    cleanups.push(() => dc.close());
    const { c, data } = dc;
    const body = Buffer.from('re-seeded after the disk was lost');
    const w = await data.write(once(body), { maxSize: 1 << 20 });
    const ch = w.chunks[0]!;
    const vol = (await c.dir.client.listVolumes()).find((v) => v.id === ch.volumeId)!;
    const i = c.nodes.findIndex((n) => n.id === vol.replicas[0]);
    const node = c.nodes[i]!;

    const api = new FakeKubeApi();
    for (const n of c.nodes) api.put(storePod(n.id, 'ks'));
    const { logger } = recordingLogger();
    const watcher = new StoreWatcher({
      api,
      namespace: 'ks',
      directory: c.dir.client,
      isLeader: () => true,
      logger,
    });
    watcher.start();
    cleanups.push(() => watcher.stop());

    // The pod is deleted with its PVC; the new one starts on an empty disk at once.
    api.update('ks', node.id, terminating);
    await c.stopNode(i);
    api.remove('ks', node.id);
    await watcher.settled();
    const state = (await c.dir.client.listNodes()).find((n) => n.id === node.id)?.state;
    expect(state).toBe('offline'); // well inside the 3 s heartbeat timeout
    await node.store.close();
    await fs.rm(path.join(root, `store${i + 1}`), { recursive: true, force: true });
    node.store = await Store.open(path.join(root, `store${i + 1}`), {
      compactCheckMs: 0,
      scrubIntervalMs: 0,
    });
    api.put(storePod(node.id, 'ks'));
    await c.startNode(i);

    const ref = { volumeId: ch.volumeId, needleId: BigInt(ch.needleId), cookie: ch.cookie };
    const got = await until(
      'the needle back on the emptied store',
      async () => {
        try {
          return await c.direct(i).get(ref);
        } catch {
          return undefined;
        }
      },
      20_000,
      { everyMs: 100 },
    );
    expect(Buffer.from(got.data).equals(body)).toBe(true);
    await until('the store online again', async () =>
      (await c.dir.client.listNodes()).find((n) => n.id === node.id)?.state === 'online'
        ? true
        : undefined,
    );
  });
});
