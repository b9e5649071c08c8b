// A store node's volumes: load them all at start, create/seal on request, roll over to a
// new volume when the writable one fills, and run compaction and scrub in the background.
import fs from 'node:fs/promises';
import * as fsx from '../common/fsx.ts';
import { type CompactResult, compactVolume } from './compaction.ts';
import { StoreError } from './errors.ts';
import { ExtraReplicas } from './extra-replicas.ts';
import {
  type CacheHint,
  NeedleCache,
  type NeedleCacheOptions,
  sliceRange,
} from './needle-cache.ts';
import type { NeedleRef } from './needle-ref.ts';
import { type ScrubResult, scrubVolume } from './scrub.ts';
import {
  DEFAULT_VOLUME_OPTIONS,
  type ReadResult,
  type Volume,
  type VolumeOptions,
  type VolumeStats,
  type WriteOptions,
  type WriteResult,
} from './volume.ts';
import { createVolume, openVolume, volumePaths } from './volume-load.ts';

export interface StoreOptions extends VolumeOptions {
  /** Compact a volume when this share of its bytes is garbage… */
  compactGarbageRatio: number;
  /** …and the garbage is at least this large. */
  compactMinGarbageBytes: number;
  /** How often to look for volumes to compact; 0 disables. */
  compactCheckMs: number;
  /** How often to scrub every volume; 0 disables. */
  scrubIntervalMs: number;
  /** The store-level needle cache (needle-cache.ts); none when absent. */
  cache?: NeedleCacheOptions;
}

export const DEFAULT_STORE_OPTIONS: StoreOptions = {
  ...DEFAULT_VOLUME_OPTIONS,
  compactGarbageRatio: 0.3,
  compactMinGarbageBytes: 16 * 1024 * 1024,
  compactCheckMs: 60_000,
  scrubIntervalMs: 24 * 3600_000,
};

/** Good bytes of a needle from another replica; the hook has already checked their CRC. */
export interface RepairSource {
  cookie: number;
  data: Buffer;
  contentType?: string;
  /** Whether the source stored it compressed (the copy then makes the same choice). */
  compressed?: boolean;
}

/** Finds a good copy of a corrupt needle elsewhere; null when no replica has one. */
export type RepairHook = (vid: number, needleId: bigint) => Promise<RepairSource | null>;

export interface StoreStatus {
  capacityBytes: number;
  freeBytes: number;
  volumes: VolumeStats[];
  needles: number;
  liveBytes: number;
  garbageBytes: number;
  indexBytes: number;
  lastScrub: { at: string; checked: number; corrupt: string[]; repaired: string[] } | null;
}

export class Store {
  private readonly vols = new Map<number, Volume>();
  private current: number | null = null;
  private rolling: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private maintenance: Promise<unknown> = Promise.resolve();
  lastScrub: { at: Date; results: ScrubResult[] } | null = null;
  /** Set by the cluster wiring: scrub then rewrites corrupt needles from another replica. */
  repairHook: RepairHook | null = null;
  /** Needles rewritten from another replica since start. */
  repairedNeedles = 0;
  /** Hot needles kept in memory on the directory's hint; null without opts.cache. */
  readonly cache: NeedleCache | null;
  /** Copies of hot needles of volumes this node does not hold (extra-replicas.ts). */
  extras!: ExtraReplicas;

  private constructor(
    readonly dir: string,
    readonly opts: StoreOptions,
  ) {
    this.cache = opts.cache
      ? new NeedleCache(opts.cache, (r) => this.isLive(r.volumeId, r.needleId))
      : null;
  }

  static async open(dir: string, opts: Partial<StoreOptions> = {}): Promise<Store> {
    const s = new Store(dir, { ...DEFAULT_STORE_OPTIONS, ...opts });
    await fs.mkdir(dir, { recursive: true });
    const ids: number[] = [];
    for (const name of await fs.readdir(dir)) {
      const m = /^(\d+)\.(dat|dat\.tmp)$/.exec(name);
      if (!m) continue;
      if (m[2] === 'dat.tmp') await fs.rm(`${dir}/${name}`, { force: true });
      else ids.push(Number(m[1]));
    }
    ids.sort((a, b) => a - b);
    try {
      for (const id of ids) s.vols.set(id, await openVolume(dir, id, s.opts));
      s.extras = await ExtraReplicas.open(dir);
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  /** Starts background compaction checks and scrubs (timers do not hold the process). */
  startMaintenance(): void {
    if (this.opts.compactCheckMs > 0) {
      const t = setInterval(
        () => this.serially(() => this.compactIfNeeded()),
        this.opts.compactCheckMs,
      );
      this.timers.push(t.unref());
    }
    if (this.opts.scrubIntervalMs > 0) {
      const t = setInterval(() => this.serially(() => this.scrub()), this.opts.scrubIntervalMs);
      this.timers.push(t.unref());
    }
  }

  private serially(task: () => Promise<unknown>): void {
    this.maintenance = this.maintenance.then(task).catch(() => {});
  }

  volumeIds(): number[] {
    return [...this.vols.keys()].sort((a, b) => a - b);
  }

  volume(id: number): Volume {
    const v = this.vols.get(id);
    if (!v) throw new StoreError('NoSuchVolume', `volume ${id} does not exist`);
    return v;
  }

  async createVolume(id: number): Promise<Volume> {
    if (!Number.isInteger(id) || id < 1 || id > 0xffff_ffff) {
      throw new StoreError('InvalidArgument', `volume id ${id} out of range`);
    }
    if (this.vols.has(id)) throw new StoreError('VolumeExists', `volume ${id} exists`);
    const v = await createVolume(this.dir, id, this.opts);
    this.vols.set(id, v);
    return v;
  }

  /** Marks a volume read-only for good (it still accepts deletes). */
  async seal(id: number): Promise<void> {
    const v = this.volume(id);
    if (v.readOnly) return;
    const fd = await fsx.open(volumePaths(this.dir, id).sealed, 'w');
    await fsx.close(fd);
    await fsx.fsyncDir(this.dir);
    v.readOnly = true;
  }

  write(
    vid: number,
    id: bigint,
    cookie: number,
    data: Buffer,
    ct?: string,
    wo?: WriteOptions,
  ): Promise<WriteResult> {
    return this.volume(vid).write(id, cookie, data, ct, wo);
  }

  /**
   * A needle's bytes: from the cache when it holds them (the hint says whether to keep or
   * drop them there), else from its volume, else from an extra copy.
   */
  read(
    vid: number,
    id: bigint,
    cookie: number,
    range?: { start: number; end: number },
    opts: { cache?: CacheHint } = {},
  ): Promise<ReadResult> {
    const load = (r?: { start: number; end: number }) => this.readStored(vid, id, cookie, r);
    if (!this.cache) return load(range);
    return this.cache.read({ volumeId: vid, needleId: id, cookie }, range, opts.cache, load);
  }

  private async readStored(
    vid: number,
    id: bigint,
    cookie: number,
    range?: { start: number; end: number },
  ): Promise<ReadResult> {
    try {
      return await this.volume(vid).read(id, cookie, range);
    } catch (e) {
      if (!this.extraFallback(e, vid, id)) throw e;
    }
    const data = await this.extras.read({ volumeId: vid, needleId: id, cookie });
    return sliceRange({ data, size: data.length, compressed: false }, range);
  }

  /** Whether a failed volume read may be answered by an extra copy held here. */
  private extraFallback(e: unknown, vid: number, id: bigint): boolean {
    return (
      e instanceof StoreError &&
      (e.code === 'NoSuchVolume' || e.code === 'NoSuchNeedle') &&
      this.extras.has(vid, id)
    );
  }

  async head(
    vid: number,
    id: bigint,
    cookie: number,
  ): Promise<{ size: number; compressed: boolean }> {
    try {
      return await this.volume(vid).head(id, cookie);
    } catch (e) {
      if (!this.extraFallback(e, vid, id)) throw e;
    }
    return { ...this.extras.head({ volumeId: vid, needleId: id, cookie }), compressed: false };
  }

  /** Whether the needle is live here, in its volume or as an extra copy. */
  isLive(vid: number, id: bigint): boolean {
    return (this.vols.get(vid)?.has(id) ?? false) || this.extras.has(vid, id);
  }

  /**
   * Tombstones a needle, and drops its cached and extra copies here. A node holding only an
   * extra copy deletes that.
   */
  async delete(vid: number, id: bigint, cookie?: number): Promise<void> {
    let volumeError: unknown = null;
    try {
      await this.volume(vid).delete(id, cookie);
    } catch (e) {
      if (!this.extraFallback(e, vid, id)) throw e;
      volumeError = e;
    }
    this.cache?.dropNeedle(vid, id);
    const dropped = await this.extras.delete(vid, id, cookie);
    if (volumeError && !dropped) throw volumeError;
    this.extras.noteDeleted(vid, id);
  }

  /** Stores an extra copy of a needle (placed here by the directory for a hot object). */
  putExtra(
    ref: NeedleRef,
    data: Buffer,
    contentType?: string,
    signedAt?: number,
  ): Promise<{ created: boolean }> {
    return this.extras.put(ref, data, contentType, signedAt);
  }

  /** Removes an extra copy and any cached copy of it; false when there was none. */
  async deleteExtra(vid: number, id: bigint): Promise<boolean> {
    const dropped = await this.extras.delete(vid, id);
    // A needle still live in a volume here keeps its cached copy.
    if (dropped && !this.vols.get(vid)?.has(id)) this.cache?.dropNeedle(vid, id);
    return dropped;
  }

  /**
   * Appends to whichever volume is writable, creating the next one when it fills up.
   * Used when this node places needles itself (embedded mode, benchmarks).
   */
  async append(
    id: bigint,
    cookie: number,
    data: Buffer,
    ct?: string,
  ): Promise<WriteResult & { volumeId: number }> {
    for (let attempt = 0; attempt < 4; attempt++) {
      const vid = await this.writableVolume();
      try {
        return { ...(await this.write(vid, id, cookie, data, ct)), volumeId: vid };
      } catch (e) {
        if (!(e instanceof StoreError) || (e.code !== 'VolumeFull' && e.code !== 'VolumeReadOnly'))
          throw e;
        if (this.current === vid) await this.roll(vid);
      }
    }
    throw new StoreError('VolumeFull', 'no writable volume after rolling over');
  }

  private async writableVolume(): Promise<number> {
    while (this.rolling) await this.rolling;
    if (this.current === null) {
      const writable = this.volumeIds().filter((id) => !this.vols.get(id)!.readOnly);
      if (writable.length > 0) this.current = writable[writable.length - 1]!;
      else await this.roll(null);
    }
    return this.current!;
  }

  private async roll(full: number | null): Promise<void> {
    if (this.rolling) return this.rolling;
    this.rolling = (async () => {
      if (full !== null) await this.seal(full);
      const next = Math.max(0, ...this.volumeIds()) + 1;
      await this.createVolume(next);
      this.current = next;
    })().finally(() => {
      this.rolling = null;
    });
    return this.rolling;
  }

  compact(vid: number): Promise<CompactResult> {
    return compactVolume(this.volume(vid));
  }

  async compactIfNeeded(): Promise<CompactResult[]> {
    const done: CompactResult[] = [];
    for (const id of this.volumeIds()) {
      const v = this.vols.get(id)!;
      const s = v.stats();
      if (
        !v.compacting &&
        s.garbageRatio >= this.opts.compactGarbageRatio &&
        s.garbageBytes >= this.opts.compactMinGarbageBytes
      ) {
        done.push(await compactVolume(v));
      }
    }
    return done;
  }

  async scrub(vid?: number): Promise<ScrubResult[]> {
    const ids = vid === undefined ? this.volumeIds() : [this.volume(vid).id];
    const results: ScrubResult[] = [];
    for (const id of ids) {
      const r = await scrubVolume(this.vols.get(id)!);
      r.repaired = await this.repairNeedles(id, r.corrupt);
      results.push(r);
    }
    if (vid === undefined) this.lastScrub = { at: new Date(), results };
    return results;
  }

  /** Rewrites corrupt needles from the repair hook; returns the ids now good again. */
  private async repairNeedles(vid: number, corrupt: bigint[]): Promise<bigint[]> {
    const hook = this.repairHook;
    const repaired: bigint[] = [];
    if (!hook) return repaired;
    for (const id of corrupt) {
      try {
        const src = await hook(vid, id);
        if (!src) continue;
        const v = this.volume(vid);
        await v.write(id, src.cookie, src.data, src.contentType, {
          repair: true,
          compression: src.compressed === false ? 'off' : undefined,
        });
        // Only what reads back intact counts as repaired.
        const back = await v.read(id, src.cookie);
        if (!back.data.equals(src.data)) continue;
        repaired.push(id);
        this.repairedNeedles++;
      } catch {
        // Left corrupt: the scrub result still lists it and the next scrub tries again.
      }
    }
    return repaired;
  }

  async status(): Promise<StoreStatus> {
    const st = await fs.statfs(this.dir);
    const volumes = this.volumeIds().map((id) => this.vols.get(id)!.stats());
    const sum = (f: (v: VolumeStats) => number) => volumes.reduce((a, v) => a + f(v), 0);
    return {
      capacityBytes: st.blocks * st.bsize,
      freeBytes: st.bavail * st.bsize,
      volumes,
      needles: sum((v) => v.needles),
      liveBytes: sum((v) => v.liveBytes),
      garbageBytes: sum((v) => v.garbageBytes),
      indexBytes: sum((v) => v.indexBytes),
      lastScrub: this.lastScrub && {
        at: this.lastScrub.at.toISOString(),
        checked: this.lastScrub.results.reduce((a, r) => a + r.checked, 0),
        corrupt: this.lastScrub.results.flatMap((r) =>
          r.corrupt.map((id) => `${r.volumeId}/${id}`),
        ),
        repaired: this.lastScrub.results.flatMap((r) =>
          r.repaired.map((id) => `${r.volumeId}/${id}`),
        ),
      },
    };
  }

  ioErrors(): number {
    let n = 0;
    for (const v of this.vols.values()) n += v.ioErrors;
    return n;
  }

  async close(): Promise<void> {
    this.cache?.close();
    for (const t of this.timers) clearInterval(t);
    await this.maintenance;
    for (const v of this.vols.values()) await v.close();
    this.vols.clear();
  }
}
