// kubestorage directory: one replica of the Raft metadata directory.
import { InternalAuth } from '../common/internal-auth.ts';
import { createLogger } from '../common/log.ts';
import { DirectoryServer } from '../directory/replica/raft-server.ts';
import { intFlag, onShutdown, parseCommand, parseListen } from './common.ts';

const HELP = `usage: kubestorage directory --id ID --listen HOST:PORT --peers ID=URL,... --data DIR [--join]

  --id ID              this replica's id (one of --peers)
  --listen HOST:PORT   address for gateways, peers and /status (default 127.0.0.1:7001)
  --peers LIST         every replica: d1=http://127.0.0.1:7001,d2=http://127.0.0.1:7002,...
  --data DIR           data directory (default ./data/directory/ID): raft log + state machine
  --join               start outside the group and wait to be added
                       (kubestorage admin raft add ID URL); without it a fresh data
                       directory bootstraps a group of exactly --peers
  --tick-ms N          Raft tick (default 50; elections after 10-20 ticks, heartbeats every 2)
  --snapshot-every N   compact the log after N applied entries (default 20000)
  --snapshot-bytes N   or after N bytes of commands (default 67108864), keeping the newest
                       --keep-bytes of them (default 16777216) for replicas catching up
  --offline-after-ms N a store silent this long is marked offline and gets no new volumes
                       (default 3000; give the gateways the same)
  --rereplicate-after-ms N
                       an offline store's volumes are re-replicated after this long
                       (default 30000; a store removed for good: at once)
  --config FILE        JSON config file (see README); env KUBESTORAGE_* overrides it

The cluster secret comes from KUBESTORAGE_CLUSTER_SECRET or the config file; every replica,
gateway and store of a cluster needs the same one.
`;

export function parsePeers(s: string): Map<string, string> {
  const peers = new Map<string, string>();
  for (const part of s.split(',').filter(Boolean)) {
    const eq = part.indexOf('=');
    const id = part.slice(0, eq);
    const url = part.slice(eq + 1).replace(/\/+$/, '');
    if (eq <= 0 || !/^[A-Za-z0-9._-]{1,64}$/.test(id) || !/^https?:\/\/[^/\s]+$/.test(url)) {
      throw new Error(`--peers: expected ID=http://host:port, got ${JSON.stringify(part)}`);
    }
    if (peers.has(id)) throw new Error(`--peers: ${id} given twice`);
    peers.set(id, url);
  }
  return peers;
}

export async function main(argv: string[]): Promise<void> {
  const raft = 'tick-ms snapshot-every snapshot-bytes keep-bytes';
  const cluster = 'offline-after-ms rereplicate-after-ms';
  const parsed = parseCommand(argv, HELP, `id listen peers data ${raft} ${cluster}`, 'join');
  if (!parsed) return;
  const { flags: values, cfg } = parsed;
  if (!values.id || !values.peers) throw new Error(`--id and --peers are required\n\n${HELP}`);
  const peers = parsePeers(values.peers);
  if (!peers.has(values.id)) throw new Error(`--id ${values.id} is not in --peers`);
  const d = cfg.directory;
  const int = (name: string, min: number, max: number, dflt: number): number =>
    intFlag(values, name, min, max) ?? dflt;
  d.tickMs = int('tick-ms', 1, 10_000, d.tickMs);
  d.snapshotEvery = int('snapshot-every', 10, 100_000_000, d.snapshotEvery);
  d.snapshotBytes = int('snapshot-bytes', 1024, 2 ** 40, d.snapshotBytes);
  d.keepBytes = int('keep-bytes', 0, 2 ** 40, d.keepBytes);
  const cl = cfg.cluster;
  cl.offlineAfterMs = int('offline-after-ms', 100, 3_600_000, cl.offlineAfterMs);
  cl.rereplicateAfterMs = int('rereplicate-after-ms', 0, 86_400_000, cl.rereplicateAfterMs);
  const log = createLogger(`directory-${values.id}`, cfg.logLevel);
  const data = values.data ?? `./data/directory/${values.id}`;
  const { host, port } = parseListen(values.listen ?? d.listen);
  if (!cfg.clusterSecret) {
    throw new Error('the replicas need one shared secret: set KUBESTORAGE_CLUSTER_SECRET');
  }
  const auth = new InternalAuth(cfg.clusterSecret);
  const { dir, addr } = await DirectoryServer.start({
    id: values.id,
    dataDir: data,
    peers,
    join: values.join ?? false,
    auth,
    logger: log,
    listenHost: host,
    listenPort: port,
    tickMs: d.tickMs,
    snapshotEvery: d.snapshotEvery,
    snapshotBytes: d.snapshotBytes,
    keepBytes: d.keepBytes,
    waitMs: d.leaderWaitMs,
    cluster: {
      offlineAfterMs: cl.offlineAfterMs,
      rereplicateAfterMs: cl.rereplicateAfterMs,
      intervalMs: cl.roundMs,
      storeTimeoutMs: cl.syncTimeoutMs,
      sweepIntervalMs: cl.orphanSweepMs,
      orphanGraceMs: cl.orphanGraceMs,
    },
  });
  log.info(
    { id: values.id, url: `http://${addr.address}:${addr.port}`, data, peers: [...peers.keys()] },
    'directory replica listening',
  );
  onShutdown(log, () => dir.close());
}
