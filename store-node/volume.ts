// A Haystack volume: one append-only .dat file of needles plus its .idx accelerator.
// One writer per volume with group commit: every append waiting while the previous batch
// was being written goes out in one writev and one fdatasync, and no promise resolves
// before that fdatasync returns. Reads use the in-memory map and one pread; the map only
// ever points at durable needles, so reads never wait for writes.
import path from 'node:path';
import * as fsx from '../common/fsx.ts';
import { type CompressionMode, decode, maybeCompress } from './codec.ts';
import { StoreError } from './errors.ts';
import { IDX_RECORD_SIZE, putIdxRecord, TOMBSTONE_SIZE } from './index-file.ts';
import {
  Codec,
  encodeNeedleInto,
  FLAG_COMPRESSED,
  FLAG_DELETED,
  NEEDLE_CRC_SIZE,
  NEEDLE_HEADER_SIZE,
  needleDataIntact,
  needleDiskSize,
  needleDiskSizeLarge,
  readNeedleHeader,
  SUPERBLOCK_SIZE,
} from './needle.ts';
import { idParts, type NeedleMap } from './needle-map.ts';

/** Offsets are stored /8 in a u32: a volume can never pass 32 GiB. */
export const HARD_MAX_VOLUME_SIZE = 0xffff_ffff * 8;
export const TOMBSTONE_DISK_SIZE = needleDiskSize(0);
const EMPTY = Buffer.alloc(0);

/**
 * How long a deleted needle id stays refused to new writes: well past the life of any
 * token (300 s either side of its time), so a captured PUT token cannot bring a deleted
 * needle back with other bytes. Ids are never reused by the system itself (the directory
 * hands each out once), so the memory only exists to refuse replays. Bounded to
 * DELETED_MEMORY_MAX ids per volume (≈ 100 B each); past that the oldest are forgotten
 * early. A forgotten id written again is an orphan: no metadata refers to a deleted needle,
 * and the orphan sweep reclaims it.
 */
export const DELETED_MEMORY_MS = 15 * 60_000;
export const DELETED_MEMORY_MAX = 20_000;

export interface VolumeOptions {
  /** Appends that would pass this size fail with VolumeFull (tombstones still fit). */
  maxSize: number;
  /** Off only for experiments: acknowledgements then do not mean durable. */
  fsync: boolean;
  compression: CompressionMode;
  maxBatchBytes: number;
  /** Test hook: called at named steps of compaction so crash tests can kill -9 there. */
  crashPoint?: (step: string) => void;
}

export const DEFAULT_VOLUME_OPTIONS: VolumeOptions = {
  maxSize: 1024 ** 3,
  fsync: true,
  compression: 'auto',
  maxBatchBytes: 8 * 1024 * 1024,
};

/** The file and the map that describes it; compaction swaps in a new one atomically. */
export interface Generation {
  number: number;
  fd: number;
  map: NeedleMap;
  refs: number;
  retired: boolean;
}

interface Pending {
  id: bigint;
  lo: number;
  hi: number;
  cookie: number;
  /** Stored bytes (compressed or not); empty for a tombstone. */
  stored: Buffer;
  originalLength: number;
  flags: number;
  codec: Codec;
  diskSize: number;
  tombstone: boolean;
  /** A repair or re-replication copy: allowed into a sealed (even full) volume. */
  repair: boolean;
  resolve: (offset: number) => void;
  reject: (e: Error) => void;
}

export interface WriteOptions {
  /**
   * Restores a needle another replica holds (scrub repair, re-replication): accepted by a
   * sealed volume, since sealing stops new objects, not the healing of existing ones.
   */
  repair?: boolean;
  /** Overrides the volume's compression (a copy keeps the source's choice). */
  compression?: CompressionMode;
}

export interface WriteResult {
  offset: number;
  storedLength: number;
  compressed: boolean;
}

export interface ReadResult {
  data: Buffer;
  /** Length of the whole object, whatever range was asked for. */
  size: number;
  compressed: boolean;
}

export interface VolumeStats {
  id: number;
  generation: number;
  readOnly: boolean;
  needles: number;
  fileBytes: number;
  liveBytes: number;
  garbageBytes: number;
  garbageRatio: number;
  indexBytes: number;
  compacting: boolean;
}

export class Volume {
  /** @internal */ g: Generation;
  /** @internal durable end of the .dat file */ end: number;
  /** @internal */ idxFd: number;
  /** @internal */ idxEnd: number;
  /** @internal sum of disk sizes of live needles */ liveBytes: number;
  /** @internal */ compacting = false;
  /** @internal settles when the running compaction (if any) ends */
  compactionDone: Promise<unknown> | null = null;
  readOnly: boolean;
  ioErrors = 0;

  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private pauseRequested = false;
  private idxBroken = false;
  /** Set by an I/O error: nothing written after the failed batch may be acknowledged. */
  private readOnlyAfterError = false;
  /** Ids with a write under way: a second write of an id waits for the first (write-once). */
  private readonly writing = new Set<bigint>();
  private readonly waiting = new Map<bigint, Array<() => void>>();
  /** Ids tombstoned here lately → when (ms), oldest first: see DELETED_MEMORY_MS. */
  private readonly recentlyDeleted = new Map<bigint, number>();

  constructor(
    readonly id: number,
    readonly dir: string,
    readonly opts: VolumeOptions,
    state: {
      g: Generation;
      end: number;
      idxFd: number;
      idxEnd: number;
      liveBytes: number;
      readOnly: boolean;
    },
  ) {
    this.g = state.g;
    this.end = state.end;
    this.idxFd = state.idxFd;
    this.idxEnd = state.idxEnd;
    this.liveBytes = state.liveBytes;
    this.readOnly = state.readOnly;
  }

  get datPath(): string {
    return path.join(this.dir, `${this.id}.dat`);
  }

  get needleCount(): number {
    return this.g.map.size;
  }

  stats(): VolumeStats {
    const payload = this.end - SUPERBLOCK_SIZE;
    const garbage = payload - this.liveBytes;
    return {
      id: this.id,
      generation: this.g.number,
      readOnly: this.readOnly,
      needles: this.g.map.size,
      fileBytes: this.end,
      liveBytes: this.liveBytes,
      garbageBytes: garbage,
      garbageRatio: payload > 0 ? garbage / payload : 0,
      indexBytes: this.g.map.byteLength,
      compacting: this.compacting,
    };
  }

  /** Room left for new needles before the volume counts as full. */
  get freeBytes(): number {
    return Math.max(0, this.opts.maxSize - this.end);
  }

  /**
   * Stores a needle. Needle ids are write-once (issue 12 item 2): the directory hands each
   * id out once, so a second write of a live id is either a retry of the same write or a
   * replay of a captured token with other bytes. A retry (same cookie, same bytes) succeeds
   * without writing again; anything else is refused with NeedleExists, and so is an id
   * deleted within DELETED_MEMORY_MS (longer than any token lives). Only a needle whose
   * stored copy is corrupt may be replaced, and repairs (`wo.repair`: scrub repair, sync)
   * may replace a needle of the same cookie.
   */
  async write(
    id: bigint,
    cookie: number,
    data: Buffer,
    contentType?: string,
    wo: WriteOptions = {},
  ): Promise<WriteResult> {
    if (id === 0n) throw new StoreError('InvalidArgument', 'needle id 0 is reserved');
    const repair = wo.repair === true && !this.readOnlyAfterError;
    if (this.readOnly && !repair)
      throw new StoreError('VolumeReadOnly', `volume ${this.id} is read-only`);
    // One write of an id at a time, so the check below sees what the one before it wrote
    // (the map only shows a needle once it is durable). No allocation unless two collide.
    while (this.writing.has(id)) {
      await new Promise<void>((r) => {
        const q = this.waiting.get(id);
        if (q) q.push(r);
        else this.waiting.set(id, [r]);
      });
    }
    this.writing.add(id);
    try {
      const [lo, hi] = idParts(id);
      if (this.g.map.find(lo, hi) >= 0) {
        if (repair) await this.checkOverwrite(id, cookie);
        else {
          const same = await this.checkRetry(id, cookie, data);
          if (same) return same;
        }
      } else if (!repair && this.deletedRecently(id)) {
        throw this.deletedError(id);
      }
      const mode = wo.compression ?? this.opts.compression;
      const { stored, codec } = maybeCompress(data, mode, contentType);
      const diskSize = needleDiskSizeLarge(stored.length);
      if (diskSize > this.opts.maxSize - SUPERBLOCK_SIZE) {
        throw new StoreError('EntityTooLarge', `needle of ${diskSize} bytes exceeds volume size`);
      }
      const flags = codec === Codec.None ? 0 : FLAG_COMPRESSED;
      const offset = await this.enqueue({
        id,
        lo,
        hi,
        cookie,
        stored,
        originalLength: data.length,
        flags,
        codec,
        diskSize,
        tombstone: false,
        repair,
      });
      return { offset, storedLength: stored.length, compressed: codec !== Codec.None };
    } finally {
      this.writing.delete(id);
      const q = this.waiting.get(id);
      if (q) {
        this.waiting.delete(id);
        for (const r of q) r();
      }
    }
  }

  /**
   * Throws what write() would for a needle id that is taken (NeedleExists): live with
   * other bytes or cookie, or deleted lately. A replicated PUT asks before forwarding, so
   * a refused write is refused here, not reported as failed replicas. Advisory: write()
   * decides again under its lock.
   */
  async checkNew(id: bigint, cookie: number, data: Buffer): Promise<void> {
    const [lo, hi] = idParts(id);
    if (this.g.map.find(lo, hi) >= 0) await this.checkRetry(id, cookie, data);
    else if (this.deletedRecently(id)) throw this.deletedError(id);
  }

  /**
   * A write of a live id that is not a repair: the stored needle's result when it holds
   * exactly these bytes under this cookie (a retry), null when its stored copy is corrupt
   * (replace it), NeedleExists otherwise.
   */
  private async checkRetry(id: bigint, cookie: number, data: Buffer): Promise<WriteResult | null> {
    let r: { data: Buffer; compressed: boolean; cookie: number };
    try {
      r = await this.readVerified(id, null, false);
    } catch (e) {
      if (e instanceof StoreError && e.code === 'NeedleCorrupt') return null;
      // Tombstoned between the lookup and the read: deleted, so not written again.
      if (e instanceof StoreError && e.code === 'NoSuchNeedle') throw this.deletedError(id);
      throw e;
    }
    if (r.cookie !== cookie || !r.data.equals(data)) {
      const what = r.cookie !== cookie ? 'another cookie' : 'other bytes';
      throw new StoreError(
        'NeedleExists',
        `needle ${id} in volume ${this.id} exists with ${what}; needles are write-once`,
      );
    }
    const [lo, hi] = idParts(id);
    const slot = this.g.map.find(lo, hi);
    if (slot < 0) throw this.deletedError(id); // tombstoned while we read it
    return {
      offset: this.g.map.offsetAt(slot) * 8,
      storedLength: this.g.map.sizeAt(slot),
      compressed: r.compressed,
    };
  }

  /**
   * A repair may rewrite a live needle only for whoever holds its cookie; a different
   * cookie means two objects were given one id, which must not silently replace the
   * first. A needle whose header is corrupt may be replaced.
   */
  private async checkOverwrite(id: bigint, cookie: number): Promise<void> {
    try {
      await this.readVerified(id, cookie, true);
    } catch (e) {
      if (e instanceof StoreError && (e.code === 'NeedleCorrupt' || e.code === 'NoSuchNeedle'))
        return;
      throw e;
    }
  }

  private deletedError(id: bigint): StoreError {
    return new StoreError(
      'NeedleExists',
      `needle ${id} in volume ${this.id} was deleted; needle ids are not reused`,
    );
  }

  /** Whether the id was tombstoned here within DELETED_MEMORY_MS. */
  private deletedRecently(id: bigint): boolean {
    const at = this.recentlyDeleted.get(id);
    return at !== undefined && Date.now() - at <= DELETED_MEMORY_MS;
  }

  /**
   * @internal Remembers ids as deleted now: tombstones applied here, and those a load
   * found (volume-load.ts), so a restart does not reopen the window either.
   */
  noteDeleted(id: bigint, now = Date.now()): void {
    const m = this.recentlyDeleted;
    m.delete(id); // re-inserted at the end: the map stays in deletion order
    m.set(id, now);
    // Oldest first: drop what has aged out, and the oldest past the cap.
    for (const [k, at] of m) {
      if (m.size <= DELETED_MEMORY_MAX && now - at <= DELETED_MEMORY_MS) break;
      m.delete(k);
    }
  }

  /** Tombstones a needle; the cookie, when given, must match the stored one. */
  async delete(id: bigint, cookie?: number): Promise<void> {
    const [lo, hi] = idParts(id);
    if (this.g.map.find(lo, hi) < 0) throw new StoreError('NoSuchNeedle', `needle ${id} not found`);
    if (cookie !== undefined) {
      try {
        await this.readVerified(id, cookie, true);
      } catch (e) {
        // A needle whose header is corrupt may still be deleted (it is garbage either way).
        if (!(e instanceof StoreError && e.code === 'NeedleCorrupt')) throw e;
      }
    }
    await this.enqueue({
      id,
      lo,
      hi,
      cookie: cookie ?? 0,
      stored: EMPTY,
      originalLength: 0,
      flags: FLAG_DELETED,
      codec: Codec.None,
      diskSize: TOMBSTONE_DISK_SIZE,
      tombstone: true,
      repair: false,
    });
  }

  async read(
    id: bigint,
    cookie: number,
    range?: { start: number; end: number },
  ): Promise<ReadResult> {
    const { data, compressed } = await this.readVerified(id, cookie, false);
    if (!range) return { data, size: data.length, compressed };
    if (range.start < 0 || range.end < range.start || range.start >= data.length) {
      throw new StoreError('InvalidRange', `range ${range.start}-${range.end} of ${data.length}`);
    }
    return {
      data: data.subarray(range.start, Math.min(range.end, data.length - 1) + 1),
      size: data.length,
      compressed,
    };
  }

  /** Whether the id is live in the map (durable, not deleted); says nothing of its bytes. */
  has(id: bigint): boolean {
    const [lo, hi] = idParts(id);
    return this.g.map.find(lo, hi) >= 0;
  }

  /** Reads a needle whatever its cookie (internal copies between replicas). */
  async readRaw(id: bigint): Promise<{ data: Buffer; cookie: number; compressed: boolean }> {
    const r = await this.readVerified(id, null, false);
    return { data: r.data, cookie: r.cookie, compressed: r.compressed };
  }

  /** Size of the stored object without reading its data. */
  async head(id: bigint, cookie: number): Promise<{ size: number; compressed: boolean }> {
    const r = await this.readVerified(id, cookie, true);
    return { size: r.originalLength, compressed: r.compressed };
  }

  private async readVerified(
    id: bigint,
    cookie: number | null,
    headerOnly: boolean,
  ): Promise<{ data: Buffer; originalLength: number; compressed: boolean; cookie: number }> {
    const g = this.g;
    const [lo, hi] = idParts(id);
    const slot = g.map.find(lo, hi);
    if (slot < 0) throw new StoreError('NoSuchNeedle', `needle ${id} not found`);
    const offset = g.map.offsetAt(slot) * 8;
    const size = g.map.sizeAt(slot);
    const buf = Buffer.allocUnsafe(
      headerOnly ? NEEDLE_HEADER_SIZE : NEEDLE_HEADER_SIZE + size + NEEDLE_CRC_SIZE,
    );
    g.refs++;
    let n: number;
    try {
      n = await fsx.pread(g.fd, buf, offset);
    } catch (e) {
      this.ioErrors++;
      throw e;
    } finally {
      this.release(g);
    }
    const h = readNeedleHeader(buf.subarray(0, n), 0);
    if (typeof h === 'string' || h.id !== id || h.dataLength !== size || h.flags & FLAG_DELETED) {
      throw new StoreError('NeedleCorrupt', `needle ${id} in volume ${this.id}: bad header`);
    }
    if (cookie !== null && h.cookie !== cookie)
      throw new StoreError('CookieMismatch', `needle ${id}: wrong cookie`);
    const compressed = (h.flags & FLAG_COMPRESSED) !== 0;
    if (headerOnly)
      return { data: buf, originalLength: h.originalLength, compressed, cookie: h.cookie };
    if (n < buf.length || !needleDataIntact(buf, 0, size)) {
      throw new StoreError('NeedleCorrupt', `needle ${id} in volume ${this.id}: checksum mismatch`);
    }
    const stored = buf.subarray(NEEDLE_HEADER_SIZE, NEEDLE_HEADER_SIZE + size);
    try {
      const data = compressed ? decode(stored, h.codec, h.originalLength) : stored;
      return { data, originalLength: h.originalLength, compressed, cookie: h.cookie };
    } catch (e) {
      throw new StoreError('NeedleCorrupt', `needle ${id}: ${(e as Error).message}`);
    }
  }

  /** @internal */ acquire(): Generation {
    this.g.refs++;
    return this.g;
  }

  /** @internal */ release(g: Generation): void {
    if (--g.refs === 0 && g.retired) void fsx.close(g.fd).catch(() => {});
  }

  private enqueue(p: Omit<Pending, 'resolve' | 'reject'>): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...p, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.readOnlyAfterError) {
      for (const p of this.queue.splice(0))
        p.reject(new StoreError('VolumeReadOnly', `volume ${this.id} had an I/O error`));
      return;
    }
    if (this.flushing || this.pauseRequested || this.queue.length === 0) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = null;
      this.kick();
    });
  }

  /** @internal Stops the writer after its current batch; used by compaction's swap. */
  async pauseWriter(): Promise<void> {
    this.pauseRequested = true;
    while (this.flushing) await this.flushing;
  }

  /** @internal */ resumeWriter(): void {
    this.pauseRequested = false;
    this.kick();
  }

  private takeBatch(): Pending[] {
    let bytes = 0;
    let k = 0;
    while (k < this.queue.length && (k === 0 || bytes < this.opts.maxBatchBytes)) {
      bytes += this.queue[k]!.diskSize;
      k++;
    }
    return this.queue.splice(0, k);
  }

  /**
   * Group commit, pipelined one deep: batch N+1 is written while batch N's fdatasync is
   * in flight, so encoding and writing overlap the sync. Batch N+1's own fdatasync starts
   * only after N's has returned, and each batch is acknowledged (and indexed) only after
   * its own fdatasync, strictly in order. At most one sync and one write are in flight.
   */
  private async flushLoop(): Promise<void> {
    // Only this loop appends, and it starts afresh after every pause, so it can track
    // the written end itself (`end` moves only when a batch is durable).
    let written = this.end;
    let syncing: Promise<void> | null = null;
    try {
      while (this.queue.length > 0 && !this.pauseRequested && !this.readOnlyAfterError) {
        const batch = this.takeBatch();
        const accepted: Pending[] = [];
        const offsets: number[] = [];
        let pos = written;
        for (const p of batch) {
          const limit = p.tombstone || p.repair ? HARD_MAX_VOLUME_SIZE : this.opts.maxSize;
          if (this.readOnly && !p.tombstone && !p.repair) {
            p.reject(new StoreError('VolumeReadOnly', `volume ${this.id} is read-only`));
          } else if (pos + p.diskSize > limit) {
            p.reject(new StoreError('VolumeFull', `volume ${this.id} is full`));
          } else {
            accepted.push(p);
            offsets.push(pos);
            pos += p.diskSize;
          }
        }
        if (accepted.length === 0) continue;
        // One contiguous buffer per batch: a single iovec is several times cheaper for the
        // kernel than hundreds of small ones, and saves an allocation per needle.
        const start = written;
        const out = Buffer.allocUnsafe(pos - start);
        for (let i = 0; i < accepted.length; i++) {
          const p = accepted[i]!;
          encodeNeedleInto(
            out,
            offsets[i]! - start,
            {
              cookie: p.cookie,
              id: p.id,
              dataLength: p.stored.length,
              originalLength: p.originalLength,
              flags: p.flags,
              codec: p.codec,
            },
            p.stored,
          );
        }
        const g = this.g;
        try {
          await fsx.pwritev(g.fd, [out], start);
        } catch (e) {
          this.failWrites(accepted, e as Error);
          break;
        }
        written = pos;
        const previous = syncing;
        if (previous) await previous;
        syncing = this.syncAndApply(g, accepted, offsets, pos);
      }
    } finally {
      if (syncing) await syncing;
    }
  }

  /** fdatasync, then make the batch visible: map, counters, acknowledgements, .idx. */
  private async syncAndApply(
    g: Generation,
    accepted: Pending[],
    offsets: number[],
    end: number,
  ): Promise<void> {
    try {
      if (this.opts.fsync) await fsx.fdatasync(g.fd);
    } catch (e) {
      this.failWrites(accepted, e as Error);
      return;
    }
    if (this.readOnlyAfterError) {
      // An earlier batch failed: what follows it on disk is not acknowledged either.
      for (const p of accepted)
        p.reject(new StoreError('VolumeReadOnly', `volume ${this.id} had an I/O error`));
      return;
    }
    this.end = end;
    const idx = Buffer.allocUnsafe(accepted.length * IDX_RECORD_SIZE);
    for (let i = 0; i < accepted.length; i++) {
      const p = accepted[i]!;
      const off8 = offsets[i]! / 8;
      if (p.tombstone) {
        const prev = g.map.delete(p.lo, p.hi);
        if (prev >= 0) this.liveBytes -= needleDiskSizeLarge(prev);
        this.noteDeleted(p.id);
        putIdxRecord(idx, i, p.lo, p.hi, off8, TOMBSTONE_SIZE);
      } else {
        const prev = g.map.set(p.lo, p.hi, off8, p.stored.length);
        if (prev >= 0) this.liveBytes -= needleDiskSizeLarge(prev);
        this.liveBytes += p.diskSize;
        putIdxRecord(idx, i, p.lo, p.hi, off8, p.stored.length);
      }
    }
    for (let i = 0; i < accepted.length; i++) accepted[i]!.resolve(offsets[i]!);
    // No fsync: the .idx is rebuilt from the fsync'd .dat past its last good record.
    // After a failed append it stays frozen, so the next load rescans from there.
    if (this.idxBroken) return;
    try {
      await fsx.pwritev(this.idxFd, [idx], this.idxEnd);
      this.idxEnd += idx.length;
    } catch {
      this.ioErrors++;
      this.idxBroken = true;
    }
  }

  /**
   * The tail past `end` is now unknown: stop accepting writes rather than risk
   * acknowledging needles next to a region the disk may have half-written.
   */
  private failWrites(accepted: Pending[], e: Error): void {
    this.ioErrors++;
    this.readOnly = true;
    this.readOnlyAfterError = true;
    for (const p of accepted) p.reject(e);
    for (const p of this.queue.splice(0))
      p.reject(new StoreError('VolumeReadOnly', `volume ${this.id} had an I/O error`));
  }

  /** Flushes what is queued and closes the files. */
  async close(): Promise<void> {
    // A compaction holds the writer paused and owns file descriptors until it ends.
    while (this.compactionDone) await this.compactionDone.catch(() => {});
    while (this.flushing || this.queue.length > 0) {
      this.kick();
      if (this.flushing) await this.flushing;
      else await new Promise((r) => setImmediate(r));
    }
    this.g.retired = true;
    if (this.g.refs === 0) await fsx.close(this.g.fd);
    await fsx.close(this.idxFd);
  }
}
