// kubestorage server (npm start): gateway + metadata + one store node, data under ./data.
// Prints the endpoint and root credentials (generated on first start unless
// KUBESTORAGE_ROOT_ACCESS_KEY / KUBESTORAGE_ROOT_SECRET_KEY are set).
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
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Config, loadConfig } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { ObjectData } from '../data/object-data.ts';
import { EmbeddedPlacement } from '../data/placement.ts';
import { LevelMetadata } from '../directory/engine/meta-level.ts';
import type { MetadataStore } from '../directory/model/api.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import { MetadataServer } from '../directory/wire/server.ts';
import { createGatewayServer } from '../gateway/app.ts';
import { ensureRootCredentials } from '../gateway/users.ts';
import { LocalNeedleStore, type NeedleStore } from '../store-node/api.ts';
import { StoreClient } from '../store-node/client.ts';
import { StoreServer } from '../store-node/server.ts';
import { Store } from '../store-node/store.ts';
import { onShutdown, parseListen, storeOptions } from './common.ts';

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
  cfg: Config;
  dataDir: string;
  listen: string;
  domain?: string;
  workers: number;
  directory?: string;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      listen: { type: 'string' },
      domain: { type: 'string' },
      workers: { type: 'string' },
      directory: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const cfg = loadConfig({ file: values.config });
  const opts: Options = {
    cfg,
    dataDir: values.data ?? cfg.server.data,
    listen: values.listen ?? cfg.server.listen,
    domain: values.domain ?? (cfg.gateway.domain || undefined),
    workers: parseWorkers(values.workers),
    directory: values.directory,
  };
  if (cluster.isWorker && process.env[ENV_META]) return runWorker(opts);
  if (opts.workers > 1) return runPrimary(opts);
  return runSingle(opts);
}

async function openData(
  opts: Options,
): Promise<{ meta: MetadataStore; store: Store; creds: RootCreds }> {
  const { cfg, dataDir } = opts;
  let meta: MetadataStore;
  if (opts.directory) {
    if (!cfg.clusterSecret) throw new Error('--directory needs KUBESTORAGE_CLUSTER_SECRET');
    meta = new MetadataClient(opts.directory, new InternalAuth(cfg.clusterSecret));
  } else meta = await LevelMetadata.open(path.join(dataDir, 'meta'));
  const store = await Store.open(path.join(dataDir, 'store'), storeOptions(cfg.store));
  store.startMaintenance();
  const creds = await ensureRootCredentials(
    meta,
    process.env.KUBESTORAGE_ROOT_ACCESS_KEY || cfg.server.rootAccessKey,
    process.env.KUBESTORAGE_ROOT_SECRET_KEY || cfg.server.rootSecretKey,
  );
  return { meta, store, creds };
}

type RootCreds = Awaited<ReturnType<typeof ensureRootCredentials>>;

function buildGateway(
  opts: Options,
  meta: MetadataStore,
  needles: NeedleStore,
  log: Logger,
): Server {
  const data = new ObjectData(needles, new EmbeddedPlacement(meta, needles), undefined, log);
  return createGatewayServer({
    meta,
    data,
    log,
    config: {
      region: opts.cfg.gateway.region,
      domain: opts.domain,
      maxObjectSize: opts.cfg.gateway.maxObjectSize,
    },
  });
}

function closeHttp(server: Server): Promise<void> {
  return new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
}

function endpointOf(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function printBanner(opts: Options, endpoint: string, creds: RootCreds, workers: number): void {
  process.stdout.write(
    [
      '',
      `Kubestorage S3 endpoint: ${endpoint}${workers > 1 ? `   (${workers} workers)` : ''}`,
      `  access key: ${creds.accessKey}`,
      `  secret key: ${creds.secretKey}${creds.created ? '   (generated now, stored in the metadata)' : ''}`,
      '',
      'Try it:',
      `  AWS_ACCESS_KEY_ID=${creds.accessKey} AWS_SECRET_ACCESS_KEY=${creds.secretKey} AWS_DEFAULT_REGION=${opts.cfg.gateway.region} \\`,
      `    aws --endpoint-url ${endpoint} s3 mb s3://demo`,
      '',
    ].join('\n'),
  );
}

/** --workers 1: one process, direct calls. */
async function runSingle(opts: Options): Promise<void> {
  const log = createLogger('server', opts.cfg.logLevel);
  const { meta, store, creds } = await openData(opts);
  const server = buildGateway(opts, meta, new LocalNeedleStore(store), log);
  const { host, port } = parseListen(opts.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const endpoint = endpointOf(host, typeof addr === 'object' && addr ? addr.port : port);
  log.info({ endpoint, data: path.resolve(opts.dataDir) }, 'kubestorage listening');
  printBanner(opts, endpoint, creds, 1);
  onShutdown(log, async () => {
    await closeHttp(server);
    await store.close();
    await meta.close();
  });
}

/** --workers N > 1, primary: owns the data, serves it on loopback, supervises workers. */
async function runPrimary(opts: Options): Promise<void> {
  const log = createLogger('server', opts.cfg.logLevel);
  const { meta, store, creds } = await openData(opts);
  const secret = crypto.randomBytes(32).toString('base64url');
  const auth = new InternalAuth(secret);
  const metaServer = new MetadataServer({ meta, auth, logger: log });
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
  const { host, port } = parseListen(opts.listen);

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
    await storeServer.close();
    await store.close();
    await meta.close();
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
  const endpoint = endpointOf(host, actualPort);
  log.info(
    { endpoint, data: path.resolve(opts.dataDir), workers: opts.workers },
    'kubestorage listening',
  );
  printBanner(opts, endpoint, creds, opts.workers);
}

/** A cluster worker: the gateway over the primary's metadata and store servers. */
async function runWorker(opts: Options): Promise<void> {
  const log = createLogger('server', opts.cfg.logLevel).child({ worker: cluster.worker?.id });
  const auth = new InternalAuth(process.env[ENV_SECRET]!);
  // Access keys are cached for a second: a key deleted through another worker stops
  // working within that second.
  const meta = new MetadataClient(process.env[ENV_META]!, auth, { keyCacheMs: 1000 });
  const needles = new StoreClient(process.env[ENV_STORE]!, auth);
  // Not inherited by anything this process might start.
  delete process.env[ENV_SECRET];
  const server = buildGateway(opts, meta, needles, log);
  let served = 0;
  server.on('request', () => {
    served++;
  });
  const { host, port } = parseListen(opts.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  onShutdown(log, async () => {
    await closeHttp(server);
    await Promise.all([meta.close(), needles.close()]);
    log.info({ pid: process.pid, served }, 'worker stopped');
  });
}
