// The issue-14 cache benchmarks at tiny scale, on real local clusters (`cluster up`, Redis
// included): `bench hotspot --cluster` and `bench zipf-cache` run through their CLI entry
// points, and their JSON is checked for shape and for figures that agree with each other
// (reads counted = reads sent, the levels' shares sum to the reads, …). Nothing here is a
// wall-clock assertion; that the cache engages at all is (thresholds far below the load).
// Plus the pure helpers, without a cluster.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSize } from '../../cli/bench.ts';
import {
  hotspotClusterCommand,
  parseHotspotClusterArgs,
  parseZipfCacheArgs,
  zipfCacheCommand,
} from './cache-cluster.ts';
import {
  counterDelta,
  type LevelCounters,
  levelCount,
  markersOf,
  parsePrometheus,
  servedBy,
  summarizeHotTable,
} from './cache-events.ts';
import {
  firstAndLast,
  type HotspotResult,
  type HotspotRun,
  hotspotSequence,
} from './cache-hotspot.ts';
import type { ZipfCacheResult } from './cache-zipf.ts';
import { settled, ZipfKeys } from './cache-zipf.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ks-cache-bench-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const counters = (o: Partial<LevelCounters>): LevelCounters => ({
  gatewayHits: 0,
  gatewayMisses: 0,
  recordHits: 0,
  redisHits: 0,
  redisMisses: 0,
  storeHits: 0,
  storeMisses: 0,
  errors: [],
  ...o,
});

describe('cache bench helpers', () => {
  it('sums Prometheus counters per level', () => {
    const m = parsePrometheus(
      [
        '# HELP kubestorage_cache_hits_total Cache hits',
        '# TYPE kubestorage_cache_hits_total counter',
        'kubestorage_cache_hits_total{level="gateway"} 12',
        'kubestorage_cache_hits_total{level="gateway-records"} 5',
        'kubestorage_cache_hits_total{level="redis"} 3',
        'kubestorage_cache_misses_total{level="gateway"} 7',
        'kubestorage_cache_bytes{level="gateway"} 4096',
        'garbage line',
      ].join('\n'),
    );
    expect(levelCount(m, 'gateway', 'hits')).toBe(12);
    expect(levelCount(m, 'gateway-records', 'hits')).toBe(5);
    expect(levelCount(m, 'redis', 'hits')).toBe(3);
    expect(levelCount(m, 'gateway', 'misses')).toBe(7);
    expect(levelCount(m, 'store', 'hits')).toBe(0);
  });

  it('splits reads over the levels, always summing to the reads', () => {
    const s = servedBy(100, counters({ gatewayHits: 60, redisHits: 5, storeHits: 10 }));
    expect(s).toMatchObject({ gateway: 60, redis: 5, storeCache: 10, storeDisk: 25, overcount: 0 });
    // Hedged reads can make the stores count more than the reads.
    const o = servedBy(100, counters({ gatewayHits: 90, storeHits: 30 }));
    expect(o.gateway + o.redis + o.storeCache + o.storeDisk).toBe(100);
    expect(o.overcount).toBe(20);
    const d = counterDelta(counters({ storeHits: 5 }), counters({ storeHits: 9, errors: ['x'] }));
    expect(d.storeHits).toBe(4);
    expect(d.errors).toEqual(['x']);
  });

  it('finds the markers in the hot-table samples', () => {
    const obj = (level: 'replicas' | 'store' | 'gateway') => ({ bucket: 'b', key: 'k', level });
    const samples = [
      summarizeHotTable({ objects: [], extra: [] }, 0),
      summarizeHotTable({ objects: [obj('replicas')], extra: [] }, 1),
      summarizeHotTable(
        { objects: [obj('replicas')], extra: [{ volumeId: 1, needleId: '2', stores: ['s3'] }] },
        2,
      ),
      summarizeHotTable({ objects: [obj('gateway')], extra: [] }, 3),
    ];
    expect(markersOf(samples)).toEqual({
      firstExtraReplicaS: 2,
      firstStoreLevelS: 3,
      firstGatewayLevelS: 3,
    });
    expect(markersOf(samples.slice(0, 2)).firstExtraReplicaS).toBeNull();
  });

  it('reads every hot object once per round', () => {
    const seq = hotspotSequence(7, 5, 42);
    expect(seq.length).toBe(35);
    for (let r = 0; r < 5; r++) {
      expect([...seq.subarray(r * 7, r * 7 + 7)].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    }
    expect([...hotspotSequence(7, 5, 42)]).toEqual([...seq]);
  });

  it('compares full windows only', () => {
    const w = (t: number, count: number, p99: number) => ({ t, count, mean: 1, p50: 1, p99 });
    const { first, last } = firstAndLast([
      w(0, 100, 50),
      w(1, 100, 20),
      w(2, 100, 10),
      w(3, 3, 90),
    ]);
    expect(first?.p99).toBe(50);
    expect(last?.p99).toBe(10);
    // The drain after the last read was sent is left out.
    const ws = [w(0, 100, 50), w(1, 100, 20), w(2, 100, 10), w(3, 60, 5)];
    expect(firstAndLast(ws, 1, 3.5).last?.p99).toBe(10);
    expect(firstAndLast(ws, 1, 4).last?.p99).toBe(5);
    expect(firstAndLast(ws, 1, 0.5).last?.p99).toBe(5);
  });

  it('gives every phase the same Zipf sequence for the same seed', () => {
    const k = new ZipfKeys(1000, 1.1, 7);
    const a = k.sequence(1);
    const b = k.sequence(1);
    const xs = Array.from({ length: 500 }, () => a());
    expect(Array.from({ length: 500 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1000)).toBe(true);
    // Skewed: the commonest object takes a large share.
    const top = Math.max(...[...new Set(xs)].map((x) => xs.filter((y) => y === x).length));
    expect(top).toBeGreaterThan(25);
  });

  it('calls the hot set settled once neither gateway-level objects nor copies grow', () => {
    const at = (gateway: number, extraCopies: number) => ({
      t: 0,
      levels: { replicas: 0, store: 0, gateway, cooling: 0 },
      extraNeedles: 0,
      extraCopies,
    });
    expect(settled(at(100, 200), at(102, 205), 3)).toBe(true);
    expect(settled(at(100, 200), at(104, 200), 3)).toBe(false);
    expect(settled(at(100, 200), at(100, 210), 3)).toBe(false);
    expect(settled(at(0, 0), at(0, 0), 3)).toBe(true);
    expect(settled(at(0, 0), at(2, 0), 3)).toBe(false);
  });

  it('parses the options', () => {
    const h = parseHotspotClusterArgs(
      [
        '--hot',
        '10',
        '--period',
        '3s',
        '--cache-threshold',
        '40',
        '--redis',
        'none',
        '--runs',
        'off',
      ],
      parseSize,
    );
    expect(h.opts).toMatchObject({
      hot: 10,
      periodMs: 3000,
      cacheThreshold: 40,
      redis: '',
      runs: ['off'],
    });
    const z = parseZipfCacheArgs(['--objects', '200', '--phase', '2s', '--warmup', '0'], parseSize);
    expect(z.opts).toMatchObject({ objects: 200, phaseS: 2, warmupS: 0, zipf: 1.1 });
    expect(parseHotspotClusterArgs(['--warmup', '0s'], parseSize).opts.warmupS).toBe(0);
    // Thresholds default to the paper's share of the reads per object (5 % and 10 %).
    expect(parseHotspotClusterArgs(['--reads-per-object', '1000'], parseSize).opts).toMatchObject({
      replicateThreshold: 50,
      cacheThreshold: 100,
    });
    expect(() => parseHotspotClusterArgs(['--runs', 'maybe'], parseSize)).toThrow();
    expect(() => parseZipfCacheArgs(['--bogus'], parseSize)).toThrow();
  });
});

function checkRun(r: HotspotRun, hot: number, readsPerObject: number): void {
  const planned = hot * readsPerObject;
  expect(r.reads.planned).toBe(planned);
  expect(r.reads.capped).toBe(false);
  expect(r.reads.sent).toBe(planned);
  expect(r.reads.ok + r.reads.errors).toBe(r.reads.sent);
  expect(r.reads.errors).toBe(0);
  expect(r.preload).toMatchObject({ objects: hot + 20, errors: 0 });
  expect(r.warmup).toMatchObject({ objects: 20, errors: 0 });
  expect(r.warmup!.reads).toBeGreaterThan(0);
  // Every ok read is in exactly one window and one ordinal bucket.
  expect(r.windows.reduce((s, w) => s + w.count, 0)).toBe(r.reads.ok);
  expect(r.ordinals.reduce((s, b) => s + b.count, 0)).toBe(r.reads.ok);
  expect(r.ordinals[0]?.from).toBe(1);
  expect(r.ordinals.at(-1)?.to).toBeGreaterThanOrEqual(readsPerObject);
  expect(r.latencyMs.count).toBe(r.reads.ok);
  for (const w of r.windows) expect(w.p99).toBeGreaterThanOrEqual(w.p50);
  // Who served the reads: the levels sum to the reads.
  const s = r.served;
  expect(s.reads).toBe(r.reads.ok);
  expect(s.gateway + s.redis + s.storeCache + s.storeDisk).toBe(s.reads);
  for (const v of [s.gateway, s.redis, s.storeCache, s.storeDisk, s.overcount]) {
    expect(v).toBeGreaterThanOrEqual(0);
  }
  expect(s.counters.errors).toEqual([]);
  // The hot table was polled throughout.
  expect(r.hotTable.errors).toBe(0);
  expect(r.hotTable.samples.length).toBeGreaterThan(2);
  expect(r.first).not.toBeNull();
  expect(r.last).not.toBeNull();
  expect(r.p99Ratio).toBeCloseTo(r.first!.p99 / r.last!.p99, 6);
  expect(r.serverCpuSeconds).toBeGreaterThan(0);
}

describe('kubestorage bench hotspot --cluster (tiny)', () => {
  it('runs cache on then off and writes consistent JSON and charts', async () => {
    const json = path.join(tmp, 'hotspot.json');
    // Thresholds far under the load (10 objects read ≥ 70/s in all), so the policy acts.
    const argv = [
      ...['--hot', '10', '--reads-per-object', '200', '--concurrency', '20'],
      ...['--period', '3s', '--replicate-threshold', '10', '--cache-threshold', '20'],
      ...['--warmup', '1s', '--warmup-objects', '20', '--duration-cap', '120s', '--json', json],
    ];
    const res = (await hotspotClusterCommand(argv, parseSize)) as HotspotResult;
    const doc = JSON.parse(fs.readFileSync(json, 'utf8')) as HotspotResult & { command: string };
    expect(doc.command).toMatch(/^kubestorage bench hotspot /);
    expect(doc.runs.map((r) => r.cache)).toEqual(['on', 'off']);
    expect(doc.summary).toEqual(JSON.parse(JSON.stringify(res.summary)));
    for (const r of doc.runs) checkRun(r, 10, 200);
    const [on, off] = doc.runs as [HotspotRun, HotspotRun];
    // Cache off: nothing hot, nothing served from memory.
    expect(off.served.gateway + off.served.redis + off.served.storeCache).toBe(0);
    expect(off.hotTable.markers).toEqual({
      firstExtraReplicaS: null,
      firstStoreLevelS: null,
      firstGatewayLevelS: null,
    });
    // Cache on: the policy acted and some reads came from a cache level.
    expect(on.hotTable.markers.firstStoreLevelS).not.toBeNull();
    expect(on.markerOrdinals.firstStoreLevel).not.toBeNull();
    expect(on.served.gateway + on.served.redis + on.served.storeCache).toBeGreaterThan(0);
    if (on.hotTable.markers.firstGatewayLevelS !== null) {
      expect(on.hotTable.markers.firstGatewayLevelS).toBeGreaterThanOrEqual(
        on.hotTable.markers.firstStoreLevelS!,
      );
    }
    expect(doc.summary.on?.ratio).toBe(on.p99Ratio);
    expect(doc.summary.on?.pass).toBe((on.p99Ratio ?? 0) >= 3);
    for (const suffix of ['latency', 'ordinal', 'levels']) {
      const svg = fs.readFileSync(path.join(tmp, `hotspot.${suffix}.svg`), 'utf8');
      expect(svg).toMatch(/^<svg /);
    }
  }, 400_000);
});

describe('kubestorage bench zipf-cache (tiny)', () => {
  it('runs interleaved phases on two clusters and writes consistent JSON', async () => {
    const json = path.join(tmp, 'zipf.json');
    const argv = [
      ...[
        '--objects',
        '200',
        '--rounds',
        '1',
        '--phase',
        '2s',
        '--warmup',
        '2s',
        '--settle-max',
        '2s',
      ],
      ...['--warmup-off', '1s', '--concurrency', '10', '--period', '3s'],
      ...['--replicate-threshold', '5', '--cache-threshold', '10', '--json', json],
    ];
    await zipfCacheCommand(argv, parseSize);
    const doc = JSON.parse(fs.readFileSync(json, 'utf8')) as ZipfCacheResult;
    expect(doc.preload.on).toMatchObject({ objects: 200, errors: 0 });
    expect(doc.preload.off).toMatchObject({ objects: 200, errors: 0 });
    expect(doc.warmup.map((p) => [p.cache, p.round])).toEqual([
      ['on', -1],
      ['off', -1],
    ]);
    expect(doc.phases.map((p) => [p.cache, p.round])).toEqual([
      ['on', 0],
      ['off', 0],
    ]);
    for (const p of [...doc.warmup, ...doc.phases]) {
      expect(p.sent).toBeGreaterThan(0);
      expect(p.ok + p.errors).toBe(p.sent);
      expect(p.errors).toBe(0);
      expect(p.latencyMs.count).toBe(p.ok);
      expect(p.reqPerSec).toBeCloseTo(p.sent / p.seconds, 6);
      expect(p.serverCpuSeconds).toBeGreaterThan(0);
      expect(p.serverCpuMsPerRequest).toBeCloseTo((1000 * p.serverCpuSeconds) / p.sent, 6);
      if (p.cache === 'on') {
        const s = p.served!;
        expect(s.reads).toBe(p.ok);
        expect(s.gateway + s.redis + s.storeCache + s.storeDisk).toBe(p.ok);
        expect(s.counters.errors).toEqual([]);
        expect(p.hotTable).not.toBeNull();
      } else {
        expect(p.served).toBeUndefined();
      }
    }
    const [on, off] = doc.phases;
    expect(doc.summary.onReqPerSec).toBeCloseTo(on!.reqPerSec, 6);
    expect(doc.summary.offReqPerSec).toBeCloseTo(off!.reqPerSec, 6);
    expect(doc.summary.ratio).toBeCloseTo(on!.reqPerSec / off!.reqPerSec, 6);
    expect(doc.summary.pass).toBe(doc.summary.ratio >= 2);
    expect(doc.summary.servedOn.reads).toBe(on!.ok);
    for (const suffix of ['throughput', 'cpu']) {
      expect(fs.readFileSync(path.join(tmp, `zipf.${suffix}.svg`), 'utf8')).toMatch(/^<svg /);
    }
  }, 400_000);
});
