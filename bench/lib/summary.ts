// Figures of one phase: the paper's mean and variance, percentiles, shares under thresholds,
// and per-window latency (hot spot: caches and replicas taking effect).

export const UNDER_MS = [1, 5, 10, 50, 100, 500] as const;

export interface LatencySummary {
  count: number;
  mean: number;
  /** Population variance, ms². */
  variance: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** Share (0..1) of requests faster than each threshold, keyed by "<1ms" etc. */
  under: Record<string, number>;
}

export function summarize(samples: Float64Array, n: number): LatencySummary {
  const under: Record<string, number> = {};
  if (n === 0) {
    for (const t of UNDER_MS) under[`<${t}ms`] = 0;
    return { count: 0, mean: 0, variance: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0, under };
  }
  const s = samples.slice(0, n).sort();
  const at = (p: number) => s[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i]!;
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (s[i]! - mean) ** 2;
  let j = 0;
  for (const t of UNDER_MS) {
    while (j < n && s[j]! < t) j++;
    under[`<${t}ms`] = j / n;
  }
  return {
    count: n,
    mean,
    variance: sq / n,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    p999: at(0.999),
    max: s[n - 1]!,
    under,
  };
}

export interface WindowStat {
  /** Window start, seconds since the phase began. */
  t: number;
  count: number;
  mean: number;
  p50: number;
  p99: number;
}

/** Latencies grouped by completion time (`ends`, ms since phase start) into windows. */
export function latencyWindows(
  latencies: Float64Array,
  ends: Float64Array,
  n: number,
  windowSeconds: number,
): WindowStat[] {
  const w = windowSeconds * 1000;
  const buckets = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const b = Math.floor(ends[i]! / w);
    let arr = buckets.get(b);
    if (!arr) buckets.set(b, (arr = []));
    arr.push(latencies[i]!);
  }
  return [...buckets.keys()]
    .sort((a, b) => a - b)
    .map((b) => {
      const s = summarize(Float64Array.from(buckets.get(b)!), buckets.get(b)!.length);
      return { t: b * windowSeconds, count: s.count, mean: s.mean, p50: s.p50, p99: s.p99 };
    });
}

/** Points of the empirical CDF, at most `maxPoints` of them: [latency ms, share ≤ it]. */
export function cdfPoints(samples: Float64Array, n: number, maxPoints = 200): [number, number][] {
  if (n === 0) return [];
  const s = samples.slice(0, n).sort();
  const pts: [number, number][] = [];
  const step = Math.max(1, Math.floor(n / maxPoints));
  for (let i = 0; i < n; i += step) pts.push([s[i]!, (i + 1) / n]);
  if (pts[pts.length - 1]![1] !== 1) pts.push([s[n - 1]!, 1]);
  return pts;
}
