// A small cluster on loopback for tests: a 3-replica Raft directory and N real store
// nodes (Store + StoreServer), registered in the directory and heartbeating to every
// directory replica. A node can be put behind a delaying proxy (a slow node), stopped
// (its server closes; the data stays) and started again on the same port.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { InternalAuth } from '../../common/internal-auth.ts';
import { createLogger } from '../../common/log.ts';
import { clusterDataPath, defaultConfig } from '../../compose/gateway.ts';
import type { ClusterPlacement } from '../../data-path/cluster-placement.ts';
import type { ClusterNeedleStore } from '../../data-path/cluster-store.ts';
import type { ObjectData } from '../../data-path/object-data.ts';
import { MetadataClient } from '../../directory/wire/client.ts';
import { StoreClient } from '../../store-node/client.ts';
import { StoreServer } from '../../store-node/server.ts';
import { Store } from '../../store-node/store.ts';
import { startTestDirectory, type TestDirectory } from './test-directory.ts';

export interface TestNode {
  id: string;
  zone: string;
  /** What the directory knows: the proxy's URL for a slow node. */
  url: string;
  port: number;
  store: Store;
  server: StoreServer | null;
  /** Sent with heartbeats: lower is preferred for reads. */
  load: number;
  /** Stopped nodes do not heartbeat. */
  beating: boolean;
  /** Added to every request through the proxy (slow nodes only). */
  delayMs: number;
}

export interface TestCluster {
  dir: TestDirectory;
  auth: InternalAuth;
  nodes: TestNode[];
  /** A client straight to node i's own server (bypassing any proxy). */
  direct(i: number): StoreClient;
  stopNode(i: number): Promise<void>;
  startNode(i: number): Promise<void>;
  /** Sends one round of heartbeats now. */
  beat(): Promise<void>;
  close(): Promise<void>;
}

const MAX_NEEDLE = 64 * 1024 * 1024;

function delayingProxy(node: TestNode, target: () => number): http.Server {
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      setTimeout(() => {
        const up = http.request(
          {
            host: '127.0.0.1',
            port: target(),
            method: req.method,
            path: req.url,
            headers: req.headers,
          },
          (r) => {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          },
        );
        up.on('error', () => {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        });
        up.end(Buffer.concat(chunks));
      }, node.delayMs);
    });
  });
}

export async function startTestCluster(
  root: string,
  opts: { stores?: number; slow?: number[] } = {},
): Promise<TestCluster> {
  const dir = await startTestDirectory(path.join(root, 'directory'), 3);
  const auth = dir.auth;
  const perReplica = dir.urls.map((u) => new MetadataClient(u, auth, { deadlineMs: 1000 }));
  const nodes: TestNode[] = [];
  const proxies: http.Server[] = [];
  const directs = new Map<number, StoreClient>();

  const listen = async (node: TestNode) => {
    node.server = new StoreServer({
      store: node.store,
      auth,
      maxNeedleSize: MAX_NEEDLE,
      // What a directory-backed store accepts: the stores registered (as the directory
      // knows them: a slow node's proxy URL).
      knownStore: async (origin) =>
        nodes.some((n) => n.url !== '' && new URL(n.url).origin === origin),
    });
    node.port = (await node.server.listen('127.0.0.1', node.port)).port;
  };

  for (let i = 0; i < (opts.stores ?? 3); i++) {
    const store = await Store.open(path.join(root, `store${i + 1}`), {
      compactCheckMs: 0,
      scrubIntervalMs: 0,
    });
    const node: TestNode = {
      id: `s${i + 1}`,
      zone: `z${i + 1}`,
      url: '',
      port: 0,
      store,
      server: null,
      load: 0,
      beating: true,
      delayMs: 0,
    };
    await listen(node);
    node.url = `http://127.0.0.1:${node.port}`;
    if (opts.slow?.includes(i)) {
      const proxy = delayingProxy(node, () => node.port);
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
      proxies.push(proxy);
      node.url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    }
    nodes.push(node);
    const now = Date.now();
    await dir.client.registerNode({
      id: node.id,
      url: node.url,
      zone: node.zone,
      capacity: 1 << 30,
      state: 'online',
      registeredAt: now,
      stateSince: now,
    });
  }

  // Stores heartbeat to every directory replica (liveness is per replica, not replicated).
  const beat = async () => {
    await Promise.all(
      nodes
        .filter((n) => n.beating)
        .flatMap((n) =>
          perReplica.map((c) =>
            c
              .heartbeat({
                id: n.id,
                url: n.url,
                zone: n.zone,
                capacity: 1 << 30,
                used: 0,
                volumes: [],
                load: n.load,
              })
              .catch(() => {}),
          ),
        ),
    );
  };
  await beat();
  const timer = setInterval(() => void beat(), 250);

  return {
    dir,
    auth,
    nodes,
    direct(i) {
      let c = directs.get(i);
      if (!c) {
        c = new StoreClient(`http://127.0.0.1:${nodes[i]!.port}`, auth, 5000);
        directs.set(i, c);
      }
      return c;
    },
    async stopNode(i) {
      const n = nodes[i]!;
      n.beating = false;
      await n.server?.close();
      n.server = null;
    },
    async startNode(i) {
      const n = nodes[i]!;
      await listen(n);
      n.beating = true;
      await beat();
    },
    beat,
    async close() {
      clearInterval(timer);
      await Promise.all([...directs.values()].map((c) => c.close()));
      await Promise.all(perReplica.map((c) => c.close()));
      for (const p of proxies) {
        p.closeAllConnections();
        await new Promise((r) => p.close(r));
      }
      for (const n of nodes) {
        await n.server?.close();
        await n.store.close();
      }
      await dir.close();
    },
  };
}

/** A test cluster with a gateway's data path on it: needle store, placement, object data. */
export interface DataCluster {
  c: TestCluster;
  cs: ClusterNeedleStore;
  placement: ClusterPlacement;
  data: ObjectData;
  close(): Promise<void>;
}

export async function startDataCluster(root: string, stores: number): Promise<DataCluster> {
  const log = createLogger('cluster-test', process.env.KUBESTORAGE_LOG_LEVEL ?? 'silent');
  const c = await startTestCluster(root, { stores });
  const cfg = defaultConfig();
  // Stores heartbeat every 250 ms here: a second's silence is down.
  cfg.cluster.offlineAfterMs = 1000;
  // Multi-chunk objects without megabytes of test data.
  cfg.gateway.chunkSize = 64 * 1024;
  const dp = clusterDataPath(cfg, c.dir.client, c.auth, log);
  return {
    c,
    cs: dp.store,
    placement: dp.placement,
    data: dp.data,
    async close() {
      await dp.close();
      await c.close();
    },
  };
}
