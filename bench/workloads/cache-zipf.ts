// Zipf reads with the cache on and off, in one sitting (issue 14, must-show 2): two local
// clusters started once on different ports — one with the cache on (and Redis), one with
// it off — each preloaded with the same objects, then read phases of the same seeded Zipf
// sequence alternating A B A B, so the VM's drifting speed hits both alike. Before the
// rounds the cache-on cluster gets a warm-up, so read counts pass the thresholds and the
// hot objects reach the caches (the cache-off one gets the same warm-up for its JIT and page
// cache). Each phase reports req/s, latency, and the CPU time of every process of the
// cluster per request (/proc/<pid>/stat), a measure less sensitive to the VM's speed.
import { performance } from 'node:perf_hooks';
import type { ClusterFile } from '../../cli/cluster.ts';
import { Prng } from '../lib/prng.ts';
import { fmtInt, progress } from '../lib/stats.ts';
import { type LatencySummary, summarize } from '../lib/summary.ts';
import type { Target } from '../lib/target.ts';
import { randomSubset, Zipf } from '../lib/zipf.ts';
import {
  type CpuByRole,
  clusterCpu,
  clusterCpuSeconds,
  counterDelta,
  cpuMsPerRequest,
  DirectoryProbe,
  describeRoles,
  type HotSample,
  readLevelCounters,
  type Served,
  servedBy,
  summarizeHotTable,
} from './cache-events.ts';
import { closeTargets, gatewayTargets, getFrom, runLoad } from './cache-load.ts';
import { clusterSpec, type OwnCacheCluster, startCacheCluster } from './cache-own.ts';
import { objectKey, Payloads } from './common.ts';

export interface ZipfCacheOptions {
  directories: number;
  stores: number;
  gateways: number;
  redis: string;
  objects: number;
  size: number;
  zipf: number;
  concurrency: number;
  rounds: number;
  /** Seconds of one read phase. */
  phaseS: number;
  /**
   * Seconds of the warm-up of the cache-on cluster, and of the cache-off one. The cache-on
   * warm-up then goes on in slices of `phaseS` while the hot table still grows by more than
   * `settledPct` % a slice, for at most `settleMaxS` seconds in all.
   */
  warmupS: number;
  settleMaxS: number;
  settledPct: number;
  warmupOffS: number;
  periodMs: number;
  replicateThreshold: number;
  cacheThreshold: number;
  reportMs?: number;
  preloadConcurrency: number;
  /** Cache on ÷ off req/s must be ≥ this. */
  factor: number;
  seed: number;
  bucket: string;
  data?: string;
  keep: boolean;
}

export const ZIPF_DEFAULTS: ZipfCacheOptions = {
  directories: 3,
  stores: 4,
  gateways: 2,
  redis: 'auto',
  objects: 10_000,
  size: 4 * 1024,
  zipf: 1.1,
  concurrency: 50,
  rounds: 3,
  phaseS: 20,
  // Then on until the hot set has settled: after 40-60 s the policy was still promoting
  // (and copying extra replicas) during the measured rounds (docs/measurements.md).
  warmupS: 60,
  settleMaxS: 300,
  settledPct: 3,
  warmupOffS: 10,
  // The config's period: counts add up over the whole run (periods are wall-clock aligned,
  // so one may still end mid-run: objects read less than the thresholds then step down).
  // Thresholds of 10 put ~86 % of the reads on objects at gateway level once settled;
  // lower ones cache more objects but cost the directory more (each promotion and extra
  // replica is a Raft write, and the hot table is resent whenever it changed).
  periodMs: 600_000,
  replicateThreshold: 10,
  cacheThreshold: 10,
  preloadConcurrency: 64,
  factor: 2,
  seed: 42,
  bucket: 'zipf',
  keep: false,
};

/** Most requests one phase may send (the arrays' length): far above this machine's rate. */
const MAX_RATE = 50_000;

export interface ZipfPhase {
  cache: 'on' | 'off';
  /** 0-based; -1 = warm-up. */
  round: number;
  sent: number;
  ok: number;
  errors: number;
  firstError?: string;
  seconds: number;
  reqPerSec: number;
  latencyMs: LatencySummary;
  generatorCpuPercent: number;
  /** user+sys of every process of the cluster during the phase. */
  serverCpuSeconds: number;
  serverCpuMsPerRequest: number;
  /** The same by kind of process. */
  serverCpuMsPerRequestByRole: CpuByRole;
  /** Cache on: which level served the phase's reads. */
  served?: Served;
  /** Cache on: the hot table right after the phase. */
  hotTable?: HotSample | null;
}

export interface ZipfCacheResult {
  settings: ZipfCacheOptions;
  clusters: Record<
    'on' | 'off',
    { dir: string; argv: string[]; gateways: string[]; redis?: string }
  >;
  preload: Record<'on' | 'off', { objects: number; seconds: number; errors: number }>;
  warmup: ZipfPhase[];
  phases: ZipfPhase[];
  summary: {
    /** Medians over the rounds. */
    onReqPerSec: number;
    offReqPerSec: number;
    ratio: number;
    pass: boolean;
    onCpuMsPerRequest: number;
    offCpuMsPerRequest: number;
    /** CPU per request, off ÷ on. */
    cpuRatio: number;
    /** Reads of the cache-on rounds per level, summed. */
    servedOn: Omit<Served, 'counters'>;
  };
}

/** The reads of one phase: object indexes from a seeded Zipf(s) over a fixed rank order. */
export class ZipfKeys {
  private readonly z: Zipf;
  private readonly byRank: Uint32Array;

  constructor(objects: number, s: number, seed: number) {
    this.z = new Zipf(objects, s);
    // Which object has which rank: one seeded permutation, the same for every phase.
    this.byRank = randomSubset(objects, objects, new Prng(seed ^ 0x21bf));
  }

  /** A generator of the phase's sequence: call i gives read i (calls come in order). */
  sequence(phaseSeed: number): () => number {
    const rng = new Prng(phaseSeed);
    return () => this.byRank[this.z.sample(rng)]!;
  }
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function preload(
  c: ClusterFile,
  targets: Target[],
  o: ZipfCacheOptions,
  name: string,
  log: (line: string) => void,
) {
  await targets[0]!.createBucket(o.bucket);
  const payloads = new Payloads(o.size, o.seed);
  const r = await runLoad({
    label: `${name}: preload`,
    count: o.objects,
    concurrency: o.preloadConcurrency,
    capSeconds: 600,
    op: async (i) => {
      await targets[i % targets.length]!.request(
        'PUT',
        objectKey(o.bucket, o.size, i),
        payloads.get(i),
      );
    },
  });
  if (r.errors > 0 || r.sent < o.objects) {
    throw new Error(`${name}: preload: ${r.errors} errors of ${r.sent} (${r.firstError})`);
  }
  log(
    `${name}: preloaded ${o.objects} × ${o.size} B in ${r.seconds.toFixed(1)} s (${fmtInt(o.objects / r.seconds)}/s) over ${c.gateways.length} gateways`,
  );
  return { objects: o.objects, seconds: r.seconds, errors: r.errors };
}

async function phase(
  own: OwnCacheCluster,
  targets: Target[],
  keys: ZipfKeys,
  o: ZipfCacheOptions,
  cache: 'on' | 'off',
  round: number,
  seconds: number,
  log: (line: string) => void,
): Promise<ZipfPhase> {
  const c = own.cluster;
  const next = keys.sequence((o.seed + 1_000 * (round + 2)) >>> 0);
  const before = cache === 'on' ? await readLevelCounters(c) : undefined;
  const cpu0 = clusterCpuSeconds(c);
  const roles0 = clusterCpu(c);
  const run = await runLoad({
    label: `${cache} ${round < 0 ? 'warm-up' : `round ${round + 1}`}`,
    count: Math.ceil(seconds * MAX_RATE),
    concurrency: o.concurrency,
    capSeconds: seconds,
    quiet: true,
    op: (i) => getFrom(targets, i, objectKey(o.bucket, o.size, next()), o.size),
  });
  const cpu = clusterCpuSeconds(c) - cpu0;
  const cpuByRole = cpuMsPerRequest(roles0, clusterCpu(c), run.sent);
  const ok: number[] = [];
  for (let i = 0; i < run.sent; i++) if (run.ok1[i]) ok.push(run.latencyMs[i]!);
  const p: ZipfPhase = {
    cache,
    round,
    sent: run.sent,
    ok: run.ok,
    errors: run.errors,
    firstError: run.firstError,
    seconds: run.seconds,
    reqPerSec: run.sent / run.seconds,
    latencyMs: summarize(Float64Array.from(ok), ok.length),
    generatorCpuPercent: (100 * run.generatorCpuSeconds) / run.seconds,
    serverCpuSeconds: cpu,
    serverCpuMsPerRequest: run.sent > 0 ? (1000 * cpu) / run.sent : 0,
    serverCpuMsPerRequestByRole: cpuByRole,
  };
  if (before) {
    p.served = servedBy(run.ok, counterDelta(before, await readLevelCounters(c)));
    p.hotTable = await new DirectoryProbe(c)
      .hotTable()
      .then((a) => summarizeHotTable(a, (performance.now() - run.t0) / 1000))
      .catch(() => null);
  }
  log(describeZipfPhase(p));
  return p;
}

export function describeZipfPhase(p: ZipfPhase): string {
  const l = p.latencyMs;
  const served = p.served
    ? `; served gateway ${p.served.gateway} redis ${p.served.redis} store cache ${p.served.storeCache} disk ${p.served.storeDisk}`
    : '';
  const hot = p.hotTable
    ? `; hot table gateway ${p.hotTable.levels.gateway} store ${p.hotTable.levels.store} replicas ${p.hotTable.levels.replicas} cooling ${p.hotTable.levels.cooling}, ${p.hotTable.extraCopies} extra copies`
    : '';
  return (
    `cache ${p.cache} ${p.round < 0 ? 'warm-up' : `round ${p.round + 1}`}: ${fmtInt(p.reqPerSec)} req/s ` +
    `(${p.sent} in ${p.seconds.toFixed(1)} s, ${p.errors} errors), mean ${l.mean.toFixed(2)} p50 ${l.p50.toFixed(2)} ` +
    `p99 ${l.p99.toFixed(2)} ms, server CPU ${p.serverCpuMsPerRequest.toFixed(3)} ms/req, ` +
    `(${describeRoles(p.serverCpuMsPerRequestByRole)}), generator CPU ${p.generatorCpuPercent.toFixed(0)}%${served}${hot}`
  );
}

/** Both clusters, preload, warm-up, then rounds of (on, off) phases; always stops them. */
export async function runZipfCache(
  o: ZipfCacheOptions,
  log: (line: string) => void = progress,
): Promise<ZipfCacheResult> {
  const owns: Partial<Record<'on' | 'off', OwnCacheCluster>> = {};
  const targets: Partial<Record<'on' | 'off', Target[]>> = {};
  try {
    for (const cache of ['on', 'off'] as const) {
      // Started one after the other: the second one's free ports are looked for with the
      // first one's already taken.
      owns[cache] = await startCacheCluster(clusterSpec('zipf', o, cache));
    }
    const on = owns.on!;
    const off = owns.off!;
    targets.on = gatewayTargets(on.cluster, Math.max(o.concurrency, o.preloadConcurrency));
    targets.off = gatewayTargets(off.cluster, Math.max(o.concurrency, o.preloadConcurrency));
    // Both at once: PUTs wait mostly on fsyncs and Raft commits, not on CPU.
    const [preOn, preOff] = await Promise.all([
      preload(on.cluster, targets.on, o, 'zipf-on', log),
      preload(off.cluster, targets.off, o, 'zipf-off', log),
    ]);
    const pre = { on: preOn, off: preOff };
    const keys = new ZipfKeys(o.objects, o.zipf, o.seed);
    const warmup: ZipfPhase[] = [];
    if (o.warmupS > 0) {
      warmup.push(await phase(on, targets.on, keys, o, 'on', -1, o.warmupS, log));
      let spent = o.warmupS;
      while (spent + o.phaseS <= o.settleMaxS) {
        const before = warmup.at(-1)?.hotTable;
        const p = await phase(on, targets.on, keys, o, 'on', -1, o.phaseS, log);
        warmup.push(p);
        spent += o.phaseS;
        if (before && p.hotTable && settled(before, p.hotTable, o.settledPct)) break;
      }
      log(`cache on: warm-up ended after ${spent} s`);
    }
    if (o.warmupOffS > 0) {
      warmup.push(await phase(off, targets.off, keys, o, 'off', -1, o.warmupOffS, log));
    }
    const gw = warmup.find((p) => p.cache === 'on')?.hotTable?.levels.gateway ?? 0;
    if (o.warmupS > 0 && gw === 0) {
      log(
        'WARNING: no object at gateway level after the warm-up: lower --cache-threshold or lengthen --warmup',
      );
    }
    const phases: ZipfPhase[] = [];
    for (let round = 0; round < o.rounds; round++) {
      phases.push(await phase(on, targets.on, keys, o, 'on', round, o.phaseS, log));
      phases.push(await phase(off, targets.off, keys, o, 'off', round, o.phaseS, log));
    }
    const meta = (x: OwnCacheCluster) => ({
      dir: x.dir,
      argv: x.argv,
      gateways: x.cluster.gateways,
      redis: x.cluster.redis?.url,
    });
    return {
      settings: o,
      clusters: { on: meta(on), off: meta(off) },
      preload: pre,
      warmup,
      phases,
      summary: summarizeZipf(phases, o.factor),
    };
  } finally {
    for (const t of Object.values(targets)) await closeTargets(t);
    await Promise.all(Object.values(owns).map((x) => x.stop()));
  }
}

/** The hot set stopped growing: the objects at gateway level and the extra copies alike. */
export function settled(a: HotSample, b: HotSample, pct: number): boolean {
  const grew = (x: number, y: number) => y - x > (pct / 100) * Math.max(x, 1);
  return !grew(a.levels.gateway, b.levels.gateway) && !grew(a.extraCopies, b.extraCopies);
}

export function summarizeZipf(phases: ZipfPhase[], factor: number): ZipfCacheResult['summary'] {
  const of = (cache: 'on' | 'off') => phases.filter((p) => p.cache === cache && p.round >= 0);
  const onReqPerSec = median(of('on').map((p) => p.reqPerSec));
  const offReqPerSec = median(of('off').map((p) => p.reqPerSec));
  const ratio = offReqPerSec > 0 ? onReqPerSec / offReqPerSec : 0;
  const onCpu = median(of('on').map((p) => p.serverCpuMsPerRequest));
  const offCpu = median(of('off').map((p) => p.serverCpuMsPerRequest));
  const servedOn = { reads: 0, gateway: 0, redis: 0, storeCache: 0, storeDisk: 0, overcount: 0 };
  for (const p of of('on')) {
    if (!p.served) continue;
    for (const k of Object.keys(servedOn) as (keyof typeof servedOn)[]) servedOn[k] += p.served[k];
  }
  return {
    onReqPerSec,
    offReqPerSec,
    ratio,
    pass: ratio >= factor,
    onCpuMsPerRequest: onCpu,
    offCpuMsPerRequest: offCpu,
    cpuRatio: onCpu > 0 ? offCpu / onCpu : 0,
    servedOn,
  };
}
