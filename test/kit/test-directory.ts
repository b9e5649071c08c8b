// A Raft directory of N replicas inside this process, each with its own data directory and
// loopback HTTP server, for tests: the same code as `kubestorage directory` processes.
import path from 'node:path';
import { type Config, DEFAULT_CONFIG } from '../../common/config.ts';
import { InternalAuth } from '../../common/internal-auth.ts';
import { createLogger } from '../../common/log.ts';
import { freePorts } from '../../common/ports.ts';
import type { ObjectRecord } from '../../directory/model/api.ts';
import { DirectoryServer } from '../../directory/replica/raft-server.ts';
import { MetadataClient } from '../../directory/wire/client.ts';
import { until } from './until.ts';

export interface TestDirectory {
  replicas: Array<DirectoryServer | null>;
  urls: string[];
  ids: string[];
  auth: InternalAuth;
  /** A client that knows every replica (what a gateway holds). */
  client: MetadataClient;
  /** Stops replica i (a clean close; crash tests use processes). */
  stop(i: number): Promise<void>;
  /** Starts replica i again from its data directory. */
  restart(i: number): Promise<void>;
  leader(): DirectoryServer | undefined;
  close(): Promise<void>;
}

export const TEST_SECRET = 'test-cluster-secret-0123456789';

export async function startTestDirectory(
  dir: string,
  n: number,
  opts: {
    snapshotEvery?: number;
    snapshotBytes?: number;
    keepBytes?: number;
    tickMs?: number;
    waitMs?: number;
    /** Cache and hot-object policy settings over the defaults (issue 14). */
    cache?: Partial<Config['cache']>;
    /** Waits for a leader and creates this bucket (owner root) before returning. */
    bucket?: string;
  } = {},
): Promise<TestDirectory> {
  const auth = new InternalAuth(TEST_SECRET);
  const ports = await freePorts(n);
  const ids = ports.map((_, i) => `d${i + 1}`);
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const peers = new Map(ids.map((id, i) => [id, urls[i] as string]));
  const logger = createLogger('test-directory', process.env.KUBESTORAGE_LOG_LEVEL ?? 'silent');
  const replicas: Array<DirectoryServer | null> = ids.map(() => null);
  const start = async (i: number) => {
    const { dir: d } = await DirectoryServer.start({
      id: ids[i] as string,
      dataDir: path.join(dir, ids[i] as string),
      peers,
      auth,
      logger,
      listenHost: '127.0.0.1',
      listenPort: ports[i] as number,
      snapshotEvery: opts.snapshotEvery,
      snapshotBytes: opts.snapshotBytes,
      keepBytes: opts.keepBytes,
      tickMs: opts.tickMs,
      waitMs: opts.waitMs,
      cache: { ...DEFAULT_CONFIG.cache, ...opts.cache },
    });
    replicas[i] = d;
  };
  await Promise.all(ids.map((_, i) => start(i)));
  const client = new MetadataClient(urls, auth);
  const directory: TestDirectory = {
    replicas,
    urls,
    ids,
    auth,
    client,
    async stop(i) {
      await replicas[i]?.close();
      replicas[i] = null;
    },
    restart: start,
    leader: () => replicas.find((r) => r?.host.isLeader) ?? undefined,
    async close() {
      await client.close();
      await Promise.all(replicas.map((r) => r?.close()));
    },
  };
  if (opts.bucket !== undefined) {
    try {
      await until('a leader', () => directory.leader());
      await client.createBucket({
        name: opts.bucket,
        owner: 'root',
        createdAt: 1,
        region: 'us-east-1',
      });
    } catch (e) {
      await directory.close();
      throw e;
    }
  }
  return directory;
}

/** A minimal object record (no data) for metadata tests. */
export const testRecord = (key: string, size: number): ObjectRecord => ({
  key,
  size,
  etag: 'd41d8cd98f00b204e9800998ecf8427e',
  lastModified: 1_700_000_000_000,
  userMeta: {},
  chunks: [],
  owner: 'root',
});
