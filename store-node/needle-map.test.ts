import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MIN_LOAD, NeedleMap } from './needle-map.ts';

type Op = { kind: 'set' | 'delete'; lo: number; hi: number; off: number; size: number };

const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom('set', 'set', 'delete') as fc.Arbitrary<'set' | 'delete'>,
  // A narrow id space forces collisions, replacements and deletes of present keys.
  lo: fc.integer({ min: 0, max: 3000 }),
  hi: fc.integer({ min: 0, max: 2 }),
  off: fc.nat({ max: 0xffff_ffff }),
  size: fc.nat({ max: 0xffff_fffe }),
});

describe('NeedleMap', () => {
  it('behaves like a Map under random sets and deletes (incl. resizes)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 4000 }), (ops) => {
        const m = new NeedleMap();
        const model = new Map<string, [number, number]>();
        for (const op of ops) {
          if (op.lo === 0 && op.hi === 0) continue;
          const key = `${op.hi}:${op.lo}`;
          const prev = model.get(key);
          if (op.kind === 'set') {
            expect(m.set(op.lo, op.hi, op.off, op.size)).toBe(prev ? prev[1] : -1);
            model.set(key, [op.off, op.size]);
          } else {
            expect(m.delete(op.lo, op.hi)).toBe(prev ? prev[1] : -1);
            model.delete(key);
          }
        }
        expect(m.size).toBe(model.size);
        for (const [key, [off, size]] of model) {
          const [hi, lo] = key.split(':').map(Number) as [number, number];
          const slot = m.find(lo, hi);
          expect(slot).toBeGreaterThanOrEqual(0);
          expect([m.offsetAt(slot), m.sizeAt(slot)]).toEqual([off, size]);
        }
        let seen = 0;
        m.forEach(() => {
          seen++;
        });
        expect(seen).toBe(model.size);
      }),
      { numRuns: 60 },
    );
  });

  it('keeps RAM per needle within 24 bytes at every size past the minimum table', () => {
    const m = new NeedleMap();
    let worst = 0;
    for (let i = 1; i <= 300_000; i++) {
      m.set(i, 7, i, 4096);
      if (m.capacity > 1024) worst = Math.max(worst, m.byteLength / m.size);
    }
    expect(worst).toBeLessThanOrEqual(16 / MIN_LOAD + 0.01);
    expect(worst).toBeLessThanOrEqual(24);
  });

  it('rejects the reserved id 0', () => {
    expect(() => new NeedleMap().set(0, 0, 1, 1)).toThrow(RangeError);
    expect(new NeedleMap().find(0, 0)).toBe(-1);
  });
});
