// The cluster side of the cache benchmarks (issue 14, cache/README.md): the directory
// leader's hot table polled while a load runs (when the first extra replica, the first
// store-level and the first gateway-level object appeared), the counters of every level
// (gateways' /_ks/metrics, stores' /cache) turned into "which level served how many reads",
// and the CPU time of every process of a cluster (/proc/<pid>/stat).
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterFile } from '../../cli/cluster.ts';
import { AUTH_HEADER, InternalAuth } from '../../common/internal-auth.ts';
import type { ExtraReplicaRecord, HotLevel, HotObjectRecord } from '../../directory/model/hot.ts';
import { cpuSecondsOf } from '../lib/proc.ts';
import { findLeader } from './faults/cluster.ts';

/** What GET /cluster/cache of the directory leader answers (the parts used here). */
export interface HotTableAnswer {
  objects: Pick<HotObjectRecord, 'bucket' | 'key' | 'level'>[];
  extra: Pick<ExtraReplicaRecord, 'volumeId' | 'needleId' | 'stores'>[];
  stats?: unknown;
}

/** One poll of the hot table: objects per level and extra copies, `t` s after the load began. */
export interface HotSample {
  t: number;
  levels: Record<HotLevel, number>;
  /** Needles with at least one extra copy, and the copies in all. */
  extraNeedles: number;
  extraCopies: number;
}

/** When each thing first happened, seconds since the load began; null = not seen. */
export interface CacheMarkers {
  firstExtraReplicaS: number | null;
  firstStoreLevelS: number | null;
  firstGatewayLevelS: number | null;
}

export const emptyLevels = (): Record<HotLevel, number> => ({
  replicas: 0,
  store: 0,
  gateway: 0,
  cooling: 0,
});

/** Counts per level and extra copies of one answer. */
export function summarizeHotTable(a: HotTableAnswer, t: number): HotSample {
  const levels = emptyLevels();
  for (const o of a.objects ?? []) if (o.level in levels) levels[o.level]++;
  let extraNeedles = 0;
  let extraCopies = 0;
  for (const x of a.extra ?? []) {
    if ((x.stores?.length ?? 0) > 0) extraNeedles++;
    extraCopies += x.stores?.length ?? 0;
  }
  return { t, levels, extraNeedles, extraCopies };
}

/** The first time each marker's condition held in `samples` (in time order). */
export function markersOf(samples: HotSample[]): CacheMarkers {
  const first = (p: (s: HotSample) => boolean) => samples.find(p)?.t ?? null;
  return {
    firstExtraReplicaS: first((s) => s.extraCopies > 0),
    // Gateway level passes through store level; a poll may miss the store step.
    firstStoreLevelS: first((s) => s.levels.store + s.levels.gateway + s.levels.cooling > 0),
    firstGatewayLevelS: first((s) => s.levels.gateway > 0),
  };
}

/** The directory, signed with the cluster secret; the leader found once and again on failure. */
export class DirectoryProbe {
  private readonly auth: InternalAuth;
  private leader: string | undefined;

  constructor(private readonly cluster: ClusterFile) {
    this.auth = new InternalAuth(cluster.secret);
  }

  private async get(url: string, path: string): Promise<Response> {
    return fetch(`${url}${path}`, {
      headers: { [AUTH_HEADER]: this.auth.sign('GET', path) },
      signal: AbortSignal.timeout(2_000),
    });
  }

  /** The leader's hot table; throws when it cannot be had (leader change, not built yet). */
  async hotTable(): Promise<HotTableAnswer> {
    for (let attempt = 0; attempt < 2; attempt++) {
      this.leader ??= (await findLeader(this.cluster)).url;
      const r = await this.get(this.leader, '/cluster/cache');
      const body = await r.text();
      if (r.status === 200) return JSON.parse(body) as HotTableAnswer;
      this.leader = undefined;
      if (attempt === 1)
        throw new Error(`GET /cluster/cache: HTTP ${r.status} ${body.slice(0, 160)}`);
    }
    throw new Error('unreachable');
  }
}

/**
 * Polls the hot table every `everyMs` until stop() (at most `maxPolls` polls), keeping one
 * sample per poll; `t0` is the performance.now() the load began at.
 */
export class HotTablePoller {
  readonly samples: HotSample[] = [];
  errors = 0;
  firstError: string | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly probe: DirectoryProbe,
    private readonly t0: number,
    private readonly everyMs = 500,
    private readonly maxPolls = 10_000,
  ) {}

  start(): void {
    this.loop = (async () => {
      for (let i = 0; i < this.maxPolls && !this.stopped; i++) {
        const started = performance.now();
        try {
          const a = await this.probe.hotTable();
          this.samples.push(summarizeHotTable(a, (performance.now() - this.t0) / 1000));
        } catch (e) {
          this.errors++;
          this.firstError ??= (e as Error).message;
        }
        const wait = this.everyMs - (performance.now() - started);
        if (wait > 0 && !this.stopped) await sleep(wait);
      }
    })();
  }

  async stop(): Promise<{
    samples: HotSample[];
    markers: CacheMarkers;
    errors: number;
    firstError?: string;
  }> {
    this.stopped = true;
    await this.loop;
    return {
      samples: this.samples,
      markers: markersOf(this.samples),
      errors: this.errors,
      firstError: this.firstError,
    };
  }
}

/**
 * Sums of Prometheus counters by metric name and `level` label: "name|level" → value
 * (`name|` without the label). Comments and malformed lines are skipped.
 */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    const level = /(?:^|,)\s*level="([^"]*)"/.exec(m[2] ?? '')?.[1] ?? '';
    const k = `${m[1]}|${level}`;
    out.set(k, (out.get(k) ?? 0) + v);
  }
  return out;
}

/** The hits (or misses) of one level in parsed metrics: any *cache*_hits[_total] counter. */
export function levelCount(m: Map<string, number>, level: string, what: 'hits' | 'misses'): number {
  const re = new RegExp(`cache.*_${what}(_total)?$`);
  let n = 0;
  for (const [k, v] of m) {
    const [name, l] = k.split('|');
    if (l === level && re.test(name!)) n += v;
  }
  return n;
}

/** The cache counters of a whole cluster at one moment. */
export interface LevelCounters {
  /** Gateway L1 (bytes of gateway-level objects), summed over gateways. */
  gatewayHits: number;
  gatewayMisses: number;
  /** Gateway record cache (metadata, not bytes): informative only. */
  recordHits: number;
  /** Redis (L2) as the gateways count it. */
  redisHits: number;
  redisMisses: number;
  /** Store-level caches, summed over stores. */
  storeHits: number;
  storeMisses: number;
  /** Sources that did not answer (counted as 0). */
  errors: string[];
}

/** Reads every gateway's /_ks/metrics (metrics token) and every store's /cache (signed). */
export async function readLevelCounters(c: ClusterFile): Promise<LevelCounters> {
  const out: LevelCounters = {
    gatewayHits: 0,
    gatewayMisses: 0,
    recordHits: 0,
    redisHits: 0,
    redisMisses: 0,
    storeHits: 0,
    storeMisses: 0,
    errors: [],
  };
  const auth = new InternalAuth(c.secret);
  await Promise.all([
    ...c.gateways.map(async (g) => {
      try {
        const r = await fetch(`${g}/_ks/metrics`, {
          headers: { authorization: `Bearer ${auth.metricsToken}` },
          signal: AbortSignal.timeout(5_000),
        });
        const text = await r.text();
        if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
        const m = parsePrometheus(text);
        out.gatewayHits += levelCount(m, 'gateway', 'hits');
        out.gatewayMisses += levelCount(m, 'gateway', 'misses');
        out.recordHits += levelCount(m, 'gateway-records', 'hits');
        out.redisHits += levelCount(m, 'redis', 'hits');
        out.redisMisses += levelCount(m, 'redis', 'misses');
      } catch (e) {
        out.errors.push(`${g}/_ks/metrics: ${(e as Error).message}`);
      }
    }),
    ...c.stores.map(async (s) => {
      try {
        const r = await fetch(`${s.url}/cache`, {
          headers: { [AUTH_HEADER]: auth.sign('GET', '/cache') },
          signal: AbortSignal.timeout(5_000),
        });
        const text = await r.text();
        if (r.status !== 200) throw new Error(`HTTP ${r.status} ${text.slice(0, 120)}`);
        const j = JSON.parse(text) as { cache: { hits?: number; misses?: number } | null };
        out.storeHits += j.cache?.hits ?? 0;
        out.storeMisses += j.cache?.misses ?? 0;
      } catch (e) {
        out.errors.push(`${s.id} /cache: ${(e as Error).message}`);
      }
    }),
  ]);
  return out;
}

/** after − before, field by field (errors of both). */
export function counterDelta(before: LevelCounters, after: LevelCounters): LevelCounters {
  const d = { ...after, errors: [...before.errors, ...after.errors] };
  for (const k of Object.keys(after) as (keyof LevelCounters)[]) {
    if (k !== 'errors') d[k] = after[k] - before[k];
  }
  return d;
}

/**
 * Which level served how many of `reads` successful reads: gateway memory, Redis, a
 * store's cache, and the stores' disks (the rest). The levels are counted where they are
 * and can overcount (a hedged read asks two stores; the directory's copy for an extra
 * replica reads a store): what exceeds the reads is reported as `overcount`, and the
 * levels are capped in that order so that they always sum to `reads`.
 */
export interface Served {
  reads: number;
  gateway: number;
  redis: number;
  storeCache: number;
  storeDisk: number;
  overcount: number;
  /** The raw counter deltas the split comes from. */
  counters: LevelCounters;
}

export function servedBy(reads: number, d: LevelCounters): Served {
  let left = reads;
  const take = (n: number) => {
    const t = Math.max(0, Math.min(left, n));
    left -= t;
    return t;
  };
  const gateway = take(d.gatewayHits);
  const redis = take(d.redisHits);
  const storeCache = take(d.storeHits);
  const overcount = Math.max(0, d.gatewayHits + d.redisHits + d.storeHits - reads);
  return { reads, gateway, redis, storeCache, storeDisk: left, overcount, counters: d };
}

/** Every PID of a cluster's processes (directories, stores, gateways, redis). */
export function clusterPids(c: ClusterFile): number[] {
  return [
    ...c.directories.map((d) => d.pid),
    ...c.stores.map((s) => s.pid),
    ...c.gatewayPids,
    ...(c.redis?.pid ? [c.redis.pid] : []),
  ].filter((p) => p > 0);
}

/** CPU seconds so far by kind of process (a process gone counts 0). */
export interface CpuByRole {
  directories: number;
  stores: number;
  gateways: number;
  redis: number;
}

export function clusterCpu(c: ClusterFile): CpuByRole {
  const sum = (pids: number[]) => pids.reduce((s, pid) => s + (cpuSecondsOf(pid) ?? 0), 0);
  return {
    directories: sum(c.directories.map((d) => d.pid)),
    stores: sum(c.stores.map((s) => s.pid)),
    gateways: sum(c.gatewayPids),
    redis: sum(c.redis?.pid ? [c.redis.pid] : []),
  };
}

/** ms of CPU per request by kind of process between two readings. */
export function cpuMsPerRequest(before: CpuByRole, after: CpuByRole, requests: number): CpuByRole {
  const per = (k: keyof CpuByRole) =>
    requests > 0 ? (1000 * (after[k] - before[k])) / requests : 0;
  return {
    directories: per('directories'),
    stores: per('stores'),
    gateways: per('gateways'),
    redis: per('redis'),
  };
}

/** user+sys CPU seconds of all of them so far (a process gone counts 0). */
export function clusterCpuSeconds(c: ClusterFile): number {
  const r = clusterCpu(c);
  return r.directories + r.stores + r.gateways + r.redis;
}

export function describeRoles(r: CpuByRole): string {
  return `directories ${r.directories.toFixed(3)}, stores ${r.stores.toFixed(3)}, gateways ${r.gateways.toFixed(3)}, redis ${r.redis.toFixed(3)}`;
}
