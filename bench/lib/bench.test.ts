import { describe, expect, it } from 'vitest';
import { flag, parseBenchArgs, parseSize, parseTargets, ratios } from '../../cli/bench.ts';
import type { PhaseResult } from '../workloads/common.ts';
import { Payloads } from '../workloads/common.ts';
import { Prng } from './prng.ts';
import { resultTable } from './results-table.ts';
import { cdfPoints, latencyWindows, summarize } from './summary.ts';
import { lineChart } from './svg.ts';
import { randomSubset, Zipf, zipfReads } from './zipf.ts';

describe('Zipf sampler', () => {
  it('follows 1/k^s: rank 0 about twice rank 1 at s = 1, monotone head', () => {
    const z = new Zipf(1000, 1);
    const rng = new Prng(7);
    const counts = new Uint32Array(1000);
    const N = 200_000;
    for (let i = 0; i < N; i++) counts[z.sample(rng)]!++;
    // H(1000) ≈ 7.485: P(0) ≈ 0.1336, P(1) ≈ 0.0668.
    expect(counts[0]! / N).toBeGreaterThan(0.125);
    expect(counts[0]! / N).toBeLessThan(0.142);
    expect(counts[0]! / counts[1]!).toBeGreaterThan(1.8);
    expect(counts[0]! / counts[1]!).toBeLessThan(2.2);
    expect(counts[1]!).toBeGreaterThan(counts[9]!);
    expect(counts[999]!).toBeLessThan(counts[0]! / 200);
  });

  it('is uniform at s = 0 and stays in range', () => {
    const z = new Zipf(10, 0);
    const rng = new Prng(1);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) counts[z.sample(rng)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(600);
  });

  it('gives the same sequence for the same seed, over distinct subset members', () => {
    const a = zipfReads(10_000, 200, 5000, 1, 42);
    const b = zipfReads(10_000, 200, 5000, 1, 42);
    const c = zipfReads(10_000, 200, 5000, 1, 43);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
    expect(new Set(a).size).toBeLessThanOrEqual(200);
    for (const x of a) expect(x).toBeLessThan(10_000);
    const s = randomSubset(100, 100, new Prng(3));
    expect(new Set(s).size).toBe(100);
  });
});

describe('stats', () => {
  it('mean, variance, percentiles and under-X shares', () => {
    const xs = Float64Array.from([0.5, 2, 4, 6, 8, 20, 60, 200, 600, 1000]);
    const s = summarize(xs, xs.length);
    expect(s.mean).toBeCloseTo(190.05, 6);
    const mean = 190.05;
    const v = [...xs].reduce((t, x) => t + (x - mean) ** 2, 0) / xs.length;
    expect(s.variance).toBeCloseTo(v, 6);
    expect(s.p50).toBe(8);
    expect(s.p90).toBe(600);
    expect(s.max).toBe(1000);
    expect(s.under).toEqual({
      '<1ms': 0.1,
      '<5ms': 0.3,
      '<10ms': 0.5,
      '<50ms': 0.6,
      '<100ms': 0.7,
      '<500ms': 0.8,
    });
    expect(summarize(xs, 0).count).toBe(0);
  });

  it('windows by completion time, CDF ends at 1', () => {
    const lat = Float64Array.from([1, 3, 10, 30]);
    const ends = Float64Array.from([100, 900, 1500, 2100]);
    const w = latencyWindows(lat, ends, 4, 1);
    expect(w.map((x) => [x.t, x.count, x.mean])).toEqual([
      [0, 2, 2],
      [1, 1, 10],
      [2, 1, 30],
    ]);
    const cdf = cdfPoints(
      Float64Array.from({ length: 1000 }, (_, i) => i),
      1000,
      50,
    );
    expect(cdf.length).toBeLessThanOrEqual(51);
    expect(cdf[cdf.length - 1]).toEqual([999, 1]);
  });
});

describe('SVG chart', () => {
  it('is well-formed XML with one polyline per series and escaped text', () => {
    const svg = lineChart({
      title: 'a <b> & "c"',
      xLabel: 'x',
      yLabel: 'y',
      logX: true,
      series: [
        {
          name: 's1',
          points: [
            [1, 1],
            [10, 2],
            [100, 3],
            [0, 5],
          ],
        },
        {
          name: 's2<',
          points: [
            [2, 2],
            [20, 1],
          ],
        },
      ],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).not.toMatch(/NaN|Infinity|<b>|s2</);
    // Balanced tags: every non-self-closing open tag is closed.
    const opens = (svg.match(/<(text|svg)\b[^>]*[^/]>/g) ?? []).length;
    const closes = (svg.match(/<\/(text|svg)>/g) ?? []).length;
    expect(opens).toBe(closes);
  });
});

describe('arguments', () => {
  it('parses sizes, concurrency lists, defaults and targets', () => {
    expect(parseSize('4KiB')).toBe(4096);
    expect(parseSize('400KiB')).toBe(409_600);
    expect(parseSize('40KB')).toBe(40_000);
    expect(parseSize('123')).toBe(123);
    expect(() => parseSize('4 parsecs')).toThrow();
    const a = parseBenchArgs([
      'read',
      '--endpoint',
      'http://127.0.0.1:8080',
      '--mode',
      'http',
      '--size',
      '40KiB',
      '--concurrency',
      '50,500,1000',
      '--objects',
      '500',
    ]);
    if (a.help) throw new Error('help');
    expect(a.command).toBe('read');
    expect(a.size).toBe(40_960);
    expect(a.concurrency).toEqual([50, 500, 1000]);
    expect(a.subset).toBe(500);
    expect(a.targets).toEqual([
      { name: 'target', endpoint: 'http://127.0.0.1:8080', mode: 'http' },
    ]);
    expect(() => parseBenchArgs(['read', '--endpoint', 'http://example.com:80'])).toThrow(
      /loopback/,
    );
    expect(() => parseBenchArgs(['bogus'])).toThrow();
    expect(parseTargets('ks=embedded,ng=http@http://127.0.0.1:1', 's3')).toEqual([
      { name: 'ks', endpoint: 'embedded', mode: 's3' },
      { name: 'ng', endpoint: 'http://127.0.0.1:1', mode: 'http' },
    ]);
  });

  it('parses server processes of targets: PIDs, pidfiles, clusters', () => {
    expect(
      parseTargets(
        'ks=http://127.0.0.1:9000@pids=1,2,3,nginx=http@http://127.0.0.1:18080@pidfile=/tmp/x/nginx.pid,' +
          'c=cluster@/tmp/ks,e=embedded,both=s3@http://127.0.0.1:9/p@pids=7+8@pidfile=/a.pid@pids=9',
        's3',
      ),
    ).toEqual([
      { name: 'ks', endpoint: 'http://127.0.0.1:9000', mode: 's3', pids: [1, 2, 3] },
      {
        name: 'nginx',
        endpoint: 'http://127.0.0.1:18080',
        mode: 'http',
        pidfiles: ['/tmp/x/nginx.pid'],
      },
      { name: 'c', endpoint: 'cluster@/tmp/ks', mode: 's3', cluster: '/tmp/ks' },
      { name: 'e', endpoint: 'embedded', mode: 's3' },
      {
        name: 'both',
        endpoint: 'http://127.0.0.1:9/p',
        mode: 's3',
        pids: [7, 8, 9],
        pidfiles: ['/a.pid'],
      },
    ]);
    expect(() => parseTargets('a=http://127.0.0.1:1@pids=1,x', 's3')).toThrow(/PID/);
    expect(() => parseTargets('a=embedded@pids=1', 's3')).toThrow(/own processes/);
    expect(() => parseTargets('a=cluster@/d@pidfile=/p', 's3')).toThrow(/own processes/);
    expect(() => parseTargets('a=127.0.0.1:1', 's3')).toThrow(/URL/);

    const one = (...argv: string[]) => {
      const a = parseBenchArgs(['read', ...argv]);
      if (a.help) throw new Error('help');
      return a.targets;
    };
    expect(
      one(
        '--endpoint',
        'http://127.0.0.1:8',
        '--server-pids',
        '12,34',
        '--server-pidfile',
        '/n.pid',
      ),
    ).toEqual([
      {
        name: 'target',
        endpoint: 'http://127.0.0.1:8',
        mode: 's3',
        pids: [12, 34],
        pidfiles: ['/n.pid'],
      },
    ]);
    // A cluster's gateways are known once its file is read: no loopback check yet.
    expect(one('--endpoint', 'cluster@/tmp/ks')).toEqual([
      { name: 'target', endpoint: 'cluster@/tmp/ks', mode: 's3', cluster: '/tmp/ks' },
    ]);
    expect(() => one('--server-pids', '1')).toThrow(/own processes/);
    expect(() =>
      parseBenchArgs(['compare', '--targets', 'a=embedded', '--server-pids', '1']),
    ).toThrow(/per target/);
  });
});

describe('payloads, flags and ratios', () => {
  it('payloads are printable ASCII of the size, differing per object, repeatable', () => {
    const p = new Payloads(1000, 5);
    const a = p.get(1);
    expect(a.length).toBe(1000);
    for (const b of a) expect(b >= 32 && b < 127).toBe(true);
    expect(a.equals(p.get(2))).toBe(false);
    expect(a.equals(new Payloads(1000, 5).get(1))).toBe(true);
  });

  it('flags generator-bound results and computes ratios against the first target', () => {
    const r = (target: string, rps: number, cpu = 20) =>
      ({
        target,
        phase: 'read',
        op: 'GET',
        concurrency: 50,
        reqPerSec: rps,
        generatorCpuPercent: cpu,
        errors: 0,
        latencyMs: { mean: 1000 / rps },
      }) as unknown as PhaseResult & { target: string };
    const ceil = [{ ...r('null', 10_000), op: 'GET' }];
    expect(flag([r('a', 1000)], ceil)).toEqual([]);
    expect(flag([r('a', 8000)], ceil)).toHaveLength(1);
    expect(flag([r('a', 1000, 95)], ceil)).toHaveLength(1);
    const rows = ratios([r('a', 1000), r('b', 3000), r('a', 1200), r('b', 3000)], ['a', 'b']);
    expect(rows).toHaveLength(1);
    expect(rows[0]!['a req/s']).toBe(1100);
    expect(rows[0]!['b/a req/s']).toBe(2.73);
    // No CPU figures: no CPU columns.
    expect(Object.keys(rows[0]!).some((k) => /server/.test(k))).toBe(false);
  });

  it('puts the server CPU per request ratio beside the req/s ratio when both have it', () => {
    const r = (target: string, rps: number, us: number | null, concurrency = 8) =>
      ({
        target,
        phase: 'read',
        op: 'GET',
        concurrency,
        requests: 3000,
        errors: 0,
        reqPerSec: rps,
        serverCpuUsPerReq: us,
        latencyMs: { mean: 1, p99: 2 },
      }) as unknown as PhaseResult & { target: string };
    const rows = ratios(
      [
        r('ks', 1000, 400),
        r('ng', 4000, 50),
        r('ks', 1000, 500),
        r('ng', 4000, 40),
        r('x', 2000, null),
        r('x', 2000, 10),
        r('ks', 500, 900, 64),
        r('ng', 1000, null, 64),
      ],
      ['ks', 'ng', 'x'],
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({
      phase: 'read',
      concurrency: 8,
      'ks server µs/req': 450,
      'ng server µs/req': 45,
      'ng/ks req/s': 4,
      'ng/ks server CPU/req': 0.1,
      'x/ks req/s': 2,
    });
    // A target measured in some rounds only has no median, hence no ratio.
    expect(rows[0]!['x server µs/req']).toBeUndefined();
    expect(rows[0]!['x/ks server CPU/req']).toBeUndefined();
    expect(rows[1]).toMatchObject({ concurrency: 64, 'ks server µs/req': 900, 'ng/ks req/s': 2 });
    expect(rows[1]!['ng/ks server CPU/req']).toBeUndefined();

    const table = resultTable([
      { ...r('ks', 1000, 412.6), round: 0 },
      r('ng', 4000, 4.567),
      r('x', 2000, null),
    ]).split('\n');
    expect(table[0]).toMatch(/req\/s .*server CPU µs\/req$/);
    expect(table[1]).toMatch(/^ks +read +1 +8 +3000 +0 +1,000 .* 413$/);
    expect(table[2]).toMatch(/^ng .* 4,000 .* 4\.57$/);
    expect(table[3]).toMatch(/ -$/);
  });
});
