import { describe, expect, it } from 'vitest';
import { randomU32 } from './random-pool.ts';

describe('randomU32', () => {
  it('gives unsigned 32-bit values that do not repeat their pool (across refills)', () => {
    const n = 5_000; // > 4 pools of 1 024 values
    const xs = Array.from({ length: n }, randomU32);
    expect(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)).toBe(true);
    // 5 000 draws from 2^32: a repeat has probability ~0.3 %; a stuck or replayed pool
    // would repeat at once.
    expect(new Set(xs).size).toBeGreaterThan(n - 3);
    // Every bit position takes both values (a pool of zeros would not).
    for (let b = 0; b < 32; b++) {
      const ones = xs.filter((x) => (x >>> b) & 1).length;
      expect(ones).toBeGreaterThan(n * 0.4);
      expect(ones).toBeLessThan(n * 0.6);
    }
  });
});
