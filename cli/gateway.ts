// kubestorage gateway: a stateless S3 gateway for a cluster. Metadata and topology come
// from the Raft directory; object bytes go to replicated volumes on the store nodes the
// directory assigns. Holds no data of its own, so any number can run behind a load
// balancer, and one that dies loses nothing but the requests it had in flight.
import type { Server } from 'node:http';
import { parseArgs } from 'node:util';
import { type Config, loadConfig } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { ClusterPlacement } from '../data/cluster-placement.ts';
import { ClusterNeedleStore } from '../data/cluster-store.ts';
import { ObjectData } from '../data/object-data.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import { createGatewayServer } from '../gateway/app.ts';
import { ensureRootCredentials } from '../gateway/users.ts';
import { onShutdown, parseListen } from './common.ts';

const HELP = `usage: kubestorage gateway --directory URLS [--listen HOST:PORT] [--domain DOMAIN]
                          [--replicas N] [--config FILE]

  --directory URLS    base URLs of the directory replicas, comma-separated (required)
  --listen HOST:PORT  S3 endpoint (default 127.0.0.1:9000)
  --domain DOMAIN     also accept virtual-host style requests to <bucket>.DOMAIN
  --replicas N        copies of each new object (default 2)
  --config FILE       JSON config file; KUBESTORAGE_* environment variables override it

environment:
  KUBESTORAGE_CLUSTER_SECRET     the cluster's shared secret (required)
  KUBESTORAGE_ROOT_ACCESS_KEY    root credentials to install; without them the stored
  KUBESTORAGE_ROOT_SECRET_KEY    ones are used, or new ones generated and printed
`;

export interface GatewayOptions {
  cfg: Config;
  directory: string[];
  listen: string;
  domain?: string;
  replicas: number;
}

export interface RunningGateway {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  created: boolean;
  close(): Promise<void>;
}

export function parseReplicas(s: string | undefined): number {
  if (s === undefined) return 2;
  if (!/^\d{1,2}$/.test(s) || Number(s) < 1 || Number(s) > 16)
    throw new Error(`--replicas wants a number from 1 to 16, got ${JSON.stringify(s)}`);
  return Number(s);
}

export function parseDirectory(s: string | undefined): string[] {
  const urls = (s ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  if (urls.length === 0) throw new Error('--directory URL[,URL...] is required');
  for (const u of urls) {
    let ok = false;
    try {
      ok = /^https?:$/.test(new URL(u).protocol);
    } catch {}
    if (!ok) throw new Error(`--directory: not an http(s) URL: ${JSON.stringify(u)}`);
  }
  return urls;
}

export async function startGateway(opts: GatewayOptions, log: Logger): Promise<RunningGateway> {
  const { cfg } = opts;
  if (!cfg.clusterSecret) throw new Error('the gateway needs KUBESTORAGE_CLUSTER_SECRET');
  const auth = new InternalAuth(cfg.clusterSecret);
  // Keys are cached for a second: one deleted through another gateway stops working within it.
  const meta = new MetadataClient(opts.directory, auth, { keyCacheMs: 1000 });
  const store = new ClusterNeedleStore({ directory: meta, auth, log });
  const placement = new ClusterPlacement({
    directory: meta,
    store,
    log,
    replicaCount: opts.replicas,
  });
  const shutdown = async () => {
    placement.close();
    await store.close();
    await meta.close();
  };
  let server: Server;
  let creds: Awaited<ReturnType<typeof ensureRootCredentials>>;
  try {
    creds = await ensureRootCredentials(
      meta,
      process.env.KUBESTORAGE_ROOT_ACCESS_KEY || cfg.server.rootAccessKey,
      process.env.KUBESTORAGE_ROOT_SECRET_KEY || cfg.server.rootSecretKey,
    );
    server = createGatewayServer({
      meta,
      data: new ObjectData(store, placement, undefined, log),
      log,
      config: {
        region: cfg.gateway.region,
        domain: opts.domain,
        maxObjectSize: cfg.gateway.maxObjectSize,
      },
    });
    const { host, port } = parseListen(opts.listen);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const addr = server.address();
    const actual = typeof addr === 'object' && addr ? addr.port : port;
    const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${actual}`;
    return {
      endpoint,
      ...creds,
      async close() {
        await new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        });
        await shutdown();
      },
    };
  } catch (e) {
    await shutdown();
    throw e;
  }
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      directory: { type: 'string' },
      listen: { type: 'string' },
      domain: { type: 'string' },
      replicas: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const cfg = loadConfig({ file: values.config });
  const opts: GatewayOptions = {
    cfg,
    directory: parseDirectory(values.directory),
    listen: values.listen ?? cfg.server.listen,
    domain: values.domain ?? (cfg.gateway.domain || undefined),
    replicas: parseReplicas(values.replicas),
  };
  const log = createLogger('gateway', cfg.logLevel);
  const gw = await startGateway(opts, log);
  log.info(
    { endpoint: gw.endpoint, directory: opts.directory, replicas: opts.replicas },
    'kubestorage gateway listening',
  );
  process.stdout.write(
    [
      '',
      `Kubestorage S3 endpoint: ${gw.endpoint}   (cluster gateway, ${opts.replicas} replicas)`,
      `  access key: ${gw.accessKey}`,
      `  secret key: ${gw.secretKey}${gw.created ? '   (generated now, stored in the directory)' : ''}`,
      '',
    ].join('\n'),
  );
  onShutdown(log, gw.close);
}
