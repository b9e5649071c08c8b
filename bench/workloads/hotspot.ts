// Paper experiment 3: a few hot objects read many times, in seeded random order; the
// runner's per-window latency shows caches and replicas taking effect.
import { Prng } from '../lib/prng.ts';
import { randomSubset } from '../lib/zipf.ts';
import { type Plan, readsOf } from './common.ts';

export function hotspotPlan(o: {
  bucket: string;
  size: number;
  objects: number;
  hot: number;
  requests: number;
  seed: number;
}): Plan {
  const rng = new Prng(o.seed ^ 0x407);
  const hot = randomSubset(o.objects, Math.min(o.hot, o.objects), rng);
  const seq = new Uint32Array(o.requests);
  for (let i = 0; i < o.requests; i++) seq[i] = hot[rng.below(hot.length)]!;
  return readsOf('hotspot', o, seq);
}
