// An embedded gateway on a random loopback port, for tests: real LevelDB metadata, a
// real volume store, the real HTTP stack. With KUBESTORAGE_TEST_DIRECTORY=raft (the
// `integration-raft` vitest project) the metadata is a 3-replica Raft directory instead, on
// loopback HTTP, and the gateway reaches it through MetadataClient like a real deployment
// (unless the test asks for the embedded metadata).
import path from 'node:path';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { Config } from '../../common/config.ts';
import { createLogger } from '../../common/log.ts';
import { assembleGateway, defaultConfig, type Gateway } from '../../compose/gateway.ts';
import type { MetadataStore } from '../../directory/model/api.ts';
import { LocalNeedleStore } from '../../store-node/api.ts';
import { needleCacheOptions } from '../../store-node/needle-cache.ts';
import { Store } from '../../store-node/store.ts';
import { s3Client } from './s3-clients.ts';
import { startTestDirectory } from './test-directory.ts';

export interface TestServer {
  endpoint: string;
  /** The loopback port of `endpoint`. */
  port: number;
  gw: Gateway;
  accessKey: string;
  secretKey: string;
  meta: MetadataStore;
  store: Store;
  /** What GET /_ks/metrics wants: `Authorization: Bearer <metricsToken>`. */
  metricsToken: string;
  close(): Promise<void>;
}

export type TestServerOptions = NonNullable<Parameters<typeof startTestServer>[1]>;

export async function startTestServer(
  dir: string,
  opts: {
    chunkSize?: number;
    maxObjectSize?: number;
    maxVolumeSize?: number;
    domain?: string;
    /** Cache settings over the defaults (issue 14). */
    cache?: Partial<Config['cache']>;
    /** Gateway settings over the defaults (after chunkSize, domain and maxObjectSize). */
    gateway?: Partial<Config['gateway']>;
    /** LevelDB metadata even in the integration-raft project. */
    embeddedMetadata?: boolean;
    /** Lets a test interpose on metadata reads (e.g. to inject a race). */
    wrapMeta?: (m: MetadataStore) => MetadataStore;
  } = {},
): Promise<TestServer> {
  const raft =
    process.env.KUBESTORAGE_TEST_DIRECTORY === 'raft' && !opts.embeddedMetadata
      ? await startTestDirectory(path.join(dir, 'directory'), 3, { cache: opts.cache })
      : null;
  const store = await Store.open(path.join(dir, 'store'), {
    compactCheckMs: 0,
    scrubIntervalMs: 0,
    maxSize: opts.maxVolumeSize ?? 256 * 1024 * 1024,
    cache: opts.cache ? needleCacheOptions({ ...defaultConfig().cache, ...opts.cache }) : undefined,
  });
  const cfg = defaultConfig();
  if (opts.chunkSize !== undefined) cfg.gateway.chunkSize = opts.chunkSize;
  if (opts.domain !== undefined) cfg.gateway.domain = opts.domain;
  if (opts.maxObjectSize !== undefined) cfg.gateway.maxObjectSize = opts.maxObjectSize;
  Object.assign(cfg.gateway, opts.gateway);
  Object.assign(cfg.cache, opts.cache);
  const gw = await assembleGateway({
    cfg,
    log: createLogger('test-gateway', process.env.KUBESTORAGE_LOG_LEVEL ?? 'silent'),
    // The test directory owns its client.
    meta: raft ? { open: raft.client } : { level: path.join(dir, 'meta') },
    data: { needles: new LocalNeedleStore(store) },
    root: {
      accessKey: 'KSTESTACCESSKEY00001',
      secretKey: 'test-secret-key-0123456789abcdefghijklmn',
    },
    wrapMeta: opts.wrapMeta,
  });
  const endpoint = await gw.listen('127.0.0.1', 0);
  return {
    endpoint,
    port: Number(new URL(endpoint).port),
    gw,
    accessKey: gw.creds!.accessKey,
    secretKey: gw.creds!.secretKey,
    meta: gw.meta,
    store,
    metricsToken: gw.metricsAuth.metricsToken,
    async close() {
      await gw.close();
      await store.close();
      await raft?.close();
    },
  };
}

/** startTestServer with an SDK client for it (`clientOptions` over s3Client's), closed with it. */
export async function startTestServerWithClient(
  dir: string,
  opts: TestServerOptions,
  clientOptions: Partial<S3ClientConfig> = {},
): Promise<TestServer & { s3: S3Client }> {
  const srv = await startTestServer(dir, opts);
  const s3 = s3Client(srv, clientOptions);
  return {
    ...srv,
    s3,
    async close() {
      s3.destroy();
      await srv.close();
    },
  };
}
