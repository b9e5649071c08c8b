// The issue-14 cache benchmarks on local clusters of their own (cache/README.md):
//
//   kubestorage bench hotspot --cluster …   the paper's hot-spot experiment (must-show 1):
//       hot objects read many times; latency per window and by read ordinal, with markers
//       where replicas were added and caching started, who served the reads, then the same
//       on a fresh cluster with the cache off.
//   kubestorage bench zipf-cache …          Zipf reads, cache on vs off in one sitting
//       (must-show 2): two clusters, interleaved phases, req/s and CPU per request.
//
// The parts: cache-own (clusters up/down), cache-load (the load loop, gateway targets),
// cache-events (hot table, level counters, CPU), cache-hotspot, cache-zipf, cache-report.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadAvg, machineInfo } from '../lib/machine.ts';
import { progress } from '../lib/stats.ts';
import {
  HOTSPOT_DEFAULTS,
  type HotspotOptions,
  type HotspotResult,
  paperThresholds,
  runHotspot,
} from './cache-hotspot.ts';
import { withClusterCleanup } from './cache-own.ts';
import { describeHotspot, describeZipf, hotspotCharts, zipfCharts } from './cache-report.ts';
import {
  runZipfCache,
  ZIPF_DEFAULTS,
  type ZipfCacheOptions,
  type ZipfCacheResult,
} from './cache-zipf.ts';
import { parseDuration } from './faults/options.ts';

export {
  HOTSPOT_DEFAULTS,
  type HotspotOptions,
  type HotspotResult,
  runHotspot,
} from './cache-hotspot.ts';
export {
  runZipfCache,
  ZIPF_DEFAULTS,
  type ZipfCacheOptions,
  type ZipfCacheResult,
} from './cache-zipf.ts';

const H = HOTSPOT_DEFAULTS;
const Z = ZIPF_DEFAULTS;

export const HOTSPOT_CLUSTER_USAGE = `usage: kubestorage bench hotspot --cluster [options]
  The paper's hot-spot experiment on a local cluster of its own (cluster up into a temp
  dir, taken down at the end): preloads the hot objects, reads each of them N times in
  seeded rounds at high concurrency over every gateway, polls the directory leader's hot
  table (GET /cluster/cache) for when extra replicas, store-level and gateway-level caching
  started, and reads the levels' counters at the end (who served how many reads). Then the
  same on a fresh cluster with the cache off. Prints the first- and last-window p99.
  --hot N                  hot objects (default ${H.hot})
  --size S                 object size (default 40KiB)
  --reads-per-object N     reads of each object (default ${H.readsPerObject})
  --concurrency C          reads in flight, spread over the gateways (default ${H.concurrency})
  --period D               cache inspection period, e.g. 20s (default ${H.periodMs / 1000}s)
  --replicate-threshold N  reads per period for extra replicas (default 5 % of
                           --reads-per-object: the paper's 500 of 10 000; ${H.replicateThreshold} for ${H.readsPerObject})
  --cache-threshold N      reads per period for caching (default 10 %: ${H.cacheThreshold} for ${H.readsPerObject})
  --report-ms N            gateways' report interval (cache.reportMs; default the config's)
  --redis auto|URL|none    the gateways' shared L2 in the cache-on run (default auto)
  --runs on,off            which runs (default on,off; cache on first)
  --directories N --stores N --gateways N   cluster shape (default 3 / 4 / 2)
  --window S               latency window, seconds (default ${H.windowS})
  --ordinal-bucket N       reads per object per ordinal bucket (default ≈ reads/30)
  --warmup D               before the measured reads, read other objects for up to D
                           (≤ half the replicate threshold each), so that the first
                           window is not a cold start; 0 = none (default ${H.warmupS}s)
  --warmup-objects N       those other objects (default ${H.warmupObjects})
  --poll-ms N              hot-table poll interval (default ${H.pollMs})
  --duration-cap D         each run's reads stop after this long (default ${H.capS}s)
  --factor F               the cache-on p99 must fall ≥ F× (default ${H.factor})
  --seed N                 seed of payloads and read order (default ${H.seed})
  --data DIR               clusters' data under DIR/hotspot-on|off (default temp dirs)
  --keep                   keep the temp dirs (logs in DIR/logs)
  --port-base P            ports of the clusters (default a free random range)
  --json FILE              results as JSON; FILE.latency.svg, FILE.ordinal.svg,
                           FILE.levels.svg beside it (FILE without .json)`;

export const ZIPF_CACHE_USAGE = `usage: kubestorage bench zipf-cache [options]
  Zipf reads with the cache on and off in one sitting: starts two local clusters (cache on
  with Redis, cache off) on different ports, preloads both, warms them up, then runs read
  phases of the same seeded Zipf sequence alternately (on, off, on, off, …) and reports
  req/s, latency and server CPU per request (every cluster process, /proc) of each, and
  the ratio of the medians. Both clusters are taken down at the end.
  --objects N              objects preloaded, all of them read (default ${Z.objects})
  --size S                 object size (default 4KiB)
  --zipf s                 Zipf exponent (default ${Z.zipf})
  --concurrency C          connections / reads in flight (default ${Z.concurrency})
  --rounds N               rounds of (on, off) phases (default ${Z.rounds})
  --phase D                one read phase (default ${Z.phaseS}s)
  --warmup D               warm-up of the cache-on cluster (default ${Z.warmupS}s), then
                           more phases while the hot table grows by > ${Z.settledPct}% a phase
  --settle-max D           at most this much warm-up in all (default ${Z.settleMaxS}s)
  --warmup-off D           warm-up of the cache-off cluster, 0 = none (default ${Z.warmupOffS}s)
  --period D               cache inspection period (default ${Z.periodMs / 1000}s)
  --replicate-threshold N  (default ${Z.replicateThreshold})
  --cache-threshold N      (default ${Z.cacheThreshold})
  --report-ms N            gateways' report interval (default the config's)
  --redis auto|URL|none    L2 of the cache-on cluster (default auto)
  --preload-concurrency N  (default ${Z.preloadConcurrency})
  --directories N --stores N --gateways N   cluster shape (default 3 / 4 / 2)
  --factor F               on ÷ off req/s must be ≥ F (default ${Z.factor})
  --seed N                 (default ${Z.seed})
  --data DIR               clusters' data under DIR/zipf-on|off (default temp dirs)
  --keep                   keep the temp dirs
  --json FILE              results as JSON; FILE.throughput.svg, FILE.cpu.svg beside it`;

const int = (name: string, v: string | undefined, dflt: number, min = 0): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: an integer ≥ ${min}, got ${v}`);
  return n;
};
const num = (name: string, v: string | undefined, dflt: number, min = 0): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!(n >= min)) throw new Error(`--${name}: a number ≥ ${min}, got ${v}`);
  return n;
};
const dur = (v: string | undefined, dflt: number): number =>
  v === undefined ? dflt : parseDuration(v);
/** A duration that may be 0 (none): "0", "0s", … */
const durOrZero = (v: string | undefined, dflt: number): number =>
  v !== undefined && /^0+(\.0+)?\s*(ms|s|m)?$/i.test(v.trim()) ? 0 : dur(v, dflt);
const redisOf = (v: string | undefined, dflt: string): string => {
  const r = v ?? dflt;
  if (r === 'none' || r === '') return '';
  if (r !== 'auto' && !/^rediss?:\/\//.test(r))
    throw new Error('--redis: auto, none or redis://HOST:PORT');
  return r;
};

const COMMON = {
  directories: { type: 'string' },
  stores: { type: 'string' },
  gateways: { type: 'string' },
  redis: { type: 'string' },
  size: { type: 'string' },
  concurrency: { type: 'string' },
  period: { type: 'string' },
  'replicate-threshold': { type: 'string' },
  'cache-threshold': { type: 'string' },
  'report-ms': { type: 'string' },
  factor: { type: 'string' },
  seed: { type: 'string' },
  data: { type: 'string' },
  keep: { type: 'boolean', default: false },
  json: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function parseHotspotClusterArgs(argv: string[], parseSize: (s: string) => number) {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      ...COMMON,
      cluster: { type: 'boolean', default: true },
      hot: { type: 'string' },
      'reads-per-object': { type: 'string' },
      runs: { type: 'string' },
      window: { type: 'string' },
      'ordinal-bucket': { type: 'string' },
      warmup: { type: 'string' },
      'warmup-objects': { type: 'string' },
      'poll-ms': { type: 'string' },
      'duration-cap': { type: 'string' },
      'port-base': { type: 'string' },
    },
  });
  const runs = (v.runs ?? 'on,off').split(',').map((s) => s.trim());
  if (runs.length === 0 || runs.some((r) => r !== 'on' && r !== 'off')) {
    throw new Error('--runs: on, off or on,off');
  }
  const readsPerObject = int('reads-per-object', v['reads-per-object'], H.readsPerObject, 1);
  const paper = paperThresholds(readsPerObject);
  const o: HotspotOptions = {
    ...H,
    directories: int('directories', v.directories, H.directories, 1),
    stores: int('stores', v.stores, H.stores, 1),
    gateways: int('gateways', v.gateways, H.gateways, 1),
    redis: redisOf(v.redis, H.redis),
    hot: int('hot', v.hot, H.hot, 1),
    size: v.size === undefined ? H.size : parseSize(v.size),
    readsPerObject,
    concurrency: int('concurrency', v.concurrency, H.concurrency, 1),
    periodMs: Math.round(1000 * dur(v.period, H.periodMs / 1000)),
    replicateThreshold: int('replicate-threshold', v['replicate-threshold'], paper.replicate, 1),
    cacheThreshold: int('cache-threshold', v['cache-threshold'], paper.cache, 1),
    reportMs: v['report-ms'] === undefined ? undefined : int('report-ms', v['report-ms'], 0, 10),
    windowS: num('window', v.window, H.windowS, 0.05),
    ordinalBucket: int('ordinal-bucket', v['ordinal-bucket'], H.ordinalBucket, 0),
    warmupS: durOrZero(v.warmup, H.warmupS),
    warmupObjects: int('warmup-objects', v['warmup-objects'], H.warmupObjects, 1),
    pollMs: int('poll-ms', v['poll-ms'], H.pollMs, 50),
    capS: dur(v['duration-cap'], H.capS),
    runs: [...new Set(runs)] as ('on' | 'off')[],
    factor: num('factor', v.factor, H.factor, 0),
    seed: int('seed', v.seed, H.seed, 0),
    data: v.data,
    keep: v.keep,
    portBase: v['port-base'] === undefined ? undefined : int('port-base', v['port-base'], 0, 1024),
  };
  return { help: !!v.help, opts: o, json: v.json };
}

export function parseZipfCacheArgs(argv: string[], parseSize: (s: string) => number) {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      ...COMMON,
      objects: { type: 'string' },
      zipf: { type: 'string' },
      rounds: { type: 'string' },
      phase: { type: 'string' },
      warmup: { type: 'string' },
      'warmup-off': { type: 'string' },
      'settle-max': { type: 'string' },
      'preload-concurrency': { type: 'string' },
    },
  });
  const o: ZipfCacheOptions = {
    ...Z,
    directories: int('directories', v.directories, Z.directories, 1),
    stores: int('stores', v.stores, Z.stores, 1),
    gateways: int('gateways', v.gateways, Z.gateways, 1),
    redis: redisOf(v.redis, Z.redis),
    objects: int('objects', v.objects, Z.objects, 1),
    size: v.size === undefined ? Z.size : parseSize(v.size),
    zipf: num('zipf', v.zipf, Z.zipf, 0),
    concurrency: int('concurrency', v.concurrency, Z.concurrency, 1),
    rounds: int('rounds', v.rounds, Z.rounds, 1),
    phaseS: dur(v.phase, Z.phaseS),
    warmupS: durOrZero(v.warmup, Z.warmupS),
    warmupOffS: durOrZero(v['warmup-off'], Z.warmupOffS),
    settleMaxS: durOrZero(v['settle-max'], Z.settleMaxS),
    periodMs: Math.round(1000 * dur(v.period, Z.periodMs / 1000)),
    replicateThreshold: int(
      'replicate-threshold',
      v['replicate-threshold'],
      Z.replicateThreshold,
      1,
    ),
    cacheThreshold: int('cache-threshold', v['cache-threshold'], Z.cacheThreshold, 1),
    reportMs: v['report-ms'] === undefined ? undefined : int('report-ms', v['report-ms'], 0, 10),
    preloadConcurrency: int(
      'preload-concurrency',
      v['preload-concurrency'],
      Z.preloadConcurrency,
      1,
    ),
    factor: num('factor', v.factor, Z.factor, 0),
    seed: int('seed', v.seed, Z.seed, 0),
    data: v.data,
    keep: v.keep,
  };
  return { help: !!v.help, opts: o, json: v.json };
}

/** The JSON document of a run: what ran, where, and the result. */
function envelope(command: string, argv: string[], result: object) {
  return {
    command: `kubestorage bench ${command} ${argv.join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: { ...machineInfo(), loadAvg: loadAvg() },
    ...result,
  };
}

function writeOut(json: string, doc: object, charts: Record<string, string>): void {
  fs.writeFileSync(json, `${JSON.stringify(doc, null, 2)}\n`);
  const base = json.replace(/\.json$/, '');
  const files = Object.entries(charts).map(([suffix, svg]) => {
    const f = `${base}.${suffix}.svg`;
    fs.writeFileSync(f, svg);
    return f;
  });
  progress(`wrote ${json}, ${files.join(', ')}`);
}

/** `kubestorage bench hotspot --cluster …` (argv without "hotspot"). */
export async function hotspotClusterCommand(
  argv: string[],
  parseSize: (s: string) => number,
): Promise<HotspotResult | undefined> {
  const a = parseHotspotClusterArgs(argv, parseSize);
  if (a.help) {
    process.stdout.write(`${HOTSPOT_CLUSTER_USAGE}\n`);
    return undefined;
  }
  const res = await withClusterCleanup(() => runHotspot(a.opts));
  process.stdout.write(describeHotspot(res));
  if (a.json) writeOut(a.json, envelope('hotspot', argv, res), hotspotCharts(res));
  return res;
}

/** `kubestorage bench zipf-cache …` (argv without "zipf-cache"). */
export async function zipfCacheCommand(
  argv: string[],
  parseSize: (s: string) => number,
): Promise<ZipfCacheResult | undefined> {
  const a = parseZipfCacheArgs(argv, parseSize);
  if (a.help) {
    process.stdout.write(`${ZIPF_CACHE_USAGE}\n`);
    return undefined;
  }
  const res = await withClusterCleanup(() => runZipfCache(a.opts));
  process.stdout.write(describeZipf(res));
  if (a.json) writeOut(a.json, envelope('zipf-cache', argv, res), zipfCharts(res));
  return res;
}
