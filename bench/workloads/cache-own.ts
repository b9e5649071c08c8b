// Local clusters of the cache benchmarks: `cluster up` into a temp dir with the cache
// flags (and any other cache setting through KUBESTORAGE_CACHE_* in its environment), and
// always taken down: down() in a finally, on SIGINT/SIGTERM, and every PID `up` reported
// SIGKILLed after, so a half-started cluster is not left behind either.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ClusterFile, down, up } from '../../cli/cluster.ts';
import { freePortBase, sigkill } from '../lib/proc.ts';
import { progress } from '../lib/stats.ts';

export interface ClusterSpec {
  /** Shown in progress lines and used in the temp dir's name. */
  name: string;
  /** Data dir (default a new temp dir, removed on stop unless `keep`). */
  dir?: string;
  keep?: boolean;
  portBase?: number;
  directories: number;
  stores: number;
  gateways: number;
  cache: boolean;
  /** 'auto' starts a redis-server; a URL uses one; undefined = no L2. */
  redis?: string;
  periodMs: number;
  replicateThreshold: number;
  cacheThreshold: number;
  /** Further config of every process, e.g. { KUBESTORAGE_CACHE_REPORT_MS: '250' }. */
  env?: Record<string, string>;
}

/** What both cache benches' options say about their clusters. */
export interface ClusterOptions {
  data?: string;
  keep?: boolean;
  portBase?: number;
  directories: number;
  stores: number;
  gateways: number;
  redis?: string;
  periodMs: number;
  replicateThreshold: number;
  cacheThreshold: number;
  reportMs?: number;
}

/** The cluster `<bench>-on` or `<bench>-off` of a run, as its options say. */
export function clusterSpec(bench: string, o: ClusterOptions, cache: 'on' | 'off'): ClusterSpec {
  return {
    name: `${bench}-${cache}`,
    dir: o.data ? `${o.data}/${bench}-${cache}` : undefined,
    keep: o.keep,
    portBase: o.portBase,
    directories: o.directories,
    stores: o.stores,
    gateways: o.gateways,
    cache: cache === 'on',
    redis: cache === 'on' && o.redis ? o.redis : undefined,
    periodMs: o.periodMs,
    replicateThreshold: o.replicateThreshold,
    cacheThreshold: o.cacheThreshold,
    env: o.reportMs ? { KUBESTORAGE_CACHE_REPORT_MS: String(o.reportMs) } : {},
  };
}

export interface OwnCacheCluster {
  name: string;
  cluster: ClusterFile;
  dir: string;
  argv: string[];
  stop(): Promise<void>;
}

const live = new Set<{ stop(): Promise<void> }>();

/** `cluster up` with the spec's flags; the returned cluster is stopped by stopAllClusters too. */
export async function startCacheCluster(s: ClusterSpec): Promise<OwnCacheCluster> {
  const dir = s.dir
    ? path.resolve(s.dir)
    : fs.mkdtempSync(path.join(os.tmpdir(), `ks-cache-${s.name}-`));
  fs.mkdirSync(dir, { recursive: true });
  const removeDir = () => {
    if (!s.dir && !s.keep) fs.rmSync(dir, { recursive: true, force: true });
  };
  const portBase = s.portBase ?? (await freePortBase());
  const argv = [
    ...['--data', dir, '--port-base', String(portBase)],
    ...['--directories', String(s.directories), '--stores', String(s.stores)],
    ...['--gateways', String(s.gateways), '--cache', s.cache ? 'on' : 'off'],
    ...['--cache-period-ms', String(s.periodMs)],
    ...['--replicate-threshold', String(s.replicateThreshold)],
    ...['--cache-threshold', String(s.cacheThreshold)],
    ...(s.redis ? ['--redis', s.redis] : []),
  ];
  const pids = new Set<number>();
  let upDone = false;
  const killStarted = () => {
    for (const p of pids) sigkill(p);
  };
  // Until `up` returns, a signal can only SIGKILL what it reported.
  const pending = { stop: async () => killStarted() };
  live.add(pending);
  // `up` gives every process its environment from process.env: set the extra settings there
  // for the duration of the call only.
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(s.env ?? {})) {
    saved.set(k, process.env[k]);
    process.env[k] = v;
  }
  let cluster: ClusterFile;
  try {
    cluster = await up(argv, (pid) => pids.add(pid));
    upDone = true;
  } catch (e) {
    killStarted();
    removeDir();
    throw e;
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    live.delete(pending);
  }
  let stopped = false;
  const own: OwnCacheCluster = {
    name: s.name,
    cluster,
    dir,
    argv,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      live.delete(own);
      try {
        if (upDone) await down(['--data', dir]);
      } catch (e) {
        progress(`${s.name}: cluster down: ${(e as Error).message}`);
      } finally {
        // down() signals the PIDs of cluster.json; anything `up` started goes too.
        killStarted();
        removeDir();
      }
    },
  };
  live.add(own);
  progress(
    `${s.name}: cluster up in ${dir} (port base ${portBase}, cache ${s.cache ? 'on' : 'off'}` +
      `${cluster.redis ? `, redis ${cluster.redis.url}` : ''}; logs in ${dir}/logs)`,
  );
  return own;
}

/** Stops every cluster started here and not yet stopped. */
export async function stopAllClusters(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop()));
}

/**
 * Runs `fn` with SIGINT/SIGTERM stopping every cluster (then exit 130) and stops them all
 * when it ends, however it ends.
 */
export async function withClusterCleanup<T>(fn: () => Promise<T>): Promise<T> {
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    progress(`${sig}: stopping the cluster(s)`);
    void stopAllClusters().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn();
  } finally {
    await stopAllClusters();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
