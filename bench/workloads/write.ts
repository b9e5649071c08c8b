// Paper experiment 2 (writes): W new objects of the same size.
import { type Payloads, type Plan, writeKey } from './common.ts';

export function writePlan(bucket: string, count: number, tag: string, payloads: Payloads): Plan {
  return {
    phase: 'write',
    op: 'PUT',
    count,
    size: payloads.size,
    key: (i) => writeKey(bucket, payloads.size, tag, i),
    body: (i) => payloads.get(i + 0x4000_0000),
  };
}
