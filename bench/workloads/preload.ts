// Paper experiment 1: preload N objects of one size (random ASCII).
import { objectKey, type Payloads, type Plan } from './common.ts';

export function preloadPlan(bucket: string, objects: number, payloads: Payloads): Plan {
  return {
    phase: 'preload',
    op: 'PUT',
    count: objects,
    size: payloads.size,
    key: (i) => objectKey(bucket, payloads.size, i),
    body: (i) => payloads.get(i),
  };
}
