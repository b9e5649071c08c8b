import { describe, expect, it } from 'vitest';
import { ChangeTable, sameRow } from './change-table.ts';

describe('ChangeTable', () => {
  it('sends a reader at version N just what changed after N', () => {
    const t = new ChangeTable<{ v: number }>();
    t.set('a', { v: 1 });
    t.set('b', { v: 1 });
    const n = t.seq;
    t.set('b', { v: 2 });
    t.set('c', { v: 1 });
    t.delete('a');
    t.delete('zz'); // not there: no change
    expect(t.since(n)).toEqual({ changed: [{ v: 2 }, { v: 1 }], removed: ['a'] });
    expect(t.since(t.seq)).toEqual({ changed: [], removed: [] });
    expect(t.since(0)?.changed).toHaveLength(2);
    expect(t.since(t.seq + 1)).toBeNull(); // a version it never had
    // Back again after a removal: changed, no longer removed.
    const m = t.seq;
    t.set('a', { v: 3 });
    expect(t.since(n)).toEqual({ changed: [{ v: 2 }, { v: 1 }, { v: 3 }], removed: [] });
    expect(t.since(m)).toEqual({ changed: [{ v: 3 }], removed: [] });
  });

  it('replace counts only the rows that differ', () => {
    const t = new ChangeTable<{ v: number; w?: string }>();
    t.set('a', { v: 1 });
    t.set('b', { v: 1 });
    const n = t.seq;
    t.replace(
      new Map([
        ['a', { v: 1, w: undefined }],
        ['b', { v: 1 }],
      ]),
      sameRow,
    );
    expect(t.seq).toBe(n);
    t.replace(
      new Map([
        ['b', { v: 5 }],
        ['c', { v: 1 }],
      ]),
      sameRow,
    );
    expect(t.since(n)).toEqual({ changed: [{ v: 5 }, { v: 1 }], removed: ['a'] });
    expect([...t.values()]).toEqual([{ v: 5 }, { v: 1 }]);
  });

  it('a reader older than the dropped tombstones gets null (the whole table)', () => {
    const t = new ChangeTable<number>();
    const start = t.seq;
    for (let i = 0; i < 100_001; i++) t.set(`k${i}`, i);
    const mid = t.seq;
    for (let i = 0; i < 100_001; i++) t.delete(`k${i}`);
    expect(t.since(start)).toBeNull();
    expect(t.since(mid)).toBeNull();
    const late = t.since(t.seq - 10);
    expect(late?.removed).toHaveLength(10);
  });

  it('sameRow compares plain rows deeply, ignoring undefined fields', () => {
    expect(sameRow({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBe(true);
    expect(sameRow({ a: [1, { b: 2 }] }, { a: [1, { b: 3 }] })).toBe(false);
    expect(sameRow({ a: 1, x: undefined }, { a: 1 })).toBe(true);
    expect(sameRow({ a: 1 }, { a: 1, b: null })).toBe(false);
    expect(sameRow([1, 2], { 0: 1, 1: 2 })).toBe(false);
  });
});
