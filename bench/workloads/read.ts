// Paper experiment 2 (reads): R reads of a seeded random subset of K preloaded objects,
// with Zipf(s) frequencies. The same seed gives every system the same request sequence.
import { zipfReads } from '../lib/zipf.ts';
import { type Plan, readsOf } from './common.ts';

export function readPlan(o: {
  bucket: string;
  size: number;
  objects: number;
  subset: number;
  requests: number;
  zipf: number;
  seed: number;
}): Plan {
  const seq = zipfReads(o.objects, Math.min(o.subset, o.objects), o.requests, o.zipf, o.seed);
  return readsOf('read', o, seq);
}
