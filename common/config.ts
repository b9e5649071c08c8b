// One typed configuration: defaults ← JSON file (--config or KUBESTORAGE_CONFIG) ← env
// (KUBESTORAGE_<SECTION>_<KEY>, e.g. KUBESTORAGE_STORE_MAX_VOLUME_SIZE=256MiB) ← flags.
import fs from 'node:fs';

/**
 * The most copies of an object's data any path accepts: the x-ks-replica-count header, a
 * bucket's setting, `gateway --replicas` and the directory's allocateVolume (they said 5
 * and 16). Five: every copy is on a write's synchronous path (the primary answers once
 * all are durable), so each adds tail latency and a full copy of space, and past five
 * the durability gained is nil. Spreading read load is the hot-object caches' job, not
 * extra volume replicas'.
 */
export const MAX_REPLICAS = 5;

export interface Config {
  /** Shared by every node of a cluster; derives the internal request tokens. */
  clusterSecret: string;
  logLevel: string;
  /** The embedded server (kubestorage server / npm start). */
  server: {
    data: string;
    listen: string;
    /** Also KUBESTORAGE_ROOT_ACCESS_KEY / _SECRET_KEY, which win over everything. */
    rootAccessKey: string;
    rootSecretKey: string;
  };
  gateway: {
    region: string;
    /** Virtual-host style base domain; empty = path style only. */
    domain: string;
    maxObjectSize: number;
    /** Objects larger than this are stored as several needles of this size. */
    chunkSize: number;
    /** Copies of a new object in a cluster unless its bucket or request says (--replicas). */
    replicas: number;
    /** Bound on one call to a store node. */
    storeTimeoutMs: number;
    /** A store this gateway failed to reach is kept out of its writes this long. */
    suspectMs: number;
    /** A read is hedged to a second replica after the p99 of recent reads, clamped to these. */
    hedgeMinMs: number;
    hedgeMaxMs: number;
    /** Node states, liveness and pooled volumes are re-read from the directory this often. */
    viewRefreshMs: number;
    /** A volume's replica list is trusted this long before it is asked for again. */
    volumeTtlMs: number;
    /**
     * Requests receiving an object body at once (PutObject, UploadPart, POST uploads);
     * one more gets 503 SlowDown. With chunkSize this bounds the bodies held in memory.
     */
    maxConcurrentUploads: number;
    /** A request whose headers have not all arrived by then is dropped (slowloris). */
    headersTimeoutMs: number;
    /** A connection that moves no byte this long is closed (a stalled upload, an idle client). */
    idleTimeoutMs: number;
    /** Bound on one whole request, body included (0 = none): past it the connection is closed. */
    requestTimeoutMs: number;
    /** Multipart uploads neither completed nor aborted are aborted at this age (0 = never) … */
    multipartExpiryMs: number;
    /** … looked for this often; the expiry frees their parts' needles. */
    multipartSweepMs: number;
  };
  store: {
    data: string;
    listen: string;
    maxVolumeSize: number;
    maxNeedleSize: number;
    fsync: boolean;
    compression: 'auto' | 'off';
    compactGarbageRatio: number;
    compactMinGarbageBytes: number;
    compactCheckMs: number;
    scrubIntervalMs: number;
    /** Heartbeats to the directory this often (with --directory). */
    heartbeatMs: number;
    /** Bound on one heartbeat (never more than heartbeatMs: a late beat is a missed one). */
    heartbeatTimeoutMs: number;
    /** Bound on one question to a directory replica (scrub repair: who else has a volume). */
    directoryTimeoutMs: number;
    /** Bound on one write a store forwards to another replica, connect to answer. */
    replicationTimeoutMs: number;
    /**
     * The directory's node list (the stores a store may forward a needle to or sync from)
     * is trusted this long; an origin missing from it re-reads it sooner.
     */
    knownStoresTtlMs: number;
  };
  /** A Raft directory replica (kubestorage directory). */
  directory: {
    listen: string;
    /** Raft tick: elections after 10-20 ticks, heartbeats every 2. */
    tickMs: number;
    /** The log is compacted after this many applied entries … */
    snapshotEvery: number;
    /** … or this many bytes of commands, keeping the newest keepBytes for slow replicas. */
    snapshotBytes: number;
    keepBytes: number;
    /**
     * A call that finds no leader waits this long for one before it fails with Unavailable
     * (503). MetadataClient's read attempts last longer (READ_ATTEMPT_MIN_MS) on purpose.
     */
    leaderWaitMs: number;
  };
  /** Store failure handling, which the directory and the gateways must agree on. */
  cluster: {
    /**
     * A store silent this long is down: the directory marks it offline and places no new
     * volume on it, and gateways read from it last and write to it no more.
     */
    offlineAfterMs: number;
    /** An offline store's volumes are re-replicated after this long. */
    rereplicateAfterMs: number;
    /** The directory leader's cluster manager looks at every store and volume this often. */
    roundMs: number;
    /** Bound on one call of the cluster manager to a store (a volume sync takes a while). */
    syncTimeoutMs: number;
    /** Orphan needles are looked for this often (0 = never) … */
    orphanSweepMs: number;
    /** … and reclaimed once they have been orphans this long. */
    orphanGraceMs: number;
  };
  /** The two-level cache and hot-object replicas (cache/README.md). */
  cache: {
    /** Off: no read counting, no caching, no extra replicas (the bench's "cache off" run). */
    enabled: boolean;
    /** In-process LRU of each gateway (directory level), bytes. */
    gatewayBytes: number;
    /** In-process LRU of each store node (store level), bytes. */
    storeBytes: number;
    /** Objects larger than this are never cached whole nor given extra replicas. */
    maxObjectBytes: number;
    /** Past this share of its bytes a level evicts lowest hit counts … */
    highWatermark: number;
    /** … until it is under this share. */
    lowWatermark: number;
    /** The inspection period: reads are counted per object per period. */
    periodMs: number;
    /** Reads in a period past which an object gets extra replicas … */
    replicateThreshold: number;
    /** … and past which it is cached at store level, then promoted to gateways. */
    cacheThreshold: number;
    /** Extra replicas of one hot object at most (on stores without its volume). */
    maxExtraReplicas: number;
    /**
     * Bound on one call of the directory leader to a store about an extra replica (reading
     * the needle from a volume replica, writing or dropping a copy).
     */
    extraCopyTimeoutMs: number;
    /**
     * How long a gateway may answer a hot object's GET from its own copy of the metadata;
     * a write to a hot object is acknowledged only once every such copy has expired.
     */
    leaseMs: number;
    /** Gateways report read counts to the directory and refresh the hot table this often. */
    reportMs: number;
    /** Shared L2 of the gateways (redis://host:port); empty = none. */
    redisUrl: string;
    /** Bound on one Redis call; past it the read goes to the stores. */
    redisTimeoutMs: number;
  };
}

export const DEFAULT_CONFIG: Config = {
  clusterSecret: '',
  logLevel: 'info',
  server: {
    data: './data',
    listen: '127.0.0.1:9000',
    rootAccessKey: '',
    rootSecretKey: '',
  },
  gateway: {
    region: 'us-east-1',
    domain: '',
    maxObjectSize: 5 * 1024 ** 3,
    chunkSize: 8 * 1024 ** 2,
    replicas: 2,
    storeTimeoutMs: 30_000,
    suspectMs: 5_000,
    hedgeMinMs: 5,
    hedgeMaxMs: 200,
    viewRefreshMs: 1_000,
    volumeTtlMs: 10_000,
    maxConcurrentUploads: 64,
    headersTimeoutMs: 30_000,
    idleTimeoutMs: 60_000,
    requestTimeoutMs: 3_600_000,
    multipartExpiryMs: 7 * 24 * 3_600_000,
    multipartSweepMs: 3_600_000,
  },
  store: {
    data: './data/store',
    listen: '127.0.0.1:8080',
    maxVolumeSize: 1024 ** 3,
    maxNeedleSize: 64 * 1024 ** 2,
    fsync: true,
    compression: 'auto',
    compactGarbageRatio: 0.3,
    compactMinGarbageBytes: 16 * 1024 ** 2,
    compactCheckMs: 60_000,
    scrubIntervalMs: 24 * 3600_000,
    heartbeatMs: 1_000,
    heartbeatTimeoutMs: 2_000,
    directoryTimeoutMs: 5_000,
    replicationTimeoutMs: 10_000,
    knownStoresTtlMs: 10_000,
  },
  directory: {
    listen: '127.0.0.1:7001',
    tickMs: 50,
    snapshotEvery: 20_000,
    snapshotBytes: 64 * 1024 ** 2,
    keepBytes: 16 * 1024 ** 2,
    leaderWaitMs: 5_000,
  },
  cluster: {
    offlineAfterMs: 3_000,
    rereplicateAfterMs: 30_000,
    roundMs: 1_000,
    syncTimeoutMs: 120_000,
    orphanSweepMs: 3_600_000,
    orphanGraceMs: 24 * 3_600_000,
  },
  cache: {
    enabled: true,
    gatewayBytes: 256 * 1024 ** 2,
    storeBytes: 256 * 1024 ** 2,
    maxObjectBytes: 1024 ** 2,
    highWatermark: 0.95,
    lowWatermark: 0.8,
    periodMs: 600_000,
    replicateThreshold: 500,
    cacheThreshold: 1_000,
    maxExtraReplicas: 2,
    extraCopyTimeoutMs: 30_000,
    leaseMs: 1_000,
    reportMs: 500,
    redisUrl: '',
    redisTimeoutMs: 50,
  },
};

/** Older names still honoured, applied after (and so over) the regular variables. */
const ENV_ALIASES: ReadonlyArray<[alias: string, path: [section: string, key: string]]> = [
  ['KUBESTORAGE_ROOT_ACCESS_KEY', ['server', 'rootAccessKey']],
  ['KUBESTORAGE_ROOT_SECRET_KEY', ['server', 'rootSecretKey']],
];

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  t: 1e12,
  ki: 1024,
  mi: 1024 ** 2,
  gi: 1024 ** 3,
  ti: 1024 ** 4,
};

/** "4096", "64MiB", "1g", "1.5GiB" → bytes. */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$/i.exec(s);
  if (!m) throw new Error(`not a size: ${JSON.stringify(s)}`);
  const unit = UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) throw new Error(`not a size: ${JSON.stringify(s)}`);
  return Math.round(Number(m[1]) * unit);
}

export function envName(path: string[]): string {
  return `KUBESTORAGE_${path
    .map((p) => p.replace(/[A-Z]/g, (c) => `_${c}`))
    .join('_')
    .toUpperCase()}`;
}

function coerce(def: unknown, raw: unknown, where: string): unknown {
  if (typeof def === 'number') {
    const n = typeof raw === 'number' ? raw : parseSize(String(raw));
    if (!Number.isFinite(n)) throw new Error(`${where}: not a number`);
    return n;
  }
  if (typeof def === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    const s = String(raw).toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) return true;
    if (['0', 'false', 'no', 'off'].includes(s)) return false;
    throw new Error(`${where}: not a boolean: ${raw}`);
  }
  return String(raw);
}

type Tree = Record<string, unknown>;

function merge(def: Tree, over: Tree | undefined, env: NodeJS.ProcessEnv, path: string[]): Tree {
  const out: Tree = {};
  for (const [k, d] of Object.entries(def)) {
    const p = [...path, k];
    if (d && typeof d === 'object') {
      out[k] = merge(d as Tree, over?.[k] as Tree | undefined, env, p);
      continue;
    }
    let v: unknown = d;
    if (over && over[k] !== undefined) v = coerce(d, over[k], p.join('.'));
    const e = env[envName(p)];
    if (e !== undefined && e !== '') v = coerce(d, e, envName(p));
    out[k] = v;
  }
  return out;
}

export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.KUBESTORAGE_CONFIG;
  const fromFile = file ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Tree) : undefined;
  const cfg = merge(DEFAULT_CONFIG as unknown as Tree, fromFile, env, []);
  for (const [alias, [section, key]] of ENV_ALIASES) {
    const v = env[alias];
    if (v) (cfg[section] as Tree)[key] = v;
  }
  const c = cfg as unknown as Config;
  const r = c.gateway.replicas;
  if (!Number.isInteger(r) || r < 1 || r > MAX_REPLICAS) {
    throw new Error(`gateway.replicas: an integer from 1 to ${MAX_REPLICAS}, got ${r}`);
  }
  return c;
}
