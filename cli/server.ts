// kubestorage server (npm start): gateway + metadata + one store node, data under ./data.
// Prints the endpoint and root credentials (generated on first start unless
// KUBESTORAGE_ROOT_ACCESS_KEY / KUBESTORAGE_ROOT_SECRET_KEY are set; the secret only when
// stdout is a terminal). Access-key secrets are stored sealed (gateway/secret-box.ts)
// under DIR/secret.key, or the cluster secret with --directory.
//
// --workers 1 (default): everything in one process, the gateway calling LevelMetadata and
// the Store directly.
// --workers N > 1 (0 or auto = one per CPU core): node:cluster. The primary owns the data —
// it opens LevelMetadata and the Store and serves them on loopback ephemeral ports
// (MetadataServer, StoreServer), authenticated with a cluster secret generated in memory
// and handed to the workers in their environment. Each worker runs the gateway over
// MetadataClient + StoreClient and listens on the shared S3 port. Each worker's placement
// opens its own writable volume (ids from allocateVolumeId, so they never collide).
import cluster, { type Worker } from 'node:cluster';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { createLogger } from '../common/log.ts';
import { startEmbeddedHotness, withReportReads } from '../compose/embedded-hotness.ts';
import {
  assembleGateway,
  endpointUrl,
  type OpenMetadata,
  openMetadata,
  type RootCreds,
} from '../compose/gateway.ts';
import { LevelMetadata } from '../directory/engine/meta-level.ts';
import { MetadataServer } from '../directory/wire/server.ts';
import { loadSecretFile, SecretBox } from '../gateway/secret-box.ts';
import { ensureRootCredentials, sealStoredKeys, withSealedKeys } from '../gateway/users.ts';
import { LocalNeedleStore } from '../store-node/api.ts';
import { StoreClient } from '../store-node/client.ts';
import { needleCacheOptions } from '../store-node/needle-cache.ts';
import { StoreServer } from '../store-node/server.ts';
import { Store } from '../store-node/store.ts';
import { onShutdown, parseCommand, parseListen, storeOptions } from './common.ts';

const HELP = `usage: kubestorage server [--data DIR] [--listen HOST:PORT] [--domain DOMAIN]

  --data DIR          data directory (default ./data): meta/ and store/ inside
  --listen HOST:PORT  S3 endpoint (default 127.0.0.1:9000)
  --domain DOMAIN     also accept virtual-host style requests to <bucket>.DOMAIN
  --workers N         gateway processes (default 1: a single process; 0 or auto: one per
                      CPU core). With N > 1 the primary process owns metadata and store
                      and the N workers share the S3 port.
  --directory URLS    metadata from a Raft directory (kubestorage directory replicas,
                      comma-separated base URLs) instead of DIR/meta; needs the cluster
                      secret in KUBESTORAGE_CLUSTER_SECRET
  --config FILE       JSON config file; KUBESTORAGE_* environment variables override it
`;

/** Environment handed from the primary to its workers. */
const ENV_META = 'KUBESTORAGE_INTERNAL_META_URL';
const ENV_STORE = 'KUBESTORAGE_INTERNAL_STORE_URL';
const ENV_SECRET = 'KUBESTORAGE_INTERNAL_SECRET';

/** --workers value → process count (0 / auto = CPU cores). */
export function parseWorkers(s: string | undefined): number {
  if (s === undefined) return 1;
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  if (s === 'auto' || s === '0') return Math.max(1, cores);
  if (!/^\d{1,4}$/.test(s) || Number(s) < 1)
    throw new Error(`--workers wants a number ≥ 0 or auto, got ${JSON.stringify(s)}`);
  return Number(s);
}

interface Options {
  /** Flags already applied (data, listen, domain). */
  cfg: Config;
  workers: number;
  directory?: string;
}

export async function main(argv: string[]): Promise<void> {
  const parsed = parseCommand(argv, HELP, 'data listen domain workers directory');
  if (!parsed) return;
  const { flags, cfg } = parsed;
  if (flags.data !== undefined) cfg.server.data = flags.data;
  if (flags.listen !== undefined) cfg.server.listen = flags.listen;
  if (flags.domain !== undefined) cfg.gateway.domain = flags.domain;
  const opts: Options = { cfg, workers: parseWorkers(flags.workers), directory: flags.directory };
  if (cluster.isWorker && process.env[ENV_META]) return runWorker(opts);
  if (opts.workers > 1) return runPrimary(opts);
  return runSingle(opts);
}

/** The metadata (DIR/meta, or the directory's) and the store, both this process's. */
async function openData(opts: Options): Promise<{ metadata: OpenMetadata; store: Store }> {
  const { cfg } = opts;
  let metadata: OpenMetadata;
  if (opts.directory) {
    if (!cfg.clusterSecret) throw new Error('--directory needs KUBESTORAGE_CLUSTER_SECRET');
    const auth = new InternalAuth(cfg.clusterSecret);
    metadata = await openMetadata({ directory: opts.directory, auth });
  } else metadata = await openMetadata({ level: path.join(cfg.server.data, 'meta') });
  const store = await Store.open(path.join(cfg.server.data, 'store'), {
    ...storeOptions(cfg.store),
    cache: needleCacheOptions(cfg.cache),
  });
  store.startMaintenance();
  return { metadata, store };
}

/**
 * What seals access-key secrets at rest: the cluster secret's box when the metadata is a
 * directory's (its other gateways must open them), else DIR/secret.key's, kept beside
 * DIR/meta so that a copy of the metadata alone opens nothing.
 */
function sealing(opts: Options): SecretBox {
  if (opts.directory) return SecretBox.fromSecret(opts.cfg.clusterSecret);
  return SecretBox.fromSecret(loadSecretFile(path.join(opts.cfg.server.data, 'secret.key')));
}

/**
 * What GET /_ks/metrics checks its bearer token with: the cluster secret with --directory,
 * else DIR/secret.key (every worker derives the same token; `kubestorage admin
 * metrics-token --data DIR` prints it).
 */
function metricsAuth(opts: Options): InternalAuth {
  if (opts.directory) return new InternalAuth(opts.cfg.clusterSecret);
  return new InternalAuth(loadSecretFile(path.join(opts.cfg.server.data, 'secret.key')));
}

function rootKeys(cfg: Config): { accessKey: string; secretKey: string } {
  return { accessKey: cfg.server.rootAccessKey, secretKey: cfg.server.rootSecretKey };
}

function printBanner(cfg: Config, endpoint: string, creds: RootCreds, workers: number): void {
  // The secret goes to a terminal only, never into a file stdout was sent to (a log).
  const shown = process.stdout.isTTY
    ? creds.secretKey
    : '(not shown: stdout is not a terminal; run it in one, or set KUBESTORAGE_ROOT_SECRET_KEY)';
  process.stdout.write(
    [
      '',
      `Kubestorage S3 endpoint: ${endpoint}${workers > 1 ? `   (${workers} workers)` : ''}`,
      `  access key: ${creds.accessKey}`,
      `  secret key: ${shown}${creds.created ? '   (generated now, stored sealed in the metadata)' : ''}`,
      '',
      'Try it:',
      `  AWS_ACCESS_KEY_ID=${creds.accessKey} AWS_SECRET_ACCESS_KEY=${shown} AWS_DEFAULT_REGION=${cfg.gateway.region} \\`,
      `    aws --endpoint-url ${endpoint} s3 mb s3://demo`,
      '',
    ].join('\n'),
  );
}

/** --workers 1: one process, direct calls. */
async function runSingle(opts: Options): Promise<void> {
  const { cfg } = opts;
  const log = createLogger('server', cfg.logLevel);
  const { metadata, store } = await openData(opts);
  const gw = await assembleGateway({
    cfg,
    log,
    meta: { open: metadata.meta },
    data: { needles: new LocalNeedleStore(store) },
    root: rootKeys(cfg),
    sealing: sealing(opts),
    metricsAuth: metricsAuth(opts),
  });
  const { host, port } = parseListen(cfg.server.listen);
  const endpoint = await gw.listen(host, port);
  log.info({ endpoint, data: path.resolve(cfg.server.data) }, 'kubestorage listening');
  printBanner(cfg, endpoint, gw.creds!, 1);
  onShutdown(log, async () => {
    await gw.close();
    await store.close();
    await metadata.close();
  });
}

/** --workers N > 1, primary: owns the data, serves it on loopback, supervises workers. */
async function runPrimary(opts: Options): Promise<void> {
  const log = createLogger('server', opts.cfg.logLevel);
  const { metadata, store } = await openData(opts);
  const meta = metadata.meta;
  const root = rootKeys(opts.cfg);
  const box = sealing(opts);
  await sealStoredKeys(meta, box, log);
  const creds = await ensureRootCredentials(
    withSealedKeys(meta, box),
    root.accessKey,
    root.secretKey,
  );
  const secret = crypto.randomBytes(32).toString('base64url');
  const auth = new InternalAuth(secret);
  // The workers' gateways report reads here: the hot-object policy runs in this process
  // (they are several gateways: writes to objects they cache wait out their leases).
  const hot =
    opts.cfg.cache.enabled && meta instanceof LevelMetadata
      ? startEmbeddedHotness(meta, opts.cfg, log)
      : undefined;
  const metaServer = new MetadataServer({
    meta: hot ? withReportReads(meta, hot.source) : meta,
    auth,
    logger: log,
  });
  const storeServer = new StoreServer({
    store,
    auth,
    maxNeedleSize: opts.cfg.store.maxNeedleSize,
    logger: log,
  });
  const metaAddr = await metaServer.listen('127.0.0.1', 0);
  const storeAddr = await storeServer.listen('127.0.0.1', 0);
  const env = {
    [ENV_META]: `http://127.0.0.1:${metaAddr.port}`,
    [ENV_STORE]: `http://127.0.0.1:${storeAddr.port}`,
    [ENV_SECRET]: secret,
  };
  const { host, port } = parseListen(opts.cfg.server.listen);

  let stopping = false;
  let started = false;
  const workers = new Set<Worker>();
  const fork = (): Worker => {
    const w = cluster.fork(env);
    workers.add(w);
    w.on('exit', (code, signal) => {
      workers.delete(w);
      // Exit 0 is a deliberate stop (e.g. Ctrl-C reaches the whole process group).
      if (stopping || (code === 0 && !signal)) return;
      if (!started) {
        log.error({ pid: w.process.pid, code, signal }, 'worker failed to start');
        void stopAll().then(() => process.exit(1));
        return;
      }
      log.warn({ pid: w.process.pid, code, signal }, 'worker exited: starting a new one');
      fork();
    });
    return w;
  };

  const stopAll = async (): Promise<void> => {
    stopping = true;
    const exits = [...workers].map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.isDead()) return resolve();
          const t = setTimeout(() => w.process.kill('SIGKILL'), 10_000);
          w.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          w.process.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
    await metaServer.close();
    hot?.stop();
    await storeServer.close();
    await store.close();
    await metadata.close();
  };
  onShutdown(log, stopAll);

  const listening = new Promise<number>((resolve) => {
    let n = 0;
    let actual = port;
    const onListening = (_w: Worker, address: { port: number }) => {
      actual = address.port;
      if (++n === opts.workers) {
        cluster.off('listening', onListening);
        resolve(actual);
      }
    };
    cluster.on('listening', onListening);
  });
  for (let i = 0; i < opts.workers; i++) fork();
  const actualPort = await listening;
  started = true;
  const endpoint = endpointUrl(host, actualPort);
  log.info(
    { endpoint, data: path.resolve(opts.cfg.server.data), workers: opts.workers },
    'kubestorage listening',
  );
  printBanner(opts.cfg, endpoint, creds, opts.workers);
}

/** A cluster worker: the gateway over the primary's metadata and store servers. */
async function runWorker(opts: Options): Promise<void> {
  const log = createLogger('server', opts.cfg.logLevel).child({ worker: cluster.worker?.id });
  const auth = new InternalAuth(process.env[ENV_SECRET]!);
  const needles = new StoreClient(process.env[ENV_STORE]!, auth);
  // Not inherited by anything this process might start.
  delete process.env[ENV_SECRET];
  const gw = await assembleGateway({
    cfg: opts.cfg,
    log,
    // No key cache here: the gateway's own (lookup-cache.ts) bounds a key deleted through
    // another worker to a second; a second layer under it would stretch that to two.
    meta: { directory: process.env[ENV_META]!, auth },
    data: { needles },
    sealing: sealing(opts),
    metricsAuth: metricsAuth(opts),
  });
  let served = 0;
  gw.server.on('request', () => {
    served++;
  });
  const { host, port } = parseListen(opts.cfg.server.listen);
  await gw.listen(host, port);
  onShutdown(log, async () => {
    await gw.close();
    await needles.close();
    log.info({ pid: process.pid, served }, 'worker stopped');
  });
}
