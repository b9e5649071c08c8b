// Seeded Zipf sampling over a random subset: the paper's "random, uneven frequencies".
import { Prng } from './prng.ts';

/** Zipf(s) over ranks 0..n-1: P(k) ∝ 1 / (k+1)^s. Inverse-CDF sampling by binary search. */
export class Zipf {
  private readonly cdf: Float64Array;

  constructor(
    readonly n: number,
    readonly s: number,
  ) {
    if (!(n >= 1)) throw new Error('Zipf: n must be ≥ 1');
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) {
      sum += 1 / (k + 1) ** s;
      this.cdf[k] = sum;
    }
    for (let k = 0; k < n; k++) this.cdf[k]! /= sum;
  }

  /** A rank in [0, n). */
  sample(rng: Prng): number {
    const u = rng.u32() / 0x1_0000_0000;
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/** k distinct indices of [0, n) in random order (partial Fisher-Yates). */
export function randomSubset(n: number, k: number, rng: Prng): Uint32Array {
  if (k > n) throw new Error(`subset ${k} > objects ${n}`);
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = 0; i < k; i++) {
    const j = i + rng.below(n - i);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a.slice(0, k);
}

/**
 * The object index of each of `requests` reads: Zipf(s) ranks over a random `subset` of
 * `objects`; the subset's random order decides which object gets which rank. Pure function
 * of its arguments, so every system gets the same requests.
 */
export function zipfReads(
  objects: number,
  subset: number,
  requests: number,
  s: number,
  seed: number,
): Uint32Array {
  const rng = new Prng(seed);
  const chosen = randomSubset(objects, subset, rng);
  const z = new Zipf(subset, s);
  const out = new Uint32Array(requests);
  for (let i = 0; i < requests; i++) out[i] = chosen[z.sample(rng)]!;
  return out;
}
