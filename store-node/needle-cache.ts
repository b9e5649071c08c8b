// The store-level cache (cache/README.md, "Levels"): whole needles in memory in front of
// this node's volumes and extra copies, keyed by volume, needle id and cookie. Needles are
// write-once and ids are never reused, so a cached copy is right for as long as the needle
// is live; every hit still checks that it is (an in-memory map lookup), so a delete that
// reached the volume by any path (sync, a tombstone replayed at load, compaction, a
// volume gone) can never be answered from here.
//
// Admission is the directory's decision, carried by the reader's hint (x-ks-cache):
// 'fill' = hot at store level, keep it after reading; 'drop' = promoted to the gateways,
// drop this copy (no duplicate between levels). Without a hint a read uses a copy if there
// is one. An object the directory stops hinting has cooled: it loses its entry at the next
// inspection (age(), every periodMs).
import { ByteLru } from '../cache/lru.ts';
import type { Config } from '../common/config.ts';
import { StoreError } from './errors.ts';
import type { CacheHint, NeedleRef } from './needle-ref.ts';

/** The x-ks-cache values. */
export type { CacheHint };

export function parseCacheHint(v: string | string[] | undefined): CacheHint | undefined {
  if (v === undefined) return undefined;
  if (v === 'fill' || v === 'drop') return v;
  throw new StoreError('InvalidArgument', 'x-ks-cache must be fill or drop');
}

export interface NeedleCacheOptions {
  /** Budget of the cache in bytes (cache.storeBytes). */
  bytes: number;
  /** Needles larger than this are never cached. */
  maxObjectBytes: number;
  highWatermark: number;
  lowWatermark: number;
  /** Inspection period: entries not hinted 'fill' during the last one are dropped; 0 = never. */
  periodMs: number;
}

/** The store cache's options from the config; undefined (no cache) when it is off. */
export function needleCacheOptions(c: Config['cache']): NeedleCacheOptions | undefined {
  if (!c.enabled || c.storeBytes <= 0) return undefined;
  return {
    bytes: c.storeBytes,
    maxObjectBytes: c.maxObjectBytes,
    highWatermark: c.highWatermark,
    lowWatermark: c.lowWatermark,
    periodMs: c.periodMs,
  };
}

export interface NeedleCacheStats {
  hits: number;
  misses: number;
  bytes: number;
  entries: number;
  evictions: number;
  evictedBytes: number;
  /** Needles admitted on a 'fill' hint. */
  fills: number;
  /** Entries dropped on a 'drop' hint. */
  drops: number;
  /** Entries dropped by ageing (cooled) or found no longer live. */
  aged: number;
  /** Entries dropped because their needle was deleted. */
  invalidated: number;
}

/** What a read returns (Volume.read's shape). */
export interface CachedRead {
  data: Buffer;
  size: number;
  compressed: boolean;
}

interface Entry {
  ref: NeedleRef;
  data: Buffer;
  compressed: boolean;
  /** When the directory last said "keep it" (a 'fill' hint). */
  filledAt: number;
}

export const needleKey = (vid: number, nid: bigint, cookie: number): string =>
  `${vid}/${nid}/${cookie}`;

/** A range of a whole needle, with Volume.read's rules. */
export function sliceRange(
  whole: CachedRead,
  range: { start: number; end: number } | undefined,
): CachedRead {
  if (!range) return whole;
  const len = whole.data.length;
  if (range.start < 0 || range.end < range.start || range.start >= len) {
    throw new StoreError('InvalidRange', `range ${range.start}-${range.end} of ${len}`);
  }
  return {
    data: whole.data.subarray(range.start, Math.min(range.end, len - 1) + 1),
    size: len,
    compressed: whole.compressed,
  };
}

export class NeedleCache {
  private readonly lru: ByteLru<Entry>;
  /** `vid/nid` → cookie of the cached entry: deletes may come without a cookie. */
  private readonly cookies = new Map<string, number>();
  private readonly timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private readonly counts = { fills: 0, drops: 0, aged: 0, invalidated: 0 };

  constructor(
    readonly opts: NeedleCacheOptions,
    /** Whether the needle is still live here (volume map or extra copy). */
    private readonly live: (ref: NeedleRef) => boolean,
    clock: { now?: () => number; timer?: boolean } = {},
  ) {
    this.now = clock.now ?? Date.now;
    this.lru = new ByteLru<Entry>({
      maxBytes: opts.bytes,
      highWatermark: opts.highWatermark,
      lowWatermark: opts.lowWatermark,
      sizeOf: (e) => e.data.length,
      onEvict: (_k, e) => this.cookies.delete(`${e.ref.volumeId}/${e.ref.needleId}`),
    });
    if (opts.periodMs > 0 && clock.timer !== false) {
      this.timer = setInterval(() => this.age(), opts.periodMs).unref();
    }
  }

  /**
   * A read through the cache: a live cached copy answers it (a hit); else `load` (given
   * the range, or none when the needle is to be kept) reads it from disk, and a 'fill'
   * hint keeps the whole needle.
   */
  async read(
    ref: NeedleRef,
    range: { start: number; end: number } | undefined,
    hint: CacheHint | undefined,
    load: (range?: { start: number; end: number }) => Promise<CachedRead>,
  ): Promise<CachedRead> {
    const key = needleKey(ref.volumeId, ref.needleId, ref.cookie);
    if (this.lru.has(key) && !this.live(ref)) {
      this.remove(key);
      this.counts.invalidated++;
    }
    const e = this.lru.get(key);
    if (e) {
      if (hint === 'fill') e.filledAt = this.now();
      else if (hint === 'drop') {
        this.remove(key);
        this.counts.drops++;
      }
      return sliceRange({ data: e.data, size: e.data.length, compressed: e.compressed }, range);
    }
    if (hint !== 'fill') return load(range);
    const whole = await load();
    // Checked after the read: a delete that landed meanwhile must not be cached.
    if (whole.data.length <= this.opts.maxObjectBytes && this.live(ref)) {
      // An owned, exact-size copy: a small needle's bytes may sit in a shared pool slab or
      // in a larger read buffer, which the entry would otherwise keep alive uncounted.
      const data = Buffer.allocUnsafeSlow(whole.data.length);
      whole.data.copy(data);
      const entry: Entry = { ref, data, compressed: whole.compressed, filledAt: this.now() };
      if (this.lru.set(key, entry)) {
        this.cookies.set(`${ref.volumeId}/${ref.needleId}`, ref.cookie);
        this.counts.fills++;
      }
    }
    return sliceRange(whole, range);
  }

  /** Whether a copy of the needle is cached (no hit counted). */
  has(ref: NeedleRef): boolean {
    return this.lru.has(needleKey(ref.volumeId, ref.needleId, ref.cookie));
  }

  /** Drops the copy of a deleted needle (whatever its cookie); false when none. */
  dropNeedle(vid: number, nid: bigint): boolean {
    const cookie = this.cookies.get(`${vid}/${nid}`);
    if (cookie === undefined) return false;
    this.remove(needleKey(vid, nid, cookie));
    this.counts.invalidated++;
    return true;
  }

  /** Drops every copy of a volume's needles (the volume left this node). */
  dropVolume(vid: number): number {
    let n = 0;
    for (const key of this.lru.keys()) {
      const e = this.lru.peek(key);
      if (e?.ref.volumeId !== vid) continue;
      this.remove(key);
      this.counts.invalidated++;
      n++;
    }
    return n;
  }

  /**
   * The inspection: drops the entries that got no 'fill' hint during the last full period
   * (the object cooled) and those no longer live. Returns how many went.
   */
  age(): number {
    const cutoff = this.now() - this.opts.periodMs;
    let n = 0;
    for (const key of this.lru.keys()) {
      const e = this.lru.peek(key);
      if (!e || (e.filledAt >= cutoff && this.live(e.ref))) continue;
      this.remove(key);
      n++;
    }
    this.counts.aged += n;
    return n;
  }

  private remove(key: string): void {
    const e = this.lru.peek(key);
    if (!e) return;
    this.lru.delete(key);
    const nk = `${e.ref.volumeId}/${e.ref.needleId}`;
    if (this.cookies.get(nk) === e.ref.cookie) this.cookies.delete(nk);
  }

  get stats(): NeedleCacheStats {
    const s = this.lru.stats;
    return {
      hits: s.hits,
      misses: s.misses,
      bytes: s.bytes,
      entries: s.entries,
      evictions: s.evictions,
      evictedBytes: s.evictedBytes,
      ...this.counts,
    };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.lru.clear();
    this.cookies.clear();
  }
}
