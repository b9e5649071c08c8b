// The directory bench's load driver: a fixed number of loops, each one call in flight,
// bounded by a count and a clock.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Samples } from './common.ts';

export interface DriveResult {
  /** Calls acknowledged inside the measured window. */
  acked: number;
  /** All calls acknowledged, window or not. */
  ackedTotal: number;
  errors: number;
  firstError?: string;
  seconds: number;
  latency: Samples;
}

/**
 * `concurrency` loops call op(i) with i = 0, 1, … until `maxOps` calls started or the
 * clock passes `stopAt` (performance.now() ms). A completion counts (and its latency is
 * kept) when it ends in [measureFrom, stopAt]. After an error a loop pauses 20 ms.
 */
export async function drive(o: {
  concurrency: number;
  maxOps: number;
  measureFrom: number;
  stopAt: number;
  op: (i: number) => Promise<void>;
}): Promise<DriveResult> {
  const latency = new Samples();
  let next = 0;
  let acked = 0;
  let ackedTotal = 0;
  let errors = 0;
  let firstError: string | undefined;
  let lastEnd = o.measureFrom;
  const loop = async () => {
    while (next < o.maxOps && performance.now() < o.stopAt) {
      const i = next++;
      const t = performance.now();
      try {
        await o.op(i);
      } catch (e) {
        errors++;
        firstError ??= (e as Error)?.message ?? String(e);
        await sleep(20);
        continue;
      }
      const end = performance.now();
      ackedTotal++;
      if (end >= o.measureFrom && end <= o.stopAt) {
        acked++;
        latency.push(end - t);
        lastEnd = Math.max(lastEnd, end);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, o.maxOps)) }, loop));
  // A count-bound run ends at its last completion; a time-bound one at stopAt.
  const end = next >= o.maxOps ? lastEnd : o.stopAt;
  return {
    acked,
    ackedTotal,
    errors,
    firstError,
    seconds: Math.max(1e-3, (end - o.measureFrom) / 1000),
    latency,
  };
}
