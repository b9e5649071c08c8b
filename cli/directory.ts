// kubestorage directory: one replica of the Raft metadata directory.
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InternalAuth } from '../common/internal-auth.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { restoreBackup } from '../directory/engine/sm-snapshot.ts';
import { startKubeIntegration } from '../directory/kube/start.ts';
import { RaftStorage } from '../directory/raft/storage.ts';
import { DirectoryServer } from '../directory/replica/raft-server.ts';
import { intFlag, onShutdown, parseCommand, parseFlags, parseListen } from './common.ts';

const HELP = `usage: kubestorage directory (--id ID | --id-from-hostname) --listen HOST:PORT
         (--peers ID=URL,... | --peers-dns NAME.SERVICE[.NS...]:PORT --replicas N)
         --data DIR [--join | --join auto]

  --id ID              this replica's id (one of --peers, unless it joins)
  --id-from-hostname   the id is the host name (HOSTNAME, else os.hostname(), up to its
                       first dot): a StatefulSet pod's name, e.g. ks-directory-2
  --listen HOST:PORT   address for gateways, peers and /status (default 127.0.0.1:7001)
  --peers LIST         the group at bootstrap: d1=http://127.0.0.1:7001,d2=http://127.0.0.1:7002,...
  --peers-dns NAME.SERVICE[.NS...]:PORT
  --replicas N         the same for the pods of StatefulSet NAME behind headless Service
                       SERVICE: NAME-0 ... NAME-(N-1) at http://NAME-i.SERVICE[.NS...]:PORT
                       (N: the replicas that bootstrap the group; later ones join it)
  --data DIR           data directory (default ./data/directory/ID): raft log + state machine
  --join               start outside the group and wait to be added
                       (kubestorage admin raft add ID URL); without it a fresh data
                       directory bootstraps a group of exactly the --peers
  --join auto          join when this replica is not one of the bootstrap peers (with
                       --peers-dns: its ordinal is N or more), and then ask the group to add
                       it as a learner (promoted to voter once caught up), unless it already
                       has a Raft log; a bootstrap peer bootstraps as without --join
  --advertise URL      this replica's URL for the group when it joins (default: derived
                       from --peers-dns, or its entry in --peers)
  --tick-ms N          Raft tick (default 50; elections after 10-20 ticks, heartbeats every 2)
  --snapshot-every N   compact the log after N applied entries (default 20000)
  --snapshot-bytes N   or after N bytes of commands (default 67108864), keeping the newest
                       --keep-bytes of them (default 16777216) for replicas catching up
  --offline-after-ms N a store silent this long is marked offline and gets no new volumes
                       (default 3000; give the gateways the same)
  --rereplicate-after-ms N
                       an offline store's volumes are re-replicated after this long
                       (default 30000; a store removed for good: at once)
  --restore FILE       seed a NEW group from a backup (kubestorage admin directory backup):
                       only with a single bootstrap peer (this replica) and an empty data
                       directory; the state is imported before the replica starts, and
                       replicas that join later receive it as a Raft snapshot. Started
                       again on the same data directory, the flag is ignored
  --config FILE        JSON config file (see README); env KUBESTORAGE_* overrides it

A bootstrap peer that lost its data directory must not bootstrap again under its old id:
remove it (admin raft remove ID), start it with an empty data directory, add it back
(admin raft add ID URL); see docs/kubernetes.md.

The cluster secret comes from KUBESTORAGE_CLUSTER_SECRET or the config file; every replica,
gateway and store of a cluster needs the same one.
`;

const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

export function parsePeers(s: string): Map<string, string> {
  const peers = new Map<string, string>();
  for (const part of s.split(',').filter(Boolean)) {
    const eq = part.indexOf('=');
    const id = part.slice(0, eq);
    const url = part.slice(eq + 1).replace(/\/+$/, '');
    if (eq <= 0 || !ID_RE.test(id) || !/^https?:\/\/[^/\s]+$/.test(url)) {
      throw new Error(`--peers: expected ID=http://host:port, got ${JSON.stringify(part)}`);
    }
    if (peers.has(id)) throw new Error(`--peers: ${id} given twice`);
    peers.set(id, url);
  }
  return peers;
}

/** The pods of a StatefulSet behind a headless Service, as --peers-dns names them. */
export interface PeersDns {
  /** The StatefulSet's name: pod i is NAME-i. */
  name: string;
  /** What follows the pod name in its DNS name: `.SERVICE[.NS...]`. */
  domain: string;
  port: number;
  scheme: 'http' | 'https';
  /** The bootstrap replicas: NAME-0 … NAME-(replicas-1). */
  replicas: number;
}

const LABEL = '[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?';
const PEERS_DNS_RE = new RegExp(`^(?:(https?)://)?(${LABEL})((?:\\.${LABEL})+)\\.?:(\\d{1,5})$`);

/** `--peers-dns NAME.SERVICE[.NS...]:PORT` with `--replicas N`. */
export function parsePeersDns(spec: string, replicas: number): PeersDns {
  const m = PEERS_DNS_RE.exec(spec);
  if (!m) {
    throw new Error(
      `--peers-dns: expected STATEFULSET.SERVICE[.NAMESPACE...]:PORT, got ${JSON.stringify(spec)}`,
    );
  }
  const port = Number(m[4]);
  if (port < 1 || port > 65535) throw new Error(`--peers-dns: port ${port} out of range`);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 99) {
    throw new Error('--replicas: an integer from 1 to 99');
  }
  const name = m[2]!;
  // The longest pod name must still be an id (64 characters) and a DNS label (63).
  if (`${name}-${replicas - 1}`.length > 63) throw new Error(`--peers-dns: ${name} is too long`);
  return { name, domain: m[3]!, port, scheme: (m[1] as 'http' | 'https') ?? 'http', replicas };
}

/** Pod `NAME-i`'s URL. */
export function podUrl(d: PeersDns, id: string): string {
  return `${d.scheme}://${id}${d.domain}:${d.port}`;
}

/** The bootstrap peers: NAME-0 … NAME-(N-1) with their URLs. */
export function dnsPeers(d: PeersDns): Map<string, string> {
  const peers = new Map<string, string>();
  for (let i = 0; i < d.replicas; i++) peers.set(`${d.name}-${i}`, podUrl(d, `${d.name}-${i}`));
  return peers;
}

/** The ordinal of pod `id` of StatefulSet `name`; null when `id` is not one of its pods. */
export function podOrdinal(name: string, id: string): number | null {
  if (!id.startsWith(`${name}-`)) return null;
  const rest = id.slice(name.length + 1);
  return /^(0|[1-9]\d{0,8})$/.test(rest) ? Number(rest) : null;
}

/** The id --id-from-hostname takes: HOSTNAME (a pod's name), else the OS's host name. */
export function hostnameId(env: NodeJS.ProcessEnv = process.env, osName = os.hostname()): string {
  const name = (env.HOSTNAME || osName).split('.')[0]!;
  if (!ID_RE.test(name)) {
    throw new Error(`--id-from-hostname: host name ${JSON.stringify(name)} is not a valid id`);
  }
  return name;
}

export interface TopologyFlags {
  id?: string;
  'id-from-hostname'?: boolean;
  peers?: string;
  'peers-dns'?: string;
  replicas?: string;
  join?: boolean;
  'join-auto'?: boolean;
  advertise?: string;
}

/** Who this replica is, its bootstrap group and whether it joins instead. */
export interface Topology {
  id: string;
  /** The bootstrap peers, plus this replica when it is not one of them. */
  peers: Map<string, string>;
  /** Start outside the group (no bootstrap configuration). */
  join: boolean;
  /** --join auto and not a bootstrap peer: ask the group to add this replica. */
  selfAdd: boolean;
  /** This replica's URL for the group. */
  url: string;
  /** The bootstrap peers as given (without this replica if it is not one). */
  bootstrap: Map<string, string>;
}

/** Resolves the id, peer and join flags (no I/O but the host name). */
export function resolveTopology(
  f: TopologyFlags,
  hostname: () => string = () => hostnameId(),
): Topology {
  if (f.id !== undefined && f['id-from-hostname'])
    throw new Error('--id and --id-from-hostname: one of them');
  if (f.peers !== undefined && f['peers-dns'] !== undefined)
    throw new Error('--peers and --peers-dns: one of them');
  if (f.join && f['join-auto']) throw new Error('--join and --join auto: one of them');
  if (f.replicas !== undefined && f['peers-dns'] === undefined)
    throw new Error('--replicas goes with --peers-dns');
  const id = f['id-from-hostname'] ? hostname() : f.id;
  if (!id) throw new Error('--id (or --id-from-hostname) is required');
  if (!ID_RE.test(id)) throw new Error(`--id: 1-64 of [A-Za-z0-9._-], got ${JSON.stringify(id)}`);
  let bootstrap: Map<string, string>;
  let derived: string | undefined;
  if (f['peers-dns'] !== undefined) {
    if (f.replicas === undefined) throw new Error('--peers-dns needs --replicas N');
    const replicas = Number(f.replicas);
    const d = parsePeersDns(f['peers-dns'], replicas);
    if (podOrdinal(d.name, id) === null) {
      throw new Error(`--id ${id} is not a pod of StatefulSet ${d.name} (${d.name}-<ordinal>)`);
    }
    bootstrap = dnsPeers(d);
    derived = podUrl(d, id);
  } else if (f.peers !== undefined) {
    bootstrap = parsePeers(f.peers);
    if (bootstrap.size === 0) throw new Error('--peers: at least one replica');
  } else {
    throw new Error('--peers (or --peers-dns with --replicas) is required');
  }
  let advertise: string | undefined;
  if (f.advertise !== undefined) {
    advertise = f.advertise.replace(/\/+$/, '');
    if (!/^https?:\/\/[^/\s]+$/.test(advertise))
      throw new Error(`--advertise: expected http://host:port, got ${JSON.stringify(f.advertise)}`);
  }
  const member = bootstrap.has(id);
  const join = f.join === true || (f['join-auto'] === true && !member);
  if (!member && !join) {
    throw new Error(
      `--id ${id} is not one of the bootstrap peers (${[...bootstrap.keys()].join(', ')}): ` +
        'a replica outside them starts with --join (or --join auto)',
    );
  }
  const url = advertise ?? bootstrap.get(id) ?? derived;
  if (!url) throw new Error(`--id ${id} is not in --peers: give its URL with --advertise`);
  const peers = new Map(bootstrap);
  peers.set(id, url);
  return { id, peers, join, selfAdd: f['join-auto'] === true && !member, url, bootstrap };
}

/** `--join auto` / `--join=auto` become the boolean --join-auto; a bare --join stays. */
export function joinAutoArgs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--join=auto') out.push('--join-auto');
    else if (a === '--join' && argv[i + 1] === 'auto') {
      out.push('--join-auto');
      i++;
    } else if (a === '--') {
      out.push(...argv.slice(i));
      break;
    } else out.push(a);
  }
  return out;
}

interface Membership {
  conf: { voters: string[]; learners: string[] };
  term: number;
  lastIndex: number;
  snapshotIndex: number;
}

/**
 * --join auto for a replica outside the bootstrap peers: asks the group (the leader, found
 * through any peer) to add it as a learner, every `everyMs` until it is a member. Only a
 * replica without a Raft log asks: one that has a log but is not a member was removed,
 * and must be added back by hand (admin raft add) if that is wanted.
 */
export async function selfAdd(o: {
  id: string;
  url: string;
  peers: string[];
  auth: InternalAuth;
  status: () => Membership;
  log: Logger;
  signal: AbortSignal;
  everyMs?: number;
  timeoutMs?: number;
}): Promise<'added' | 'member' | 'has-log' | 'stopped'> {
  const isMember = (s: Membership) =>
    s.conf.voters.includes(o.id) || s.conf.learners.includes(o.id);
  const s0 = o.status();
  if (isMember(s0)) return 'member';
  if (s0.term > 0 || s0.lastIndex > 0 || s0.snapshotIndex > 0) {
    o.log.warn(
      { id: o.id },
      'not a member of the group but has a Raft log (removed earlier?): not asking to be ' +
        'added; kubestorage admin raft add ID URL adds it back, or start it on an empty data directory',
    );
    return 'has-log';
  }
  const everyMs = o.everyMs ?? 2_000;
  const timeoutMs = o.timeoutMs ?? 5_000;
  let lastError = '';
  while (!o.signal.aborted) {
    if (isMember(o.status())) return 'member';
    const err = await askToAdd(o.id, o.url, o.peers, o.auth, timeoutMs, o.signal);
    if (err === null) {
      o.log.info({ id: o.id, url: o.url }, 'added to the group as a learner');
      return 'added';
    }
    if (err !== lastError)
      o.log.info({ id: o.id, reason: err }, 'waiting to be added to the group');
    lastError = err;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, everyMs);
      o.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  return 'stopped';
}

/** One round: POST /raft/admin/add to each peer until one (or the leader it names) takes it. */
async function askToAdd(
  id: string,
  url: string,
  peers: string[],
  auth: InternalAuth,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<string | null> {
  const body = JSON.stringify({ id, url });
  const post = async (base: string) => {
    const path = '/raft/admin/add';
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth.signBody('POST', path, body) },
      body,
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    });
    const text = await res.text();
    let b: { ok?: boolean; error?: string; message?: string; leaderUrl?: string | null } = {};
    try {
      b = JSON.parse(text) as typeof b;
    } catch {}
    return { status: res.status, b };
  };
  const reasons: string[] = [];
  for (const peer of peers) {
    try {
      let a = await post(peer);
      if (a.status === 409 && a.b.error === 'NotLeader') {
        if (!a.b.leaderUrl) {
          reasons.push(`${peer}: no leader known`);
          continue;
        }
        a = await post(new URL(a.b.leaderUrl).origin);
      }
      if (a.status === 200 && a.b.ok) return null;
      reasons.push(`${peer}: ${a.b.error ?? `HTTP ${a.status}`} ${a.b.message ?? ''}`.trim());
      // The leader answered (a change in progress, or already a member): ask no one else now.
      if (a.status === 409) break;
    } catch (e) {
      reasons.push(`${peer}: ${(e as Error).message}`);
    }
  }
  return reasons.join('; ') || 'no peer to ask';
}

const STRING_FLAGS =
  'id peers peers-dns replicas advertise listen data ' +
  'tick-ms snapshot-every snapshot-bytes keep-bytes offline-after-ms rereplicate-after-ms restore';
const BOOLEAN_FLAGS = 'join join-auto id-from-hostname';

/** The topology a command line gives, on a host of this name (for checks of manifests). */
export function topologyOf(argv: string[], hostname: () => string = () => hostnameId()): Topology {
  const flags = parseFlags(joinAutoArgs(argv), `${STRING_FLAGS} config`, `${BOOLEAN_FLAGS} help`);
  return resolveTopology(flags, hostname);
}

/**
 * --restore: seeds the data directory of a new one-replica group with a backup. The backup
 * goes into the state machine (sm/, without the old group's Raft peers), and the Raft log
 * is started right after the backup's applied index with this replica as the only voter:
 * the state is then the group's starting snapshot, sent whole to replicas that join.
 * Null (nothing done) when the data directory already has a Raft log — a restart of the
 * restored replica; refused when it is not a fresh single-replica bootstrap.
 */
export async function restoreDirectory(o: {
  dataDir: string;
  file: string;
  topology: Pick<Topology, 'id' | 'join' | 'bootstrap'>;
}): Promise<number | null> {
  const t = o.topology;
  if (t.join || t.bootstrap.size !== 1 || !t.bootstrap.has(t.id)) {
    throw new Error(
      '--restore starts a new group of one replica: --peers (or --peers-dns with --replicas 1) ' +
        'naming only this replica, no --join; add the others afterwards (they join it)',
    );
  }
  const raftDir = path.join(o.dataDir, 'raft');
  const smDir = path.join(o.dataDir, 'sm');
  const exists = (p: string) =>
    fs.stat(p).then(
      () => true,
      () => false,
    );
  if (await exists(raftDir)) return null;
  if (await exists(smDir)) {
    throw new Error(
      `--restore: ${o.dataDir} has a state machine but no Raft log (a restore cut short?): ` +
        'remove the data directory and restore again',
    );
  }
  await fs.mkdir(o.dataDir, { recursive: true });
  // The state machine first: a crash before the log exists leaves sm/ alone, which the next
  // start refuses (above) rather than bootstrapping an empty log under it.
  const applied = await restoreBackup(smDir, createReadStream(o.file));
  const storage = await RaftStorage.open(raftDir);
  try {
    await storage.resetToSnapshot({
      index: applied,
      term: 0,
      conf: { voters: [t.id], learners: [] },
    });
  } finally {
    await storage.close();
  }
  return applied;
}

export async function main(argv: string[]): Promise<void> {
  const parsed = parseCommand(joinAutoArgs(argv), HELP, STRING_FLAGS, BOOLEAN_FLAGS);
  if (!parsed) return;
  const { flags: values, cfg } = parsed;
  let t: Topology;
  try {
    t = resolveTopology(values);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n\n${HELP}`);
  }
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
  const log = createLogger(`directory-${t.id}`, cfg.logLevel);
  const data = values.data ?? `./data/directory/${t.id}`;
  const { host, port } = parseListen(values.listen ?? d.listen);
  if (!cfg.clusterSecret) {
    throw new Error('the replicas need one shared secret: set KUBESTORAGE_CLUSTER_SECRET');
  }
  const auth = new InternalAuth(cfg.clusterSecret);
  if (values.restore !== undefined) {
    const r = await restoreDirectory({ dataDir: data, file: values.restore, topology: t });
    if (r === null) {
      log.warn({ data }, '--restore ignored: the data directory has a Raft log already');
    } else {
      log.info({ from: values.restore, appliedIndex: r }, 'directory state restored from backup');
    }
  }
  const { dir, addr } = await DirectoryServer.start({
    id: t.id,
    dataDir: data,
    peers: t.peers,
    join: t.join,
    auth,
    logger: log,
    listenHost: host,
    listenPort: port,
    tickMs: d.tickMs,
    snapshotEvery: d.snapshotEvery,
    snapshotBytes: d.snapshotBytes,
    keepBytes: d.keepBytes,
    waitMs: d.leaderWaitMs,
    cache: cfg.cache,
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
    {
      id: t.id,
      url: `http://${addr.address}:${addr.port}`,
      data,
      peers: [...t.bootstrap.keys()],
      join: t.join,
    },
    'directory replica listening',
  );
  const stop = new AbortController();
  if (t.selfAdd) {
    const others = [...t.bootstrap].filter(([id]) => id !== t.id).map(([, url]) => url);
    selfAdd({
      id: t.id,
      url: t.url,
      peers: others,
      auth,
      status: () => dir.host.status(),
      log,
      signal: stop.signal,
    }).catch((e: unknown) => log.error({ err: e }, 'asking to join the group failed'));
  }
  // Kubernetes API integration (issue 13): only with KUBESTORAGE_KUBE=1, never required.
  const kube = await startKubeIntegration({ dir, logger: log });
  onShutdown(log, async () => {
    stop.abort();
    await kube.stop();
    return dir.close();
  });
}
