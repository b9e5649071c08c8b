// kubestorage gateway: a stateless S3 gateway for a cluster. Metadata and topology come
// from the Raft directory; object bytes go to replicated volumes on the store nodes the
// directory assigns. Holds no data of its own, so any number can run behind a load
// balancer, and one that dies loses nothing but the requests it had in flight.
import { type Config, DEFAULT_CONFIG, MAX_REPLICAS } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { assembleGateway } from '../compose/gateway.ts';
import { SecretBox } from '../gateway/secret-box.ts';
import { intFlag, onShutdown, parseCommand, parseListen } from './common.ts';

const HELP = `usage: kubestorage gateway --directory URLS [--listen HOST:PORT] [--domain DOMAIN]
                          [--replicas N] [--config FILE]

  --directory URLS    base URLs of the directory replicas, comma-separated (required)
  --listen HOST:PORT  S3 endpoint (default 127.0.0.1:9000)
  --domain DOMAIN     also accept virtual-host style requests to <bucket>.DOMAIN
  --replicas N        copies of each new object (default 2, at most 5)
  --offline-after-ms N
                      a store silent this long is down: read from last, not written to
                      (default 3000; give the directory the same)
  --config FILE       JSON config file; KUBESTORAGE_* environment variables override it

environment:
  KUBESTORAGE_CLUSTER_SECRET     the cluster's shared secret (required)
  KUBESTORAGE_ROOT_ACCESS_KEY    root credentials to install; without them the stored
  KUBESTORAGE_ROOT_SECRET_KEY    ones are used, or new ones generated and printed (the
                                 secret only when stdout is a terminal, never into a log)

Access-key secrets are stored sealed under a key derived from the cluster secret.
`;

export interface GatewayOptions {
  /** Flags already applied (listen, domain, replicas, offline-after). */
  cfg: Config;
  directory: string[];
  listen: string;
}

export interface RunningGateway {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  created: boolean;
  close(): Promise<void>;
}

export function parseReplicas(
  s: string | undefined,
  dflt: number = DEFAULT_CONFIG.gateway.replicas,
): number {
  if (s === undefined) return dflt;
  if (!/^\d{1,2}$/.test(s) || Number(s) < 1 || Number(s) > MAX_REPLICAS)
    throw new Error(
      `--replicas wants a number from 1 to ${MAX_REPLICAS}, got ${JSON.stringify(s)}`,
    );
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
  const gw = await assembleGateway({
    cfg,
    log,
    // No key cache here: the gateway's own (lookup-cache.ts) bounds a deleted key to a
    // second; a second layer under it would stretch that to two.
    meta: { directory: opts.directory, auth },
    data: { cluster: auth },
    // Every gateway of the cluster opens what any of them sealed.
    sealing: SecretBox.fromAuth(auth),
    root: { accessKey: cfg.server.rootAccessKey, secretKey: cfg.server.rootSecretKey },
  });
  try {
    const { host, port } = parseListen(opts.listen);
    const endpoint = await gw.listen(host, port);
    return { endpoint, ...gw.creds!, close: () => gw.close() };
  } catch (e) {
    await gw.close();
    throw e;
  }
}

export async function main(argv: string[]): Promise<void> {
  const parsed = parseCommand(argv, HELP, 'directory listen domain replicas offline-after-ms');
  if (!parsed) return;
  const { flags, cfg } = parsed;
  if (flags.domain !== undefined) cfg.gateway.domain = flags.domain;
  cfg.gateway.replicas = parseReplicas(flags.replicas, cfg.gateway.replicas);
  cfg.cluster.offlineAfterMs =
    intFlag(flags, 'offline-after-ms', 100, 3_600_000) ?? cfg.cluster.offlineAfterMs;
  const opts: GatewayOptions = {
    cfg,
    directory: parseDirectory(flags.directory),
    listen: flags.listen ?? cfg.server.listen,
  };
  const log = createLogger('gateway', cfg.logLevel);
  const gw = await startGateway(opts, log);
  const replicas = cfg.gateway.replicas;
  log.info(
    { endpoint: gw.endpoint, directory: opts.directory, replicas },
    'kubestorage gateway listening',
  );
  process.stdout.write(
    [
      '',
      `Kubestorage S3 endpoint: ${gw.endpoint}   (cluster gateway, ${replicas} replicas)`,
      `  access key: ${gw.accessKey}`,
      // To a terminal only: `cluster up` and supervisors send stdout to a log file.
      `  secret key: ${process.stdout.isTTY ? gw.secretKey : '(not shown: stdout is not a terminal)'}${gw.created ? '   (generated now, stored sealed in the directory)' : ''}`,
      '',
    ].join('\n'),
  );
  onShutdown(log, gw.close);
}
