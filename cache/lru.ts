// A cache bounded in bytes that evicts by hit count (cache/README.md, "Levels"): every
// cache level of Kubestorage is one of these.
//
// Recency is the Map's insertion order (a use moves an entry to the end), so set/get/delete
// are O(1). Eviction sorts the entries once per pass, O(n log n), and a pass goes down to
// the low watermark: the next one waits until (high - low) × maxBytes more bytes came in.

export interface ByteLruOptions<V> {
  maxBytes: number;
  /** A set that takes `bytes` past this share of maxBytes starts an eviction pass … */
  highWatermark?: number;
  /** … which evicts until `bytes` is at most this share. */
  lowWatermark?: number;
  sizeOf: (v: V) => number;
  /** Told of each entry evicted to make room (not of delete, replacement or clear). */
  onEvict?: (key: string, v: V) => void;
}

/** Plain numbers, updated in place, for metrics to read. */
export interface LruStats {
  hits: number;
  misses: number;
  sets: number;
  evictions: number;
  evictedBytes: number;
  bytes: number;
  entries: number;
}

interface Entry<V> {
  value: V;
  size: number;
  hits: number;
}

export class ByteLru<V> {
  readonly maxBytes: number;
  readonly highWatermark: number;
  readonly lowWatermark: number;
  readonly stats: LruStats = {
    hits: 0,
    misses: 0,
    sets: 0,
    evictions: 0,
    evictedBytes: 0,
    bytes: 0,
    entries: 0,
  };
  private readonly map = new Map<string, Entry<V>>();
  private readonly sizeOf: (v: V) => number;
  private readonly onEvict: ((key: string, v: V) => void) | undefined;

  constructor(opts: ByteLruOptions<V>) {
    const high = opts.highWatermark ?? 0.95;
    const low = opts.lowWatermark ?? 0.8;
    if (!(opts.maxBytes >= 0) || !Number.isFinite(opts.maxBytes)) {
      throw new RangeError(`ByteLru: maxBytes must be a finite number >= 0, not ${opts.maxBytes}`);
    }
    if (!(low > 0 && low <= high && high <= 1)) {
      throw new RangeError(
        `ByteLru: need 0 < lowWatermark <= highWatermark <= 1 (${low}, ${high})`,
      );
    }
    this.maxBytes = opts.maxBytes;
    this.highWatermark = high;
    this.lowWatermark = low;
    this.sizeOf = opts.sizeOf;
    this.onEvict = opts.onEvict;
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.stats.bytes;
  }

  /** Counts a hit (and makes the entry the most recently used) or a miss. */
  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) {
      this.stats.misses++;
      return undefined;
    }
    e.hits++;
    this.stats.hits++;
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }

  /** The value without counting anything or touching its recency. */
  peek(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  hitsOf(key: string): number {
    return this.map.get(key)?.hits ?? 0;
  }

  /**
   * Stores `v` as the most recently used entry; false (and nothing cached under `key` any
   * more) when it is larger than lowWatermark × maxBytes: such an entry would empty the
   * cache at every pass. The old value goes on refusal too, so a refused replacement cannot
   * leave a stale value behind.
   */
  set(key: string, v: V): boolean {
    const size = this.sizeOf(v);
    if (!(size >= 0) || !Number.isFinite(size)) {
      throw new RangeError(`ByteLru: sizeOf gave ${size} for ${key}`);
    }
    const old = this.map.get(key);
    if (old) this.remove(key, old);
    if (size > this.lowWatermark * this.maxBytes) return false;
    this.map.set(key, { value: v, size, hits: old?.hits ?? 0 });
    this.stats.bytes += size;
    this.stats.entries = this.map.size;
    this.stats.sets++;
    if (this.stats.bytes > this.highWatermark * this.maxBytes) this.evict(key);
    return true;
  }

  delete(key: string): boolean {
    const e = this.map.get(key);
    if (!e) return false;
    this.remove(key, e);
    return true;
  }

  clear(): void {
    this.map.clear();
    this.stats.bytes = 0;
    this.stats.entries = 0;
  }

  /**
   * Least recently used first. A copy: a get() while iterating the Map itself would move
   * the key to the end and visit it again, forever.
   */
  keys(): string[] {
    return [...this.map.keys()];
  }

  private remove(key: string, e: Entry<V>): void {
    this.map.delete(key);
    this.stats.bytes -= e.size;
    this.stats.entries = this.map.size;
  }

  /**
   * Evicts the lowest hit counts (ties: least recently used first, which the stable sort
   * keeps from the Map's order) until under the low watermark. The entry just set is spared:
   * with hit counts only, a newcomer (0 hits) would otherwise be the first to go whenever
   * the others had been read once, and nothing new could ever get in. It fits on its own
   * (set refuses anything over the low watermark), so the pass always ends under it.
   */
  private evict(spare: string): void {
    const low = this.lowWatermark * this.maxBytes;
    const order = [...this.map].filter(([k]) => k !== spare);
    order.sort((a, b) => a[1].hits - b[1].hits);
    for (const [key, e] of order) {
      if (this.stats.bytes <= low) break;
      this.remove(key, e);
      this.stats.evictions++;
      this.stats.evictedBytes += e.size;
      this.onEvict?.(key, e.value);
    }
  }
}
