// The directory leader's caretaker for store nodes and volumes. Every interval, on the
// leader only:
//
//  1. A store silent past `offlineAfterMs` is marked offline (gateways then read around it).
//  2. An offline store that heartbeats again is reconciled before it serves: each volume
//     that still lists it is synced from a healthy replica (missing needles copied, deletes
//     applied), then it is marked online.
//  3. A volume with fewer live replicas than its replica count — a replica offline past
//     `rereplicateAfterMs`, or on a node removed for good, or listed with fewer replicas
//     because no node was free when one was lost — is re-homed: made read-only
//     in the directory and sealed on its survivors (so no write can land on a survivor
//     after the copy started), copied from a survivor onto a new node chosen by placement,
//     and recorded with its new replica list (a compare-and-set on the volume's version, so
//     a new leader racing an old one cannot both win). New writes go to fresh volumes.
//  4. A draining store (`admin store drain`, or a StatefulSet scale-down seen by the pod
//     watch) is emptied the same way while it is still up: each volume listing it gets its
//     replica count on other nodes — copied from a healthy replica, or from the draining
//     store itself when it holds the only copy — and is recorded without it; once no volume
//     lists it, it is marked removed.
//  5. A store whose heartbeats carry another incarnation (data directory) than its record is
//     re-registered with it: a removed store's name coming back on a new disk (a StatefulSet
//     scaled down, then up) is re-admitted as offline, and a store online on a disk that is
//     not the one it had is taken offline — either way step 2 reconciles it before it is
//     online (topology-commands.ts registerNode). The same incarnation never undoes a removal.
//  6. Every `sweepIntervalMs`, orphan needles (no record points at them) are reclaimed
//     after a grace period (orphan-sweep.ts).
//
// Every step is idempotent and re-derived from the records each round, so a leader change
// or a crash mid-step only means the next round does it again.
import { DEFAULT_CONFIG } from '../../common/config.ts';
import type { InternalAuth } from '../../common/internal-auth.ts';
import type { Logger } from '../../common/log.ts';
import { type NeedleList, StoreClient } from '../../store-node/client.ts';
import { StoreError } from '../../store-node/errors.ts';
import { MetadataError } from '../model/api.ts';
import { chooseReplicas } from '../model/placement.ts';
import type { NodeRecord, NodeState, VolumeRecord } from '../model/topology.ts';
import { type RaftMetadata, volumeCounts } from '../replica/raft-metadata.ts';
import type { Liveness } from './liveness.ts';
import { type NeedleLister, OrphanSweeper } from './orphan-sweep.ts';

const INCARNATION_RE = /^[A-Za-z0-9._-]{1,64}$/;

export interface ClusterManagerOptions {
  meta: RaftMetadata;
  isLeader: () => boolean;
  liveness: Liveness;
  auth: InternalAuth;
  logger: Logger;
  intervalMs?: number;
  /** Config cluster.offlineAfterMs: the gateways' and allocateVolume's too. */
  offlineAfterMs?: number;
  rereplicateAfterMs?: number;
  /** Per store call (a volume sync can take a while). */
  storeTimeoutMs?: number;
  /** How often orphan needles are looked for (config cluster.orphanSweepMs; 0 = never). */
  sweepIntervalMs?: number;
  /** An orphan is reclaimed once it has been one for this long (config cluster.orphanGraceMs). */
  orphanGraceMs?: number;
}

export class ClusterManager {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private leaderSince = 0;
  readonly stats = {
    offlined: 0,
    reconciled: 0,
    rehomed: 0,
    drained: 0,
    readmitted: 0,
    errors: 0,
    orphansRemoved: 0,
  };
  private readonly sweeper: OrphanSweeper;
  private lastSweep = Date.now();
  private readonly clients = new Map<string, StoreClient>();

  constructor(private readonly o: ClusterManagerOptions) {
    this.sweeper = new OrphanSweeper(
      o.meta,
      this.lister(),
      o.orphanGraceMs ?? DEFAULT_CONFIG.cluster.orphanGraceMs,
    );
  }

  start(): void {
    this.timer = setInterval(
      () => void this.round(),
      this.o.intervalMs ?? DEFAULT_CONFIG.cluster.roundMs,
    );
  }

  stop(): void {
    clearInterval(this.timer);
    for (const c of this.clients.values()) void c.close();
    this.clients.clear();
  }

  /** One pass; exported for tests. Never throws. */
  async round(): Promise<void> {
    if (this.running) return;
    if (!this.o.isLeader()) {
      this.leaderSince = 0;
      return;
    }
    this.running = true;
    try {
      if (this.leaderSince === 0) this.leaderSince = Date.now();
      let nodes = await this.o.meta.listNodes();
      if (await this.trackIncarnations(nodes)) nodes = await this.o.meta.listNodes();
      await this.markOffline(nodes);
      const volumes = await this.o.meta.listVolumes();
      const byId = new Map((await this.o.meta.listNodes()).map((n) => [n.id, n]));
      await this.reconcileReturning([...byId.values()], volumes, byId);
      await this.rehome(await this.o.meta.listVolumes(), byId);
      await this.finishDrains();
      const every = this.o.sweepIntervalMs ?? DEFAULT_CONFIG.cluster.orphanSweepMs;
      if (every > 0 && Date.now() - this.lastSweep >= every) {
        this.lastSweep = Date.now();
        await this.sweepOrphans(byId);
      }
    } catch (e) {
      this.stats.errors++;
      this.o.logger.warn({ err: (e as Error).message }, 'cluster manager round failed');
    } finally {
      this.running = false;
    }
  }

  private silentMs(id: string): number {
    // A replica that just became leader has heard nothing yet from stores that went quiet
    // before: count from the start of its leadership.
    return this.o.liveness.get(id)?.silentMs ?? Date.now() - this.leaderSince;
  }

  private alive(n: NodeRecord): boolean {
    return this.silentMs(n.id) <= (this.o.offlineAfterMs ?? DEFAULT_CONFIG.cluster.offlineAfterMs);
  }

  /**
   * `from` → `to` unless someone (an operator's remove or drain) changed the node since it
   * was read: then false, and their word stands.
   */
  private async moveState(id: string, from: NodeState, to: NodeState): Promise<boolean> {
    try {
      await this.o.meta.setNodeState(id, to, Date.now(), from);
      return true;
    } catch (e) {
      if (e instanceof MetadataError && e.code === 'PreconditionFailed') return false;
      throw e;
    }
  }

  /**
   * Records the incarnation each live store heartbeats with where it differs from its
   * record (registerNode decides what a new one means: re-admission of a removed id, or
   * reconciliation of a disk that changed). True when a record changed.
   */
  private async trackIncarnations(nodes: NodeRecord[]): Promise<boolean> {
    let changed = false;
    for (const n of nodes) {
      const h = this.o.liveness.get(n.id)?.h;
      const inc = h?.incarnation;
      if (!h || typeof inc !== 'string' || !INCARNATION_RE.test(inc)) continue;
      if (inc === n.incarnation || !this.alive(n)) continue;
      const now = Date.now();
      await this.o.meta.registerNode({
        id: n.id,
        url: h.url,
        zone: h.zone,
        capacity: h.capacity,
        state: n.state,
        registeredAt: now,
        stateSince: now,
        incarnation: inc,
      });
      changed = true;
      if (n.state === 'removed') {
        this.stats.readmitted++;
        this.o.logger.warn(
          { node: n.id, incarnation: inc, removedIncarnation: n.incarnation ?? null },
          'removed store back on a new data directory: re-admitted (reconciled, then online)',
        );
      } else if (n.incarnation !== undefined && n.state === 'online') {
        this.o.logger.warn(
          { node: n.id, incarnation: inc, was: n.incarnation },
          'store back on another data directory: offline until reconciled',
        );
      }
    }
    return changed;
  }

  private async markOffline(nodes: NodeRecord[]): Promise<void> {
    for (const n of nodes) {
      if (n.state !== 'online' || this.alive(n)) continue;
      if (!(await this.moveState(n.id, 'online', 'offline'))) continue;
      this.stats.offlined++;
      this.o.logger.warn({ node: n.id, silentMs: this.silentMs(n.id) }, 'store offline');
    }
  }

  private async reconcileReturning(
    nodes: NodeRecord[],
    volumes: VolumeRecord[],
    byId: Map<string, NodeRecord>,
  ): Promise<void> {
    for (const n of nodes) {
      if (n.state !== 'offline' || !this.alive(n)) continue;
      let ok = true;
      for (const v of volumes) {
        if (!v.replicas.includes(n.id)) continue;
        const source = v.replicas
          .map((id) => byId.get(id))
          .find((r) => r && r.id !== n.id && r.state === 'online' && this.alive(r));
        if (!source) continue; // it holds the only live copy: nothing to catch up from
        try {
          await this.store(n.url).syncVolume(v.id, source.url, { deletes: true });
        } catch (e) {
          ok = false;
          this.o.logger.warn(
            { node: n.id, volume: v.id, err: (e as Error).message },
            'reconcile failed',
          );
        }
      }
      if (!ok) continue;
      if (!(await this.moveState(n.id, 'offline', 'online'))) continue;
      this.stats.reconciled++;
      this.o.logger.info({ node: n.id }, 'store reconciled and back online');
    }
  }

  private async rehome(volumes: VolumeRecord[], byId: Map<string, NodeRecord>): Promise<void> {
    const after = this.o.rereplicateAfterMs ?? DEFAULT_CONFIG.cluster.rereplicateAfterMs;
    const healthy = (id: string) => {
      const n = byId.get(id);
      return n !== undefined && n.state === 'online' && this.alive(n);
    };
    const gone = (id: string) => {
      const n = byId.get(id);
      if (!n || n.state === 'removed') return true;
      return n.state === 'offline' && Date.now() - n.stateSince >= after;
    };
    // Draining: leaving on purpose. Up, it is a source like a survivor (with one copy it is
    // the only one); silent, its volumes are copied from the others (or wait for it).
    const draining = (id: string) => byId.get(id)?.state === 'draining';
    const drainSource = (id: string) => {
      const n = byId.get(id);
      return n !== undefined && n.state === 'draining' && this.alive(n);
    };
    for (const v of volumes) {
      const survivors = v.replicas.filter(healthy);
      const lost = v.replicas.filter(gone);
      const leaving = v.replicas.filter(draining);
      // Listed with fewer replicas than its count: trimmed earlier for want of nodes, and
      // topped up here once there are some (unless a listed one is merely offline: wait).
      const trimmed = v.replicas.length < v.replicaCount;
      if (
        lost.length === 0 &&
        leaving.length === 0 &&
        (!trimmed || survivors.length < v.replicas.length)
      ) {
        continue;
      }
      // Survivors first: a draining node is copied from only when it holds the only copy.
      const sources = [...survivors, ...leaving.filter(drainSource)];
      if (sources.length === 0) {
        this.o.logger.error({ volume: v.id }, 'volume has no live replica left');
        continue;
      }
      try {
        await this.rehomeOne(v, survivors, sources, byId);
      } catch (e) {
        this.stats.errors++;
        this.o.logger.warn({ volume: v.id, err: (e as Error).message }, 're-replication failed');
      }
    }
  }

  /**
   * Brings `v` to its replica count on `survivors` plus new nodes, copied from `sources[0]`
   * (the survivors, then draining nodes that are up), and records the new list without the
   * lost and draining replicas. With no node to copy to, the volume keeps its sources.
   */
  private async rehomeOne(
    v: VolumeRecord,
    survivors: string[],
    sources: string[],
    byId: Map<string, NodeRecord>,
  ): Promise<void> {
    const need = Math.max(0, v.replicaCount - survivors.length);
    const held = volumeCounts(await this.o.meta.listVolumes());
    const candidates = [...byId.values()]
      .filter((n) => n.state === 'online' && this.alive(n))
      .map((n) => ({
        ...n,
        used: this.o.liveness.get(n.id)?.h.used ?? 0,
        volumes: held.get(n.id) ?? 0,
      }));
    const zones = survivors.map((id) => byId.get(id)?.zone ?? '');
    const targets = need === 0 ? [] : chooseReplicas(candidates, need, new Set(v.replicas), zones);
    // Trimmed (or draining) already and still no node to copy to: nothing to do until one
    // turns up.
    if (targets === null && sources.length === v.replicas.length && v.state === 'readonly') {
      return;
    }
    let cur = v;
    if (cur.state === 'writable')
      cur = await this.o.meta.updateVolume(v.id, v.version, { state: 'readonly' });
    for (const id of sources) {
      await this.store((byId.get(id) as NodeRecord).url).seal(v.id);
    }
    if (targets === null) {
      this.o.logger.warn({ volume: v.id, need }, 'not enough store nodes to re-replicate');
      // Still drop replicas that are gone for good, keeping the survivors (and a draining
      // node that is up: it leaves once there is somewhere to copy its volumes to).
      if (sources.length < v.replicas.length) {
        await this.o.meta.updateVolume(v.id, cur.version, { replicas: sources });
      }
      return;
    }
    const source = byId.get(sources[0] as string) as NodeRecord;
    for (const t of targets) {
      await this.store(t.url).syncVolume(v.id, source.url);
    }
    await this.o.meta.updateVolume(v.id, cur.version, {
      replicas: [...survivors, ...targets.map((t) => t.id)],
    });
    this.stats.rehomed++;
    this.o.logger.info(
      { volume: v.id, from: source.id, to: targets.map((t) => t.id) },
      'volume re-replicated',
    );
  }

  /** A draining node no volume lists any more has been drained: removed for good. */
  private async finishDrains(): Promise<void> {
    const nodes = (await this.o.meta.listNodes()).filter((n) => n.state === 'draining');
    if (nodes.length === 0) return;
    const volumes = await this.o.meta.listVolumes();
    for (const n of nodes) {
      if (volumes.some((v) => v.replicas.includes(n.id))) continue;
      if (!(await this.moveState(n.id, 'draining', 'removed'))) continue;
      this.stats.drained++;
      this.o.logger.info({ node: n.id }, 'store drained: every volume copied off it; removed');
    }
  }

  /** One orphan pass over the volumes whose replicas are all healthy; for tests too. */
  async sweepOrphans(byId?: Map<string, NodeRecord>, now = Date.now()) {
    const nodes = byId ?? new Map((await this.o.meta.listNodes()).map((n) => [n.id, n]));
    const urlOf = (id: string) => {
      const n = nodes.get(id);
      return n && n.state === 'online' && this.alive(n) ? n.url : undefined;
    };
    const r = await this.sweeper.pass(await this.o.meta.listVolumes(), urlOf, now);
    this.stats.orphansRemoved += r.removed;
    if (r.removed > 0) this.o.logger.info(r, 'orphan needles reclaimed');
    return r;
  }

  private lister(): NeedleLister {
    return {
      list: async (url, vid) => {
        const ids: string[] = [];
        let after: bigint | undefined;
        for (let page = 0; page < 100_000; page++) {
          let r: NeedleList;
          try {
            r = await this.store(url).listNeedles(vid, { after, limit: 10_000 });
          } catch (e) {
            // Allocated in the directory but not created on the store yet: nothing to sweep.
            if (e instanceof StoreError && e.code === 'NoSuchVolume') return ids;
            throw e;
          }
          for (const n of r.needles) ids.push(n.id.toString());
          if (r.next === undefined) break;
          after = r.next;
        }
        return ids;
      },
      remove: async (url, vid, id) => {
        const client = this.store(url);
        try {
          // The store wants the cookie on a delete: read it from the needle itself.
          const { cookie } = await client.getRaw(vid, BigInt(id));
          await client.delete({ volumeId: vid, needleId: BigInt(id), cookie });
        } catch (e) {
          if (!(e instanceof StoreError && e.code === 'NoSuchNeedle')) throw e;
        }
      },
    };
  }

  private store(url: string): StoreClient {
    let c = this.clients.get(url);
    if (!c) {
      c = new StoreClient(
        url,
        this.o.auth,
        this.o.storeTimeoutMs ?? DEFAULT_CONFIG.cluster.syncTimeoutMs,
        4,
      );
      this.clients.set(url, c);
    }
    return c;
  }
}
