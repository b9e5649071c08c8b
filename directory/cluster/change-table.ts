// A keyed table that numbers its changes, so a reader holding version N can be sent just
// what changed after N (the hot table's answers to gateways' reports): the rows changed
// since, and the keys removed since (kept as tombstones, bounded). A reader too far behind
// gets null and takes the whole table.

/** Most tombstones kept; a reader whose version predates the oldest dropped one gets all. */
const MAX_TOMBSTONES = 100_000;

export interface TableDelta<V> {
  changed: V[];
  removed: string[];
}

export class ChangeTable<V> {
  private rows = new Map<string, V>();
  /** Key → the seq of its last change. */
  private readonly at = new Map<string, number>();
  private readonly gone = new Map<string, number>();
  /** Tombstones up to this seq were dropped. */
  private floor = 0;
  /** Grows with every change: the table's version. */
  seq = 0;

  get size(): number {
    return this.rows.size;
  }

  get(k: string): V | undefined {
    return this.rows.get(k);
  }

  values(): IterableIterator<V> {
    return this.rows.values();
  }

  entries(): IterableIterator<[string, V]> {
    return this.rows.entries();
  }

  set(k: string, v: V): void {
    this.rows.set(k, v);
    this.at.set(k, ++this.seq);
    this.gone.delete(k);
  }

  delete(k: string): void {
    if (!this.rows.delete(k)) return;
    this.at.delete(k);
    this.gone.set(k, ++this.seq);
    if (this.gone.size > MAX_TOMBSTONES) {
      // Maps iterate in insertion order: the first is the oldest.
      for (const [key, s] of this.gone) {
        this.gone.delete(key);
        this.floor = Math.max(this.floor, s);
        if (this.gone.size <= MAX_TOMBSTONES / 2) break;
      }
    }
  }

  /** Makes the table `next`, counting as changes only the rows that differ. */
  replace(next: Map<string, V>, same: (a: V, b: V) => boolean): void {
    for (const k of [...this.rows.keys()]) if (!next.has(k)) this.delete(k);
    for (const [k, v] of next) {
      const old = this.rows.get(k);
      if (old === undefined || !same(old, v)) this.set(k, v);
    }
  }

  /** What changed after version `since`; null when that is no longer known (all of it, then). */
  since(since: number): TableDelta<V> | null {
    if (since < this.floor || since > this.seq) return null;
    const changed: V[] = [];
    for (const [k, s] of this.at) if (s > since) changed.push(this.rows.get(k) as V);
    const removed: string[] = [];
    for (const [k, s] of this.gone) if (s > since) removed.push(k);
    return { changed, removed };
  }
}

/** Equality of plain JSON-like rows (the hot tables' records). */
export function sameRow(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    sameRow((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}
