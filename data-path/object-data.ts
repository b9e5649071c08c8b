// Object bytes ↔ needles. An object is stored as one needle when it fits in a chunk (the
// small-file case this system is for) and as consecutive chunk needles otherwise, so a
// 5 GiB PUT streams through in CHUNK-sized pieces and never sits in memory whole: a write
// holds at most one chunk of its body (the pieces of the chunk being filled, then their
// concatenation while it is stored) and reads no further until that chunk is stored, so
// the body's sender is held back by TCP instead of by our memory. With the gateway's cap
// on concurrent uploads (gateway/limits.ts) that bounds all bodies held at once.
// Nothing here touches metadata: a failed write frees what it stored, and a crash
// before the metadata commit leaves orphan needles, never a visible partial object. The
// stores' errors leave as DataErrors (store-errors.ts), in both wirings.

import { DEFAULT_CONFIG } from '../common/config.ts';
import type { Logger } from '../common/log.ts';
import type { ChunkRef } from '../directory/model/api.ts';
import type { GetResult, NeedleStore } from '../store-node/api.ts';
import { StoreError } from '../store-node/errors.ts';
import { DataError, type DataPath, type WriteOptions } from './api.ts';
import type { Placement } from './placement.ts';
import { toDataError } from './store-errors.ts';

export class ObjectData implements DataPath {
  constructor(
    private readonly store: NeedleStore,
    private readonly placement: Placement,
    private readonly chunkSize = DEFAULT_CONFIG.gateway.chunkSize,
    private readonly log?: Logger,
  ) {}

  async write(
    body: AsyncIterable<Buffer>,
    opts: WriteOptions,
  ): Promise<{ chunks: ChunkRef[]; size: number }> {
    const chunks: ChunkRef[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let size = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      chunks.push(await this.writeChunk(data, opts.contentType, opts.replicaCount));
    };
    try {
      for await (const piece of body) {
        size += piece.length;
        if (size > opts.maxSize) {
          throw new DataError(
            'TooLarge',
            'Your proposed upload exceeds the maximum allowed object size.',
          );
        }
        opts.tap?.(piece);
        let rest = piece;
        while (pendingBytes + rest.length >= this.chunkSize) {
          const take = this.chunkSize - pendingBytes;
          pending.push(rest.subarray(0, take));
          pendingBytes += take;
          rest = rest.subarray(take);
          await flush();
        }
        if (rest.length > 0) {
          pending.push(rest);
          pendingBytes += rest.length;
        }
      }
      await flush();
      return { chunks, size };
    } catch (e) {
      void this.free(chunks);
      throw toDataError(e);
    }
  }

  private async writeChunk(
    data: Buffer,
    contentType?: string,
    replicaCount?: number,
  ): Promise<ChunkRef> {
    for (let attempt = 0; ; attempt++) {
      const ref = await this.placement.assign(data.length, replicaCount);
      try {
        await this.store.put(ref, data, contentType);
        return {
          volumeId: ref.volumeId,
          needleId: ref.needleId.toString(),
          cookie: ref.cookie,
          size: data.length,
        };
      } catch (e) {
        if (attempt >= 3) throw e;
        if (this.placement.writeFailed) {
          if (!this.placement.writeFailed(ref.volumeId, e)) throw e;
        } else {
          const full =
            e instanceof StoreError && (e.code === 'VolumeFull' || e.code === 'VolumeReadOnly');
          if (!full) throw e;
          this.placement.full(ref.volumeId);
        }
      }
    }
  }

  /** Yields the bytes of [start, end] (inclusive) of an object made of `chunks`. */
  async *read(chunks: ChunkRef[], start: number, end: number): AsyncGenerator<Buffer> {
    let base = 0;
    for (const c of chunks) {
      const cEnd = base + c.size - 1;
      if (cEnd >= start && base <= end && c.size > 0) {
        const from = Math.max(start, base) - base;
        const to = Math.min(end, cEnd) - base;
        const ref = { volumeId: c.volumeId, needleId: BigInt(c.needleId), cookie: c.cookie };
        const whole = from === 0 && to === c.size - 1;
        let r: GetResult;
        try {
          r = await this.store.get(
            ref,
            whole ? undefined : { start: from, end: to },
            whole ? { expectedSize: c.size } : undefined,
          );
        } catch (e) {
          throw toDataError(e);
        }
        if (r.data.length !== to - from + 1) {
          throw new DataError(
            'ShortRead',
            `chunk ${c.volumeId}/${c.needleId} returned ${r.data.length} bytes`,
          );
        }
        yield r.data;
      }
      base += c.size;
      if (base > end) break;
    }
  }

  /** Tombstones needles that no committed record refers to any more (best effort). */
  async free(chunks: ChunkRef[]): Promise<void> {
    for (const c of chunks) {
      try {
        await this.store.delete({
          volumeId: c.volumeId,
          needleId: BigInt(c.needleId),
          cookie: c.cookie,
        });
      } catch (e) {
        if (!(e instanceof StoreError && e.code === 'NoSuchNeedle')) {
          this.log?.warn(
            { err: e, chunk: c },
            'could not free a needle; compaction will not reclaim it',
          );
        }
      }
    }
  }
}
