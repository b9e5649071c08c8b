// kubestorage store: one store node serving its volumes over the internal HTTP API.
import fs from 'node:fs';
import path from 'node:path';
import { parseSize } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { createLogger, type Logger } from '../common/log.ts';
import type { NodeRecord } from '../directory/model/topology.ts';
import {
  directoryKnownStores,
  directoryNodeRecord,
  directoryReplicaUrls,
  replicaRepair,
} from '../store-node/directory-link.ts';
import { EXTRA_DIR } from '../store-node/extra-replicas.ts';
import {
  collectHeartbeat,
  HeartbeatSender,
  INCARNATION_FILE,
  storeIncarnation,
} from '../store-node/heartbeat.ts';
import { needleCacheOptions } from '../store-node/needle-cache.ts';
import { StoreServer } from '../store-node/server.ts';
import { Store } from '../store-node/store.ts';
import {
  clusterSecret,
  intFlag,
  onShutdown,
  parseCommand,
  parseListen,
  storeOptions,
} from './common.ts';

const HELP = `usage: kubestorage store [--data DIR] [--listen HOST:PORT] [options]

  --data DIR              volume directory (default ./data/store)
  --listen HOST:PORT      address to serve on (default 127.0.0.1:8080)
  --config FILE           JSON config file (see README); env KUBESTORAGE_* overrides it
  --max-volume-size SIZE  roll over to a new volume past this size (default 1GiB)
  --no-fsync              acknowledge before fdatasync (experiments only: not durable)
  --compression auto|off  zstd for compressible needles (default auto)

Cluster (with --directory the node heartbeats, repairs corrupt needles from replicas and
forwards needles to the stores the directory lists; without it, it forwards to none):
  --directory URL[,URL]   directory replicas to heartbeat to and ask for volume replicas
  --id ID                 node id in the directory (default: host:port of --advertise)
  --zone Z                failure domain label (default none)
  --zone-file FILE        read the zone from FILE (its first line), e.g. one an init
                          container wrote or a downward-API volume file; when FILE is
                          empty, --zone applies. A missing FILE is an error
  --advertise URL         base URL other nodes use to reach this one (default http://LISTEN)
  --capacity SIZE         bytes offered (default: used + free space of the data disk)
  --heartbeat-ms N        heartbeat interval (default 1000)

The cluster secret comes from KUBESTORAGE_CLUSTER_SECRET or the config file; without
one, a secret is generated in DIR/cluster.secret.

DIR/${INCARNATION_FILE} identifies the data directory (written at its first start). A store
the directory removed for good stays removed while it runs; started again (with --id or
--advertise) on the data directory it was removed with, it moves its volumes aside into
DIR/retired-<old incarnation>/, takes a new incarnation and is re-admitted as an empty
store (a StatefulSet scaled down and up again, its PVC retained). A new data directory
under a removed id is re-admitted the same way.
`;

/**
 * At start, before the volumes are opened: when the directory has node `id` removed with
 * this data directory's incarnation, the directory is retired — its volume files (and
 * extra copies) moved into DIR/retired-<incarnation>/, where nothing reads them, kept for
 * an operator to delete — and a new incarnation is written. The directory then re-admits
 * the store as a new, empty one. Returns the incarnation to use. `record` undefined (no
 * directory answered) changes nothing.
 */
export function retireIfRemoved(
  dir: string,
  incarnation: string,
  record: NodeRecord | null | undefined,
  log: Logger,
): string {
  if (record?.state !== 'removed' || record.incarnation !== incarnation) {
    return incarnation;
  }
  const aside = path.join(dir, `retired-${incarnation}`);
  fs.mkdirSync(aside, { recursive: true });
  const moved: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (!/^\d+\.(dat|idx|cpd|cpx|sealed)$/.test(name) && name !== EXTRA_DIR) continue;
    fs.renameSync(path.join(dir, name), path.join(aside, name));
    moved.push(name);
  }
  const next = storeIncarnation(dir, true);
  log.warn(
    { id: record.id, was: incarnation, incarnation: next, movedTo: aside, files: moved.length },
    'this data directory belongs to a store the directory removed for good: volumes moved ' +
      'aside, starting as a new empty store under the same id',
  );
  return next;
}

/**
 * The store's zone: the first line of `zoneFile` when it names one, else `zone`, else ''.
 * The file is read once, at start.
 */
export function storeZone(zone: string | undefined, zoneFile: string | undefined): string {
  let fromFile = '';
  if (zoneFile !== undefined) {
    try {
      fromFile = (fs.readFileSync(zoneFile, 'utf8').split('\n')[0] ?? '').trim();
    } catch (e) {
      throw new Error(`--zone-file ${zoneFile}: ${(e as Error).message}`);
    }
  }
  if (fromFile.length > 253 || /[\s\p{Cc}]/u.test(fromFile)) {
    throw new Error(
      `--zone-file ${zoneFile}: ${JSON.stringify(fromFile.slice(0, 80))} is not a zone (at most 253 characters, no spaces)`,
    );
  }
  return fromFile || (zone ?? '');
}

export async function main(argv: string[]): Promise<void> {
  const local = 'data listen max-volume-size compression';
  const cluster = 'directory id zone zone-file advertise capacity heartbeat-ms';
  const parsed = parseCommand(argv, HELP, `${local} ${cluster}`, 'no-fsync');
  if (!parsed) return;
  const { flags: values, cfg } = parsed;
  const sc = cfg.store;
  if (values.data) sc.data = values.data;
  if (values.listen) sc.listen = values.listen;
  if (values['max-volume-size']) sc.maxVolumeSize = parseSize(values['max-volume-size']);
  if (values['no-fsync']) sc.fsync = false;
  if (values.compression) {
    if (values.compression !== 'auto' && values.compression !== 'off')
      throw new Error('--compression auto|off');
    sc.compression = values.compression;
  }
  const directories = (values.directory ?? '')
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '');
  for (const d of directories) new URL(d); // a typo fails at start, not in every heartbeat
  const zone = storeZone(values.zone, values['zone-file']);
  sc.heartbeatMs = intFlag(values, 'heartbeat-ms', 10, 2 ** 31 - 1) ?? sc.heartbeatMs;
  const capacity = values.capacity ? parseSize(values.capacity) : undefined;
  const log = createLogger('store', cfg.logLevel);
  const { host, port } = parseListen(sc.listen);
  const auth = new InternalAuth(clusterSecret(cfg.clusterSecret, sc.data, log));
  let incarnation = storeIncarnation(sc.data);
  // The id is known before listening when given (a StatefulSet pod's --id), or derived
  // from --advertise: only then can a removed data directory be recognised before opening.
  const earlyId = values.id ?? (values.advertise ? new URL(values.advertise).host : undefined);
  if (directories.length > 0 && earlyId !== undefined) {
    const record = await directoryNodeRecord(
      { directories, auth, timeoutMs: sc.directoryTimeoutMs },
      earlyId,
    );
    incarnation = retireIfRemoved(sc.data, incarnation, record, log);
  }
  const t0 = performance.now();
  // The store-level cache of hot needles (cache/README.md); none when cache.enabled is off.
  const store = await Store.open(sc.data, {
    ...storeOptions(sc),
    cache: needleCacheOptions(cfg.cache),
  });
  const status = await store.status();
  log.info(
    {
      volumes: status.volumes.length,
      needles: status.needles,
      extraCopies: store.extras.count,
      loadMs: Math.round(performance.now() - t0),
    },
    'volumes loaded',
  );
  if (!sc.fsync) log.warn('fsync is off: acknowledged writes can be lost on power failure');
  store.startMaintenance();
  // Needles are forwarded to (and volumes synced from) only stores the directory knows; a
  // store without a directory forwards to nobody.
  const knownStore =
    directories.length > 0
      ? directoryKnownStores({
          directories,
          auth,
          timeoutMs: sc.directoryTimeoutMs,
          ttlMs: sc.knownStoresTtlMs,
        })
      : undefined;
  let heartbeat: HeartbeatSender | null = null;
  const server = new StoreServer({
    store,
    auth,
    maxNeedleSize: sc.maxNeedleSize,
    replicationTimeoutMs: sc.replicationTimeoutMs,
    logger: log,
    knownStore,
    // Ready once a heartbeat got through: the directory knows where this store is.
    ready: () => heartbeat === null || heartbeat.counts.ok > 0,
  });
  const addr = await server.listen(host, port);
  const listenUrl = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  log.info({ url: listenUrl, data: sc.data }, 'store node listening');
  if (directories.length > 0) {
    const advertise = new URL(values.advertise ?? listenUrl).origin;
    if (!values.advertise && /^http:\/\/(0\.0\.0\.0|\[::\])/.test(listenUrl))
      log.warn({ advertise }, 'listening on a wildcard address: set --advertise');
    const id = values.id ?? new URL(advertise).host;
    const self = { id, url: advertise, zone, capacity, incarnation };
    const replicaUrls = directoryReplicaUrls({
      directories,
      auth,
      selfId: id,
      selfUrl: advertise,
      timeoutMs: sc.directoryTimeoutMs,
    });
    store.repairHook = replicaRepair(replicaUrls, (url) => server.replicator.client(url));
    heartbeat = new HeartbeatSender({
      directories,
      auth,
      intervalMs: sc.heartbeatMs,
      timeoutMs: Math.min(sc.heartbeatMs, sc.heartbeatTimeoutMs),
      collect: () => collectHeartbeat(store, self, () => server.load),
      logger: log,
    });
    heartbeat.start();
    log.info({ id, advertise, zone: self.zone, incarnation, directories }, 'joined cluster');
  }
  onShutdown(log, async () => {
    await heartbeat?.stop();
    await server.close();
    await store.close();
  });
}
