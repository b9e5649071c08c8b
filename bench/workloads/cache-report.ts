// What the cache benchmarks print and draw: the hot-spot run's summary (first vs last
// window p99, markers, who served the reads) and three charts (latency per window, by read
// ordinal, hot-table levels over time); the Zipf run's table and two charts.
import { fmtInt } from '../lib/stats.ts';
import { lineChart, type Marker, type Series } from '../lib/svg.ts';
import { describeRoles, type Served } from './cache-events.ts';
import type { HotspotResult, HotspotRun } from './cache-hotspot.ts';
import type { ZipfCacheResult } from './cache-zipf.ts';

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const pct = (n: number, of: number) => (of > 0 ? `${((100 * n) / of).toFixed(1)}%` : '-');

export function describeServed(s: Omit<Served, 'counters'>): string {
  return (
    `gateway memory ${s.gateway} (${pct(s.gateway, s.reads)}), redis ${s.redis} (${pct(s.redis, s.reads)}), ` +
    `store cache ${s.storeCache} (${pct(s.storeCache, s.reads)}), store disk ${s.storeDisk} ` +
    `(${pct(s.storeDisk, s.reads)})${s.overcount ? `; levels counted ${s.overcount} more than the reads` : ''}`
  );
}

function describeRun(r: HotspotRun): string[] {
  const m = r.hotTable.markers;
  const o = r.markerOrdinals;
  const at = (t: number | null, ord: number | null) =>
    t === null ? 'never' : `${f1(t)} s (read #${ord ?? '?'} of each object)`;
  const l = r.latencyMs;
  const lines = [
    `hot spot, cache ${r.cache}: ${r.reads.sent} reads (${r.reads.ok} ok, ${r.reads.errors} errors) of ` +
      `${r.reads.planned} planned in ${f1(r.reads.seconds)} s, ${fmtInt(r.reads.reqPerSec)} req/s` +
      `${r.reads.capped ? ' [time cap]' : ''}${r.reads.firstError ? ` (first error: ${r.reads.firstError})` : ''}`,
    ...(r.warmup
      ? [
          `  (after a warm-up of ${r.warmup.reads} reads of ${r.warmup.objects} other objects in ${f1(r.warmup.seconds)} s, p99 ${f2(r.warmup.p99)} ms)`,
        ]
      : []),
    `  latency mean ${f2(l.mean)} p50 ${f2(l.p50)} p99 ${f2(l.p99)} max ${f1(l.max)} ms; ` +
      `server CPU ${r.serverCpuMsPerRead.toFixed(3)} ms/read (${describeRoles(r.serverCpuMsPerReadByRole)}); generator CPU ${r.reads.generatorCpuPercent.toFixed(0)}%`,
    r.first && r.last
      ? `  p99 first window (t=${r.first.t} s, ${r.first.count} reads) ${f2(r.first.p99)} ms → last window ` +
        `(t=${r.last.t} s, ${r.last.count} reads) ${f2(r.last.p99)} ms: ${f2(r.p99Ratio ?? 0)}×`
      : '  p99 first/last window: no windows',
    `  extra replicas from ${at(m.firstExtraReplicaS, o.firstExtraReplica)}; store cache from ` +
      `${at(m.firstStoreLevelS, o.firstStoreLevel)}; gateway cache from ${at(m.firstGatewayLevelS, o.firstGatewayLevel)}` +
      `${r.hotTable.errors ? ` (${r.hotTable.errors} hot-table polls failed: ${r.hotTable.firstError})` : ''}`,
    `  served: ${describeServed(r.served)}`,
  ];
  if (r.served.counters.errors.length > 0) {
    lines.push(`  counters not read: ${r.served.counters.errors.join('; ')}`);
  }
  return lines;
}

export function describeHotspot(res: HotspotResult): string {
  const lines = res.runs.flatMap(describeRun);
  const s = res.summary;
  if (s.on) {
    lines.push(
      `cache on: hot p99 fell ${s.on.ratio === null ? '?' : f2(s.on.ratio)}× from the first window to the last ` +
        `(≥ ${res.settings.factor}×: ${s.on.pass ? 'yes' : 'NO'})`,
    );
  }
  if (s.off) {
    lines.push(
      `cache off: ${s.off.ratio === null ? '?' : f2(s.off.ratio)}× (same measure, for comparison)`,
    );
  }
  if (s.lastP99OffOverOn !== undefined) {
    lines.push(
      `last-window p99, off ÷ on: ${s.lastP99OffOverOn === null ? '?' : f2(s.lastP99OffOverOn)}×; ` +
        `req/s, on ÷ off: ${s.throughputOnOverOff == null ? '?' : f2(s.throughputOnOverOff)}×`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Markers of the cache-on run, at times or at read ordinals. */
function markersOf(r: HotspotRun | undefined, by: 'time' | 'ordinal'): Marker[] {
  if (!r) return [];
  const m = r.hotTable.markers;
  const o = r.markerOrdinals;
  const all: [number | null, number | null, string][] = [
    [m.firstExtraReplicaS, o.firstExtraReplica, 'extra replicas'],
    [m.firstStoreLevelS, o.firstStoreLevel, 'store cache'],
    [m.firstGatewayLevelS, o.firstGatewayLevel, 'gateway cache'],
  ];
  return all
    .map(([t, ord, label]) => ({ x: by === 'time' ? t : ord, label }))
    .filter((x): x is Marker => x.x !== null);
}

/** The three SVGs of a hot-spot run: suffix → document. */
export function hotspotCharts(res: HotspotResult): Record<string, string> {
  const on = res.runs.find((r) => r.cache === 'on');
  const series = (pick: (r: HotspotRun) => Series[]) => res.runs.flatMap(pick);
  const out: Record<string, string> = {};
  out.latency = lineChart({
    title: `Hot spot: latency per ${res.settings.windowS} s window`,
    xLabel: 'seconds since the reads began',
    yLabel: 'latency (ms, log)',
    logY: true,
    markers: markersOf(on, 'time'),
    series: series((r) => [
      { name: `cache ${r.cache} p99`, points: r.windows.map((w) => [w.t, w.p99]) },
      { name: `cache ${r.cache} p50`, points: r.windows.map((w) => [w.t, w.p50]) },
    ]),
  });
  out.ordinal = lineChart({
    title: 'Hot spot: latency by read ordinal (n-th read of each object)',
    xLabel: 'read ordinal (bucket start)',
    yLabel: 'latency (ms, log)',
    logY: true,
    markers: markersOf(on, 'ordinal'),
    series: series((r) => [
      { name: `cache ${r.cache} p99`, points: r.ordinals.map((b) => [b.from, b.p99]) },
      { name: `cache ${r.cache} mean`, points: r.ordinals.map((b) => [b.from, b.mean]) },
    ]),
  });
  if (on) {
    const s = on.hotTable.samples;
    out.levels = lineChart({
      title: 'Hot spot, cache on: the directory’s hot table',
      xLabel: 'seconds since the reads began',
      yLabel: 'objects / extra copies',
      markers: markersOf(on, 'time'),
      series: [
        ...(['replicas', 'store', 'gateway', 'cooling'] as const).map((lv) => ({
          name: `level ${lv}`,
          points: s.map((x) => [x.t, x.levels[lv]] as [number, number]),
        })),
        { name: 'extra copies', points: s.map((x) => [x.t, x.extraCopies] as [number, number]) },
      ],
    });
  }
  return out;
}

export function describeZipf(r: ZipfCacheResult): string {
  const s = r.summary;
  const o = r.settings;
  const lines = [
    `zipf s=${o.zipf} over ${o.objects} × ${o.size} B objects, ${o.concurrency} connections, ` +
      `${o.rounds} round(s) of ${o.phaseS} s per cluster (interleaved on, off, …)`,
    ...r.phases.map(
      (p) =>
        `  round ${p.round + 1} cache ${p.cache}: ${fmtInt(p.reqPerSec)} req/s, p50 ${f2(p.latencyMs.p50)} ` +
        `p99 ${f2(p.latencyMs.p99)} ms, ${p.errors} errors, server CPU ${p.serverCpuMsPerRequest.toFixed(3)} ms/req`,
    ),
    `throughput (median of rounds): cache on ${fmtInt(s.onReqPerSec)} req/s, off ${fmtInt(s.offReqPerSec)} req/s: ` +
      `${f2(s.ratio)}× (≥ ${o.factor}×: ${s.pass ? 'yes' : 'NO'})`,
    `server CPU per request: on ${s.onCpuMsPerRequest.toFixed(3)} ms, off ${s.offCpuMsPerRequest.toFixed(3)} ms ` +
      `(off ÷ on ${f2(s.cpuRatio)}×)`,
    `cache-on reads served by: ${describeServed(s.servedOn)}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Req/s and CPU per request of each round, on and off. */
export function zipfCharts(r: ZipfCacheResult): Record<string, string> {
  const pts = (cache: 'on' | 'off', f: (p: ZipfCacheResult['phases'][number]) => number) =>
    r.phases.filter((p) => p.cache === cache).map((p) => [p.round + 1, f(p)] as [number, number]);
  return {
    throughput: lineChart({
      title: `Zipf s=${r.settings.zipf} reads: throughput per round`,
      xLabel: 'round',
      yLabel: 'req/s',
      series: [
        { name: 'cache on', points: pts('on', (p) => p.reqPerSec) },
        { name: 'cache off', points: pts('off', (p) => p.reqPerSec) },
      ],
    }),
    cpu: lineChart({
      title: 'Zipf reads: server CPU per request',
      xLabel: 'round',
      yLabel: 'CPU ms per request (all cluster processes)',
      series: [
        { name: 'cache on', points: pts('on', (p) => p.serverCpuMsPerRequest) },
        { name: 'cache off', points: pts('off', (p) => p.serverCpuMsPerRequest) },
      ],
    }),
  };
}
