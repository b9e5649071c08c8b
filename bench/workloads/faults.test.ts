import { describe, expect, it } from 'vitest';
import {
  analyze,
  backoffMs,
  ObjectData,
  type OpSample,
  parseDuration,
  perSecond,
  retryableStatus,
} from './faults.ts';

/** `n` reads of `ms` each, completing evenly over second `t`. */
function reads(t: number, n: number, ms: number, ok = true): OpSample[] {
  return Array.from({ length: n }, (_, i) => ({
    end: t * 1000 + (i * 1000) / n,
    ms,
    op: 'GET' as const,
    attempts: 1,
    ok,
  }));
}

describe('faults helpers', () => {
  it('parses durations', () => {
    expect(parseDuration('40s')).toBe(40);
    expect(parseDuration('1.5m')).toBe(90);
    expect(parseDuration('500ms')).toBe(0.5);
    expect(parseDuration('12')).toBe(12);
    expect(() => parseDuration('soon')).toThrow();
  });

  it('backs off like the SDK standard mode', () => {
    expect(backoffMs(1, 0.999)).toBeLessThanOrEqual(200);
    expect(backoffMs(2, 0.999)).toBeLessThanOrEqual(400);
    expect(backoffMs(1, 0)).toBe(0);
    expect(retryableStatus(503)).toBe(true);
    expect(retryableStatus(500)).toBe(true);
    expect(retryableStatus(404)).toBe(false);
    expect(retryableStatus(403)).toBe(false);
  });

  it('makes distinct, repeatable payloads', () => {
    const d = new ObjectData(40 * 1024, 42);
    expect(d.get(7).equals(new ObjectData(40 * 1024, 42).get(7))).toBe(true);
    expect(d.get(7).length).toBe(40 * 1024);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(d.get(i).toString('base64'));
    expect(seen.size).toBe(2000);
    expect(new ObjectData(4, 1).get(3).length).toBe(4);
  });

  it('groups by completion second, stragglers into the last one', () => {
    const s = perSecond(
      [
        ...reads(0, 10, 5),
        { end: 1500, ms: 400, op: 'PUT', attempts: 2, ok: false },
        { end: 3200, ms: 9, op: 'GET', attempts: 1, ok: true },
      ],
      3,
    );
    expect(s).toHaveLength(3);
    expect(s[0]).toMatchObject({ reads: 10, readP50: 5, readP99: 5 });
    expect(s[1]).toMatchObject({ writes: 1, writeErrors: 1, retried: 1, reads: 0 });
    expect(s[2]).toMatchObject({ reads: 1, readP99: 9 });
  });

  it('finds the baseline and the recovery second', () => {
    const samples = [
      ...reads(0, 50, 100), // warm-up, left out of the baseline
      ...reads(1, 50, 10),
      ...reads(2, 50, 10),
      ...reads(3, 50, 300), // the kill at 3 s
      ...reads(4, 50, 25),
      ...reads(5, 50, 12),
      ...reads(6, 50, 11),
    ];
    const a = analyze(samples, 7, 3, 2);
    expect(a.baseline.p99).toBe(10);
    expect(a.thresholdMs).toBe(20);
    expect(a.slowSeconds).toEqual([3, 4]);
    expect(a.recoveryS).toBe(2);
    expect(a.worstSecond).toMatchObject({ t: 3, readP99: 300 });
    expect(a.failedReads).toBe(0);
  });

  it('says never when the last second is still slow, 0 when it never went over', () => {
    const base = [...reads(1, 20, 10), ...reads(2, 20, 10)];
    expect(analyze([...base, ...reads(3, 20, 10), ...reads(4, 20, 50)], 5, 3, 2).recoveryS).toBe(
      null,
    );
    expect(analyze([...base, ...reads(3, 20, 11), ...reads(4, 20, 12)], 5, 3, 2).recoveryS).toBe(0);
    // A second without a single completed read is not a recovered one.
    expect(analyze([...base, ...reads(4, 20, 10)], 5, 3, 2).slowSeconds).toEqual([3]);
  });

  it('counts writes before and after the kill', () => {
    const puts = (t: number, n: number): OpSample[] =>
      Array.from({ length: n }, (_, i) => ({
        end: t * 1000 + i,
        ms: 5,
        op: 'PUT' as const,
        attempts: 1,
        ok: true,
      }));
    const a = analyze([...reads(1, 10, 5), ...puts(1, 10), ...puts(2, 10), ...puts(3, 4)], 4, 2, 2);
    // No warm-up second left out with a kill this early: 10 writes over 2 s.
    expect(a.writesPerSecBefore).toBe(5);
    expect(a.writesPerSecAfter).toBe(7);
    expect(a.writesPerSecFirst5sAfter).toBe(7);
  });
});
