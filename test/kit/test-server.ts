// An embedded gateway on a random loopback port, for tests: real LevelDB metadata, a
// real volume store, the real HTTP stack. With KUBESTORAGE_TEST_DIRECTORY=raft (the
// `raft-directory` vitest project) the metadata is a 3-replica Raft directory instead, on
// loopback HTTP, and the gateway reaches it through MetadataClient like a real deployment.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createLogger } from '../../common/log.ts';
import { ObjectData } from '../../data/object-data.ts';
import { EmbeddedPlacement } from '../../data/placement.ts';
import { LevelMetadata } from '../../directory/engine/meta-level.ts';
import type { MetadataStore } from '../../directory/model/api.ts';
import { createGatewayServer } from '../../gateway/app.ts';
import { ensureRootCredentials } from '../../gateway/users.ts';
import { LocalNeedleStore } from '../../store-node/api.ts';
import { Store } from '../../store-node/store.ts';
import { startTestDirectory } from './test-directory.ts';

export interface TestServer {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  meta: MetadataStore;
  store: Store;
  close(): Promise<void>;
}

export async function startTestServer(
  dir: string,
  opts: {
    chunkSize?: number;
    maxVolumeSize?: number;
    domain?: string;
    /** Lets a test interpose on metadata reads (e.g. to inject a race). */
    wrapMeta?: (m: MetadataStore) => MetadataStore;
  } = {},
): Promise<TestServer> {
  const raft =
    process.env.KUBESTORAGE_TEST_DIRECTORY === 'raft'
      ? await startTestDirectory(path.join(dir, 'directory'), 3)
      : null;
  const meta: MetadataStore = raft ? raft.client : await LevelMetadata.open(path.join(dir, 'meta'));
  const store = await Store.open(path.join(dir, 'store'), {
    compactCheckMs: 0,
    scrubIntervalMs: 0,
    maxSize: opts.maxVolumeSize ?? 256 * 1024 * 1024,
  });
  const needles = new LocalNeedleStore(store);
  const log = createLogger('test-gateway', process.env.KUBESTORAGE_LOG_LEVEL ?? 'silent');
  const data = new ObjectData(needles, new EmbeddedPlacement(meta, needles), opts.chunkSize, log);
  const creds = await ensureRootCredentials(
    meta,
    'KSTESTACCESSKEY00001',
    'test-secret-key-0123456789abcdefghijklmn',
  );
  const server: Server = createGatewayServer({
    meta: opts.wrapMeta ? opts.wrapMeta(meta) : meta,
    data,
    log,
    config: { region: 'us-east-1', domain: opts.domain, maxObjectSize: 5 * 1024 ** 3 },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    accessKey: creds.accessKey,
    secretKey: creds.secretKey,
    meta,
    store,
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await store.close();
      // The test directory owns its client.
      await (raft ?? meta).close();
    },
  };
}
