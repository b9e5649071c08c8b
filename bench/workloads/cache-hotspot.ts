// The paper's hot-spot experiment on a local cluster (issue 14, must-show 1): a few hot
// objects, each read many times at high concurrency over every gateway, in rounds (every
// object once per round, seeded order), so that read k of the run is the (k / hot)-th read
// of its object. Per time window and per read-ordinal bucket: p50/p99/mean latency; while
// it runs the directory leader's hot table is polled for when extra replicas, store-level
// and gateway-level caching started; at the end the levels' counters say who served what.
import { performance } from 'node:perf_hooks';
import type { ClusterFile } from '../../cli/cluster.ts';
import { Prng } from '../lib/prng.ts';
import { progress } from '../lib/stats.ts';
import { type LatencySummary, latencyWindows, summarize, type WindowStat } from '../lib/summary.ts';
import {
  type CacheMarkers,
  type CpuByRole,
  clusterCpu,
  clusterCpuSeconds,
  counterDelta,
  cpuMsPerRequest,
  DirectoryProbe,
  type HotSample,
  HotTablePoller,
  readLevelCounters,
  type Served,
  servedBy,
} from './cache-events.ts';
import { closeTargets, gatewayTargets, getFrom, type LoadRun, runLoad } from './cache-load.ts';
import { clusterSpec, startCacheCluster } from './cache-own.ts';
import { objectKey, Payloads } from './common.ts';

export interface HotspotOptions {
  directories: number;
  stores: number;
  gateways: number;
  /** 'auto' | redis URL | '' (none). */
  redis: string;
  hot: number;
  size: number;
  readsPerObject: number;
  concurrency: number;
  periodMs: number;
  replicateThreshold: number;
  cacheThreshold: number;
  /** cache.reportMs of every process; undefined = the config's. */
  reportMs?: number;
  windowS: number;
  /** Rounds (reads per object) per ordinal bucket; 0 = about 30 buckets. */
  ordinalBucket: number;
  /**
   * Before the measured reads: `warmupObjects` other objects of the same size read for at
   * most `warmupS` seconds (and at most half the replicate threshold each, so that none of
   * them gets hot), so connections, JIT and page cache are warm and the first window shows
   * the hot objects uncached rather than a cold start. 0 = no warm-up.
   */
  warmupS: number;
  warmupObjects: number;
  pollMs: number;
  capS: number;
  /** Which runs: the cache on, off, or both (on first). */
  runs: ('on' | 'off')[];
  /** The p99 of the first window must be ≥ factor × that of the last (cache on). */
  factor: number;
  seed: number;
  bucket: string;
  /** Parent of the clusters' data dirs (default temp dirs). */
  data?: string;
  keep: boolean;
  portBase?: number;
}

export const HOTSPOT_DEFAULTS: HotspotOptions = {
  directories: 3,
  stores: 4,
  gateways: 2,
  redis: 'auto',
  hot: 100,
  size: 40 * 1024,
  readsPerObject: 300,
  concurrency: 100,
  periodMs: 20_000,
  // The paper's 500 and 1 000 of 10 000 reads per object, scaled to 300 of them.
  replicateThreshold: 15,
  cacheThreshold: 30,
  windowS: 1,
  ordinalBucket: 0,
  warmupS: 5,
  warmupObjects: 200,
  pollMs: 500,
  capS: 300,
  runs: ['on', 'off'],
  factor: 3,
  seed: 42,
  bucket: 'hotspot',
  keep: false,
};

/**
 * The thresholds at the paper's share of the reads per object: an object is replicated
 * after 5 % of its reads (500 of 10 000) and cached after 10 % (1 000), so a run of any
 * length walks every level. (500/1 000 as such cannot be reached by 300 reads per object,
 * nor by this machine's few hundred reads/s of 40 KiB within a 20 s period.)
 */
export function paperThresholds(readsPerObject: number): { replicate: number; cache: number } {
  return {
    replicate: Math.max(1, Math.round(readsPerObject * 0.05)),
    cache: Math.max(1, Math.round(readsPerObject * 0.1)),
  };
}

export interface OrdinalBucket {
  /** Reads number `from`..`to` of each object (1-based, inclusive). */
  from: number;
  to: number;
  count: number;
  mean: number;
  p50: number;
  p99: number;
}

/** A window's p99 as the first/last comparison uses it. */
export interface WindowPick {
  t: number;
  count: number;
  p99: number;
  p50: number;
  mean: number;
}

export interface HotspotRun {
  cache: 'on' | 'off';
  cluster: { dir: string; argv: string[]; gateways: string[]; redis?: string };
  preload: { objects: number; seconds: number; errors: number };
  /** The warm-up reads (of other objects), not in any figure below. */
  warmup: { objects: number; reads: number; errors: number; seconds: number; p99: number } | null;
  /** Reads sent = ok + errors; `reads` is what the plan asked for. */
  reads: {
    planned: number;
    sent: number;
    ok: number;
    errors: number;
    firstError?: string;
    seconds: number;
    reqPerSec: number;
    capped: boolean;
    generatorCpuPercent: number;
  };
  latencyMs: LatencySummary;
  windows: WindowStat[];
  ordinals: OrdinalBucket[];
  hotTable: { samples: HotSample[]; markers: CacheMarkers; errors: number; firstError?: string };
  /** The read ordinal (1-based) being sent when each marker was first seen. */
  markerOrdinals: {
    firstExtraReplica: number | null;
    firstStoreLevel: number | null;
    firstGatewayLevel: number | null;
  };
  served: Served;
  serverCpuSeconds: number;
  serverCpuMsPerRead: number;
  /** The same by kind of process. */
  serverCpuMsPerReadByRole: CpuByRole;
  first: WindowPick | null;
  last: WindowPick | null;
  /** When the last read was sent (s): windows after it (the drain) are not compared. */
  lastSentS: number;
  /** first.p99 / last.p99. */
  p99Ratio: number | null;
}

/** Request i → object index: rounds of a seeded permutation of 0..hot-1. */
export function hotspotSequence(hot: number, readsPerObject: number, seed: number): Uint32Array {
  const rng = new Prng(seed ^ 0x4075);
  const seq = new Uint32Array(hot * readsPerObject);
  const perm = new Uint32Array(hot);
  for (let r = 0; r < readsPerObject; r++) {
    for (let j = 0; j < hot; j++) perm[j] = j;
    for (let j = hot - 1; j > 0; j--) {
      const k = rng.below(j + 1);
      const t = perm[j]!;
      perm[j] = perm[k]!;
      perm[k] = t;
    }
    seq.set(perm, r * hot);
  }
  return seq;
}

/** Latency per ordinal bucket of `rounds` rounds (ok reads only). */
export function ordinalBuckets(run: LoadRun, hot: number, rounds: number): OrdinalBucket[] {
  const per = Math.max(1, rounds);
  const groups = new Map<number, number[]>();
  for (let i = 0; i < run.sent; i++) {
    if (!run.ok1[i]) continue;
    const b = Math.floor(Math.floor(i / hot) / per);
    let g = groups.get(b);
    if (!g) groups.set(b, (g = []));
    g.push(run.latencyMs[i]!);
  }
  return [...groups.keys()]
    .sort((a, b) => a - b)
    .map((b) => {
      const g = groups.get(b)!;
      const s = summarize(Float64Array.from(g), g.length);
      return {
        from: b * per + 1,
        to: (b + 1) * per,
        count: s.count,
        mean: s.mean,
        p50: s.p50,
        p99: s.p99,
      };
    });
}

/** Windows of ok reads by completion time. */
export function okWindows(run: LoadRun, windowS: number): WindowStat[] {
  const lat: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < run.sent; i++) {
    if (!run.ok1[i]) continue;
    lat.push(run.latencyMs[i]!);
    end.push(run.endMs[i]!);
  }
  return latencyWindows(Float64Array.from(lat), Float64Array.from(end), lat.length, windowS);
}

/**
 * The first and last windows fit to compare: windows that ended before the last read was
 * sent (`fullUntilS`: until then every worker had a read in flight; after it the loop
 * drains, with ever fewer reads queued and so lower latency, which would flatter the
 * last window), and with at least max(10, a quarter of the median window's) reads. When
 * no window ended before `fullUntilS` (a run shorter than two windows), all count.
 */
export function firstAndLast(
  windows: WindowStat[],
  windowS = 1,
  fullUntilS = Number.POSITIVE_INFINITY,
): {
  first: WindowPick | null;
  last: WindowPick | null;
} {
  if (windows.length === 0) return { first: null, last: null };
  const counts = windows.map((w) => w.count).sort((a, b) => a - b);
  const min = Math.max(10, counts[counts.length >> 1]! / 4);
  const loaded = windows.filter((w) => w.t + windowS <= fullUntilS + 1e-9);
  const full = (loaded.length > 0 ? loaded : windows).filter((w) => w.count >= min);
  const pick = (w: WindowStat | undefined): WindowPick | null =>
    w ? { t: w.t, count: w.count, p99: w.p99, p50: w.p50, mean: w.mean } : null;
  return { first: pick(full[0]), last: pick(full[full.length - 1]) };
}

/** The (1-based) ordinal of the first read sent at or after `t` s, or null. */
function ordinalAt(run: LoadRun, hot: number, t: number | null): number | null {
  if (t === null) return null;
  const ms = t * 1000;
  for (let i = 0; i < run.sent; i++) if (run.startMs[i]! >= ms) return Math.floor(i / hot) + 1;
  return null;
}

/** Preloads the hot objects into `c` and reads them; the cluster is the caller's. */
export async function runHotspotOn(
  c: ClusterFile,
  o: HotspotOptions,
  cache: 'on' | 'off',
  meta: { dir: string; argv: string[] },
  log: (line: string) => void = progress,
): Promise<HotspotRun> {
  const targets = gatewayTargets(c, Math.max(o.concurrency, 16));
  try {
    await targets[0]!.createBucket(o.bucket);
    const payloads = new Payloads(o.size, o.seed);
    const key = (j: number) => objectKey(o.bucket, o.size, j);
    // Hot objects 0..hot-1; the warm-up's cold ones after them.
    const cold = o.warmupS > 0 ? o.warmupObjects : 0;
    const pre = await runLoad({
      label: `${cache}: preload`,
      count: o.hot + cold,
      concurrency: Math.min(32, o.hot + cold),
      capSeconds: 120,
      quiet: true,
      op: async (i) => {
        await targets[i % targets.length]!.request('PUT', key(i), payloads.get(i));
      },
    });
    if (pre.errors > 0) throw new Error(`preload: ${pre.errors} errors (${pre.firstError})`);
    log(
      `${cache}: preloaded ${o.hot} hot + ${cold} warm-up objects × ${o.size} B in ${pre.seconds.toFixed(1)} s`,
    );
    let warmup: HotspotRun['warmup'] = null;
    if (cold > 0) {
      const perObject = Math.max(1, Math.floor(o.replicateThreshold / 2));
      const w = await runLoad({
        label: `${cache}: warm-up`,
        count: cold * perObject,
        concurrency: o.concurrency,
        capSeconds: o.warmupS,
        quiet: true,
        op: (i) => getFrom(targets, i, key(o.hot + (i % cold)), o.size),
      });
      const lat = summarize(w.latencyMs.subarray(0, w.sent), w.sent);
      warmup = { objects: cold, reads: w.sent, errors: w.errors, seconds: w.seconds, p99: lat.p99 };
      log(
        `${cache}: warm-up ${w.sent} reads of ${cold} other objects in ${w.seconds.toFixed(1)} s, p99 ${lat.p99.toFixed(1)} ms`,
      );
    }

    const seq = hotspotSequence(o.hot, o.readsPerObject, o.seed);
    const probe = new DirectoryProbe(c);
    const before = await readLevelCounters(c);
    const cpu0 = clusterCpuSeconds(c);
    const roles0 = clusterCpu(c);
    const t0 = performance.now();
    const poller = new HotTablePoller(
      probe,
      t0,
      o.pollMs,
      Math.ceil((o.capS * 1000) / o.pollMs) + 100,
    );
    poller.start();
    let run: LoadRun;
    let table: Awaited<ReturnType<HotTablePoller['stop']>>;
    try {
      run = await runLoad({
        label: `hotspot cache ${cache}`,
        count: seq.length,
        concurrency: o.concurrency,
        capSeconds: o.capS,
        t0,
        op: (i) => getFrom(targets, i, key(seq[i]!), o.size),
      });
      // One more poll after the load, so a marker at the very end is not missed.
      await new Promise((r) => setTimeout(r, Math.min(o.pollMs, 1_000)));
    } finally {
      table = await poller.stop();
    }
    const cpu = clusterCpuSeconds(c) - cpu0;
    const cpuByRole = cpuMsPerRequest(roles0, clusterCpu(c), run.sent);
    // The gateways' counters lag nothing (in-process), stores' neither: read them now.
    const after = await readLevelCounters(c);
    const served = servedBy(run.ok, counterDelta(before, after));
    const windows = okWindows(run, o.windowS);
    let lastSentMs = 0;
    for (let i = 0; i < run.sent; i++) lastSentMs = Math.max(lastSentMs, run.startMs[i]!);
    const { first, last } = firstAndLast(windows, o.windowS, lastSentMs / 1000);
    const per =
      o.ordinalBucket > 0 ? o.ordinalBucket : Math.max(1, Math.round(o.readsPerObject / 30));
    const okLat: number[] = [];
    for (let i = 0; i < run.sent; i++) if (run.ok1[i]) okLat.push(run.latencyMs[i]!);
    const m = table.markers;
    return {
      cache,
      cluster: { dir: meta.dir, argv: meta.argv, gateways: c.gateways, redis: c.redis?.url },
      preload: { objects: o.hot + cold, seconds: pre.seconds, errors: pre.errors },
      warmup,
      reads: {
        planned: seq.length,
        sent: run.sent,
        ok: run.ok,
        errors: run.errors,
        firstError: run.firstError,
        seconds: run.seconds,
        reqPerSec: run.sent / run.seconds,
        capped: run.capped,
        generatorCpuPercent: (100 * run.generatorCpuSeconds) / run.seconds,
      },
      latencyMs: summarize(Float64Array.from(okLat), okLat.length),
      windows,
      ordinals: ordinalBuckets(run, o.hot, per),
      hotTable: table,
      markerOrdinals: {
        firstExtraReplica: ordinalAt(run, o.hot, m.firstExtraReplicaS),
        firstStoreLevel: ordinalAt(run, o.hot, m.firstStoreLevelS),
        firstGatewayLevel: ordinalAt(run, o.hot, m.firstGatewayLevelS),
      },
      served,
      serverCpuSeconds: cpu,
      serverCpuMsPerRead: run.sent > 0 ? (1000 * cpu) / run.sent : 0,
      serverCpuMsPerReadByRole: cpuByRole,
      first,
      last,
      lastSentS: lastSentMs / 1000,
      p99Ratio: first && last && last.p99 > 0 ? first.p99 / last.p99 : null,
    };
  } finally {
    await closeTargets(targets);
  }
}

export interface HotspotResult {
  settings: HotspotOptions;
  runs: HotspotRun[];
  summary: {
    on?: { firstP99: number | null; lastP99: number | null; ratio: number | null; pass: boolean };
    off?: { firstP99: number | null; lastP99: number | null; ratio: number | null };
    /** Last-window p99, cache off ÷ cache on. */
    lastP99OffOverOn?: number | null;
    /** Reads/s, cache on ÷ cache off. */
    throughputOnOverOff?: number | null;
  };
}

/** Each requested run on a fresh cluster of its own, one after the other (cache on first). */
export async function runHotspot(
  o: HotspotOptions,
  log: (line: string) => void = progress,
): Promise<HotspotResult> {
  const runs: HotspotRun[] = [];
  for (const cache of o.runs) {
    const own = await startCacheCluster(clusterSpec('hotspot', o, cache));
    try {
      runs.push(await runHotspotOn(own.cluster, o, cache, { dir: own.dir, argv: own.argv }, log));
    } finally {
      await own.stop();
    }
  }
  return { settings: o, runs, summary: summarizeHotspot(runs, o.factor) };
}

export function summarizeHotspot(runs: HotspotRun[], factor: number): HotspotResult['summary'] {
  const on = runs.find((r) => r.cache === 'on');
  const off = runs.find((r) => r.cache === 'off');
  const s: HotspotResult['summary'] = {};
  if (on) {
    s.on = {
      firstP99: on.first?.p99 ?? null,
      lastP99: on.last?.p99 ?? null,
      ratio: on.p99Ratio,
      pass: on.p99Ratio !== null && on.p99Ratio >= factor,
    };
  }
  if (off)
    s.off = {
      firstP99: off.first?.p99 ?? null,
      lastP99: off.last?.p99 ?? null,
      ratio: off.p99Ratio,
    };
  if (on && off) {
    s.lastP99OffOverOn = on.last && off.last && on.last.p99 > 0 ? off.last.p99 / on.last.p99 : null;
    s.throughputOnOverOff =
      off.reads.reqPerSec > 0 ? on.reads.reqPerSec / off.reads.reqPerSec : null;
  }
  return s;
}
