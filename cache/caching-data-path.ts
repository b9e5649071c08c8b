// The directory level's bytes half, and the hints that drive the store level. Reads of a
// hot object's needle go, by its level in the hot table: `gateway` → this gateway's LRU,
// then Redis (L2), then a store told to drop its own copy (no duplicate between levels);
// `store` → a store told to keep it; otherwise straight through. Keyed by needle, which is
// write-once with an id never reused, so no entry can ever be stale (cache/README.md).

import { DataError, type DataPath, type WriteOptions } from '../data-path/api.ts';
import type { ChunkRef } from '../directory/model/api.ts';
import type { NeedleRef, NeedleStore } from '../store-node/api.ts';
import type { HotView } from './hot-view.ts';
import { ByteLru } from './lru.ts';
import type { RedisTier } from './redis-tier.ts';

export interface CachingDataPathOptions {
  inner: DataPath;
  needles: NeedleStore;
  view: HotView;
  maxBytes: number;
  maxObjectBytes: number;
  highWatermark?: number;
  lowWatermark?: number;
  redis?: RedisTier;
}

const cacheKey = (c: ChunkRef): string => `${c.volumeId}/${c.needleId}/${c.cookie}`;

export class CachingDataPath implements DataPath {
  readonly lru: ByteLru<Buffer>;
  readonly stats = { promotions: 0, l2Hits: 0, storeFills: 0, dropped: 0 };

  constructor(private readonly o: CachingDataPathOptions) {
    this.lru = new ByteLru<Buffer>({
      maxBytes: o.maxBytes,
      highWatermark: o.highWatermark,
      lowWatermark: o.lowWatermark,
      sizeOf: (b) => b.length + 100,
    });
    o.view.onTable(() => this.prune());
  }

  write(body: AsyncIterable<Buffer>, opts: WriteOptions) {
    return this.o.inner.write(body, opts);
  }

  free(chunks: ChunkRef[]): Promise<void> {
    for (const c of chunks) this.lru.delete(cacheKey(c));
    return this.o.inner.free(chunks);
  }

  async *read(chunks: ChunkRef[], start: number, end: number): AsyncGenerator<Buffer> {
    const c = chunks.length === 1 ? chunks[0]! : undefined;
    if (!c || c.size === 0 || c.size > this.o.maxObjectBytes) {
      yield* this.o.inner.read(chunks, start, end);
      return;
    }
    const k = cacheKey(c);
    const cached = this.lru.get(k);
    if (cached) {
      yield cached.subarray(start, end + 1);
      return;
    }
    const hot = this.o.view.byNeedleId(c.volumeId, c.needleId);
    const level = hot && hot.cookie === c.cookie ? hot.level : undefined;
    const ref: NeedleRef = { volumeId: c.volumeId, needleId: BigInt(c.needleId), cookie: c.cookie };
    if (level === 'gateway') {
      const whole = await this.fill(k, ref, c.size);
      yield whole.subarray(start, end + 1);
      return;
    }
    if (level === 'store') {
      this.stats.storeFills++;
      const whole = start === 0 && end === c.size - 1;
      const r = await this.o.needles.get(ref, whole ? undefined : { start, end }, {
        cache: 'fill',
        expectedSize: whole ? c.size : undefined,
      });
      if (r.data.length !== end - start + 1) throw shortRead(c, r.data.length);
      yield r.data;
      return;
    }
    yield* this.o.inner.read(chunks, start, end);
  }

  /** The whole needle into this gateway: from Redis, else from a store (which drops its copy). */
  private async fill(k: string, ref: NeedleRef, size: number): Promise<Buffer> {
    let data = await this.o.redis?.get(k);
    if (data && data.length === size) this.stats.l2Hits++;
    else {
      data = (await this.o.needles.get(ref, undefined, { cache: 'drop', expectedSize: size })).data;
      if (data.length !== size) throw shortRead(ref, data.length);
      void this.o.redis?.set(k, data);
    }
    if (this.lru.set(k, data)) this.stats.promotions++;
    return data;
  }

  /** Needles no longer at gateway level leave this level (the object cooled). */
  private prune(): void {
    for (const k of [...this.lru.keys()]) {
      const [vid, nid] = k.split('/');
      const hot = this.o.view.byNeedleId(Number(vid), nid!);
      if (hot?.level !== 'gateway' && hot?.level !== 'cooling') {
        this.lru.delete(k);
        this.stats.dropped++;
      }
    }
  }
}

function shortRead(c: { volumeId: number; needleId: string | bigint }, got: number): DataError {
  return new DataError('ShortRead', `chunk ${c.volumeId}/${c.needleId} returned ${got} bytes`);
}
