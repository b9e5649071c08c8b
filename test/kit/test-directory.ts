// A Raft directory of N replicas inside this process, each with its own data directory and
// loopback HTTP server, for tests: the same code as `kubestorage directory` processes.
import net from 'node:net';
import path from 'node:path';
import { InternalAuth } from '../../common/internal-auth.ts';
import { createLogger } from '../../common/log.ts';
import type { ObjectRecord } from '../../directory/model/api.ts';
import { DirectoryServer } from '../../directory/replica/raft-server.ts';
import { MetadataClient } from '../../directory/wire/client.ts';

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

/** Ports that were free a moment ago (the replicas must know each other's URLs up front). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      const s = net.createServer();
      return new Promise<net.Server>((r) => s.listen(0, '127.0.0.1', () => r(s)));
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export async function startTestDirectory(
  dir: string,
  n: number,
  opts: {
    snapshotEvery?: number;
    snapshotBytes?: number;
    keepBytes?: number;
    tickMs?: number;
    waitMs?: number;
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
    });
    replicas[i] = d;
  };
  await Promise.all(ids.map((_, i) => start(i)));
  const client = new MetadataClient(urls, auth);
  return {
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

/** Polls `fn` every 20 ms until it gives something other than undefined/null/false. */
export async function until<T>(
  what: string,
  fn: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== null && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
