// A fixed CPU yardstick recorded next to every directory figure: this VM's speed swings by
// 2× from day to day (and within a day), so a figure without it cannot be compared with
// another. The work is the directory's own: validating stored object records.
import { performance } from 'node:perf_hooks';
import type { ObjectRecord } from '../../directory/model/api.ts';
import { checkStored, encodeObject } from '../../directory/model/object-codec.ts';

/** Microseconds per stored record validated (checkStored), median of `rounds` rounds. */
export function calibrate(
  record: (i: number) => ObjectRecord,
  n = 100_000,
  rounds = 5,
): { usPerRecord: number; rangeUs: [number, number] } {
  const stored = Array.from({ length: n }, (_, i) => encodeObject(record(i)));
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (const s of stored) checkStored(s);
    times.push(((performance.now() - t0) * 1000) / n);
  }
  times.sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    usPerRecord: round(times[Math.floor(rounds / 2)]!),
    rangeUs: [round(times[0]!), round(times[rounds - 1]!)],
  };
}
