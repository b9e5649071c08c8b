import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isoDate } from './xml.ts';

describe('isoDate', () => {
  it('is Date.prototype.toISOString for any valid time, in any order of days', () => {
    const t = fc.oneof(
      fc.integer({ min: -8.64e15, max: 8.64e15 }),
      fc.integer({ min: 0, max: 253402300799999 }),
      fc.integer({ min: 1_700_000_000_000, max: 1_800_000_000_000 }),
      fc.double({ min: -1e13, max: 1e13, noNaN: true }),
      fc.constantFrom(0, 86_399_999, 86_400_000, 253402300799999, 253402300800000, -1),
    );
    fc.assert(
      fc.property(fc.array(t, { minLength: 1, maxLength: 20 }), (times) => {
        for (const ms of times) expect(isoDate(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 500 },
    );
  });
});
