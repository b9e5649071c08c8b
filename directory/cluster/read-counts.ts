// Gateways' read counts, summed per object per inspection period, in the memory of the
// process running the hot-object policy (hotness.ts). Periods are aligned to the wall
// clock — index floor(now / periodMs) — so every leader agrees where one ends. Nothing here
// is replicated: counts are advice, and a new leader starts from none.
import { MetadataError } from '../model/api.ts';
import { hotObjectKey, type ReadReport } from '../model/hot.ts';

export interface Count {
  bucket: string;
  key: string;
  reads: number;
}

export interface EndedPeriod {
  index: number;
  counts: ReadonlyMap<string, Count>;
}

/** Most objects counted at once; past it the least read half is forgotten. */
const MAX_TRACKED = 200_000;
const MAX_GATEWAYS = 1_000;

export class ReadCounts {
  /** The current period's index. */
  period = 0;
  /** When counting began: a period that started before saw only part of its reads. */
  since = 0;
  private counts = new Map<string, Count>();
  /** Periods that ended and that the policy has not taken yet. */
  private ended: EndedPeriod[] = [];
  private readonly gateways = new Map<string, { at: number; stats: Record<string, number> }>();

  constructor(
    readonly periodMs: number,
    private readonly now: () => number,
  ) {
    this.reset();
  }

  reset(): void {
    this.since = this.now();
    this.period = Math.floor(this.since / this.periodMs);
    this.counts = new Map();
    this.ended = [];
    this.gateways.clear();
  }

  /** Starts a new period when the clock says so; true when one did. */
  roll(): boolean {
    const p = Math.floor(this.now() / this.periodMs);
    if (p === this.period) return false;
    this.ended.push({ index: this.period, counts: this.counts });
    // Periods in which nothing at all was counted demote like any period without reads.
    if (p > this.period + 1) this.ended.push({ index: p - 1, counts: new Map() });
    this.ended = this.ended.slice(-2);
    this.period = p;
    this.counts = new Map();
    return true;
  }

  /** The periods that ended since the last call, oldest first. */
  takeEnded(): EndedPeriod[] {
    return this.ended.splice(0);
  }

  /** Whether counting covered the whole of period `index`. */
  sawWhole(index: number): boolean {
    return this.since <= index * this.periodMs;
  }

  add(r: ReadReport): void {
    this.roll();
    for (const [bucket, key, n] of r.counts) {
      if (n <= 0) continue;
      const k = hotObjectKey(bucket, key);
      const c = this.counts.get(k);
      if (c) c.reads += n;
      else this.counts.set(k, { bucket, key, reads: n });
    }
    if (this.counts.size > MAX_TRACKED) {
      // Hot objects have large counts; the tail of the distribution is single reads.
      const keep = [...this.counts].sort((a, b) => b[1].reads - a[1].reads);
      this.counts = new Map(keep.slice(0, MAX_TRACKED / 2));
    }
    if (r.stats && (this.gateways.has(r.gateway) || this.gateways.size < MAX_GATEWAYS)) {
      this.gateways.set(r.gateway, { at: this.now(), stats: r.stats });
    }
  }

  /** Reads of the object this period. */
  reads(k: string): number {
    return this.counts.get(k)?.reads ?? 0;
  }

  entries(): IterableIterator<[string, Count]> {
    return this.counts.entries();
  }

  get size(): number {
    return this.counts.size;
  }

  top(n: number): Count[] {
    return [...this.counts.values()]
      .sort((a, b) => b.reads - a.reads)
      .slice(0, n)
      .map((c) => ({ ...c }));
  }

  gatewayStats(): Record<string, { at: number; stats: Record<string, number> }> {
    return Object.fromEntries(this.gateways);
  }
}

/** Throws PreconditionFailed unless `r` is a well-formed report (it comes off the wire). */
/** Most lease renewals one report may ask for (a gateway's cache holds fewer records). */
export const MAX_RENEW = 50_000;

export function checkReport(r: ReadReport): void {
  const ok =
    r !== null &&
    typeof r === 'object' &&
    typeof r.gateway === 'string' &&
    r.gateway.length > 0 &&
    r.gateway.length <= 256 &&
    Array.isArray(r.counts) &&
    r.counts.every(
      (c) =>
        Array.isArray(c) &&
        typeof c[0] === 'string' &&
        typeof c[1] === 'string' &&
        Number.isSafeInteger(c[2]),
    ) &&
    (r.stats == null ||
      (typeof r.stats === 'object' &&
        Object.keys(r.stats).length <= 64 &&
        Object.values(r.stats).every((v) => typeof v === 'number'))) &&
    (r.written == null ||
      (Array.isArray(r.written) &&
        r.written.every(
          (w) => Array.isArray(w) && typeof w[0] === 'string' && typeof w[1] === 'string',
        ))) &&
    (r.have == null || (typeof r.have === 'string' && r.have.length <= 64)) &&
    (r.renew == null ||
      (Array.isArray(r.renew) &&
        r.renew.length <= MAX_RENEW &&
        r.renew.every(
          (w) =>
            Array.isArray(w) &&
            typeof w[0] === 'string' &&
            typeof w[1] === 'string' &&
            typeof w[2] === 'string',
        )));
  if (!ok) throw new MetadataError('PreconditionFailed', 'malformed read report');
}
