// Where new needles go in a cluster: a small pool of writable volumes per replica count,
// each allocated by the directory (replicas on distinct online nodes, distinct zones when
// possible) and created on its replica stores. Writes round-robin over the pool, so one
// slow volume does not serialize a gateway. A volume leaves the pool when it fills, when
// the directory marks it read-only, when one of its replicas goes down (a write to it
// would fail at the primary's forward), or when a write to it failed: the next write goes
// to a volume that can take it, and a new volume replaces it in the background.

import { DEFAULT_CONFIG } from '../common/config.ts';
import type { Logger } from '../common/log.ts';
import { randomU32 } from '../common/random-pool.ts';
import { MetadataError, type MetadataStore } from '../directory/model/api.ts';
import type { ClusterDirectory } from '../directory/model/topology.ts';
import type { NeedleRef } from '../store-node/api.ts';
import { StoreError, type StoreErrorCode } from '../store-node/errors.ts';
import type { ClusterNeedleStore } from './cluster-store.ts';
import type { Placement } from './placement.ts';

export type PlacementDirectory = Pick<ClusterDirectory, 'allocateVolume' | 'getVolume'> &
  Pick<MetadataStore, 'allocateNeedleIds'>;

export interface ClusterPlacementOptions {
  directory: PlacementDirectory;
  store: ClusterNeedleStore;
  log?: Logger;
  /** Replicas of a new volume unless assign() says otherwise (config gateway.replicas). */
  replicaCount?: number;
  /** Writable volumes kept per replica count (default 2). */
  poolSize?: number;
  /** Pooled volumes' directory records are re-read this often (config gateway.viewRefreshMs). */
  refreshMs?: number;
}

interface Pool {
  volumes: number[];
  next: number;
  filling: Promise<void> | null;
}

const ID_BLOCK = 10_000;
/** Volumes tried per fill before giving up (a chosen node may be down but not yet known). */
const FILL_ATTEMPTS = 3;

/** Store errors that say the request itself is wrong: another volume would refuse it too. */
const NOT_RETRYABLE = new Set<StoreErrorCode>(['InvalidArgument', 'EntityTooLarge', 'Forbidden']);

/**
 * Whether a failed needle write is worth another try on another volume: the volume is full
 * or read-only, a replica failed (ReplicaWriteFailed), or the store could not be reached.
 * A failed replicated write leaves at most orphan copies, which no metadata refers to.
 */
export function retryableWrite(e: unknown): boolean {
  return !(e instanceof StoreError && NOT_RETRYABLE.has(e.code));
}

export class ClusterPlacement implements Placement {
  private readonly pools = new Map<number, Pool>();
  private readonly replicaCount: number;
  private readonly poolSize: number;
  private next = 0n;
  private end = 0n;
  private refill: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null;
  private refreshing = false;

  constructor(private readonly o: ClusterPlacementOptions) {
    this.replicaCount = o.replicaCount ?? DEFAULT_CONFIG.gateway.replicas;
    this.poolSize = o.poolSize ?? 2;
    this.timer = setInterval(
      () => void this.refresh(),
      o.refreshMs ?? DEFAULT_CONFIG.gateway.viewRefreshMs,
    );
    this.timer.unref();
  }

  async assign(_size: number, replicaCount = this.replicaCount): Promise<NeedleRef> {
    const volumeId = await this.pickVolume(replicaCount);
    while (this.next >= this.end) {
      this.refill ??= this.o.directory
        .allocateNeedleIds(ID_BLOCK)
        .then((b) => {
          this.next = b.first;
          this.end = b.first + BigInt(b.count);
        })
        .finally(() => {
          this.refill = null;
        });
      await this.refill;
    }
    const needleId = this.next++;
    return { volumeId, needleId, cookie: randomU32() };
  }

  /** The volume refused a write as full or read-only: stop using it. */
  full(volumeId: number): void {
    this.drop(volumeId);
  }

  /**
   * A write to `volumeId` failed with `err`: true when the caller should retry on another
   * volume (this one is out of the pool then), false when the error is the request's own.
   */
  writeFailed(volumeId: number, err: unknown): boolean {
    if (!retryableWrite(err)) return false;
    for (const id of this.culprits(volumeId, err)) this.o.store.view.suspect(id);
    this.drop(volumeId);
    return true;
  }

  /**
   * Which nodes made a write fail: the replicas a replicated write reports as failed, or
   * the primary when it could not be reached at all. Every other pooled volume on them is
   * then skipped too, not just this one.
   */
  private culprits(volumeId: number, err: unknown): string[] {
    const view = this.o.store.view;
    if (err instanceof StoreError) {
      if (err.code !== 'ReplicaWriteFailed') return [];
      const failed = (err.details?.failed ?? []) as Array<{ url?: unknown }>;
      return failed
        .map((f) => (typeof f.url === 'string' ? view.nodeIdByUrl(f.url) : undefined))
        .filter((id): id is string => id !== undefined);
    }
    const primary = view.cachedVolume(volumeId)?.replicas[0];
    return primary === undefined ? [] : [primary];
  }

  /** Volumes in the pool for `replicaCount` (tests, metrics). */
  pooled(replicaCount = this.replicaCount): number[] {
    return [...(this.pools.get(replicaCount)?.volumes ?? [])];
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private pool(replicaCount: number): Pool {
    let p = this.pools.get(replicaCount);
    if (!p) {
      p = { volumes: [], next: 0, filling: null };
      this.pools.set(replicaCount, p);
    }
    return p;
  }

  private async pickVolume(replicaCount: number): Promise<number> {
    const pool = this.pool(replicaCount);
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      const ok = pool.volumes.filter((v) => this.writable(v));
      if (ok.length > 0) {
        if (ok.length < this.poolSize) {
          this.fill(pool, replicaCount).catch((e) =>
            this.o.log?.warn({ err: e, replicaCount }, 'could not add a volume to the pool'),
          );
        }
        return ok[pool.next++ % ok.length]!;
      }
      if (attempt >= FILL_ATTEMPTS) break;
      try {
        // The volume the last fill added is not writable in this gateway's view: a replica
        // looked down or late at the last refresh, which the directory, that just chose it,
        // does not think. Look again before asking for yet another volume on the same nodes.
        if (attempt > 0) await this.o.store.view.refreshNodes();
        await this.fill(pool, replicaCount);
      } catch (e) {
        // The directory's answer (too few nodes, no leader) would not change at once.
        if (e instanceof MetadataError) throw e;
        lastError = e;
      }
    }
    throw (
      lastError ??
      new StoreError('ReplicaWriteFailed', `no writable volume (${replicaCount} replicas)`)
    );
  }

  /** Writable per the directory and every replica up, as this gateway last saw them. */
  private writable(volumeId: number): boolean {
    const v = this.o.store.view.cachedVolume(volumeId);
    return (
      v !== undefined &&
      v.state === 'writable' &&
      v.replicas.every((id) => this.o.store.view.usable(id))
    );
  }

  /** Adds one volume to the pool; concurrent callers share the allocation. */
  private fill(pool: Pool, replicaCount: number): Promise<void> {
    pool.filling ??= (async () => {
      const rec = await this.o.directory.allocateVolume(
        replicaCount,
        this.o.store.view.suspected(),
      );
      const vol = this.o.store.view.learn(rec, rec.urls);
      try {
        await this.o.store.createOnReplicas(vol);
      } catch (e) {
        // The directory keeps the (empty) volume; nothing will write to it.
        this.o.log?.warn(
          { err: e, volume: rec.id },
          'could not create a new volume on its replicas',
        );
        await this.o.store.view.refreshNodes().catch(() => {});
        throw e;
      }
      pool.volumes.push(rec.id);
      this.o.log?.info(
        { volume: rec.id, replicas: rec.replicas },
        'volume added to the write pool',
      );
    })().finally(() => {
      pool.filling = null;
    });
    return pool.filling;
  }

  private drop(volumeId: number): void {
    for (const p of this.pools.values()) {
      const i = p.volumes.indexOf(volumeId);
      if (i >= 0) p.volumes.splice(i, 1);
    }
  }

  /** Re-reads the pooled volumes' records (read-only, re-replicated) and drops unfit ones. */
  private async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      const ids = [...this.pools.values()].flatMap((p) => p.volumes);
      await Promise.all(ids.map((id) => this.o.store.view.volume(id, true).catch(() => null)));
      for (const id of ids) {
        if (!this.writable(id)) {
          this.o.log?.info(
            { volume: id },
            'volume left the write pool (read-only or a replica down)',
          );
          this.drop(id);
        }
      }
    } finally {
      this.refreshing = false;
    }
  }
}
