// Extra replicas of hot needles (cache/README.md, "replicas" level): the leader copies a
// hot object's needle onto up to cache.maxExtraReplicas stores that do not hold its volume,
// and lists a store in the replicated xrep table only once it holds the copy. Copies are
// made in the background, a few at a time, so a slow store never holds up the policy.
//
// Removal is two steps: the xrep entry first (gateways stop reading there with their next
// table), the copies on the stores once every gateway's table has moved on. Copies the
// table does not list — a job cut short by a leader change, a store dropped from the table
// while offline — are found by a sweep of the stores' own lists and removed.

import { DEFAULT_CONFIG } from '../../common/config.ts';
import type { InternalAuth } from '../../common/internal-auth.ts';
import type { Logger } from '../../common/log.ts';
import type { NeedleRef } from '../../store-node/api.ts';
import { StoreClient } from '../../store-node/client.ts';
import { StoreError } from '../../store-node/errors.ts';
import type { MetadataStore } from '../model/api.ts';
import { type ExtraReplicaRecord, type HotObjectRecord, hotNeedleKey } from '../model/hot.ts';
import { chooseReplicas } from '../model/placement.ts';
import type { NodeRecord } from '../model/topology.ts';
import { ChangeTable, sameRow, type TableDelta } from './change-table.ts';
import type { Liveness } from './liveness.ts';

/** What the policy needs of the stores; absent where there are none (embedded). */
export interface ExtraReplicaOps {
  /** Heard from lately: may take a copy now. */
  alive(id: string): boolean;
  /** Bytes in use (least used stores are chosen first). */
  used(id: string): number;
  /** The needle's bytes, from a store holding its volume. */
  read(url: string, ref: NeedleRef): Promise<Buffer>;
  write(url: string, ref: NeedleRef, data: Buffer, contentType?: string): Promise<void>;
  /** Resolves when the copy is gone (or was never there). */
  remove(url: string, ref: NeedleRef): Promise<void>;
  /** The extra copies the store holds. */
  list(url: string): Promise<Array<{ volumeId: number; needleId: string; cookie: number }>>;
  close?(): Promise<void>;
}

export type ExtrasMeta = Pick<
  MetadataStore,
  'getObject' | 'getVolume' | 'setExtraReplicas' | 'listExtraReplicas'
>;

export interface ExtraStats {
  extraAdded: number;
  extraRemoved: number;
}

export interface HotExtrasOptions {
  meta: ExtrasMeta;
  ops: ExtraReplicaOps;
  log: Logger;
  now: () => number;
  stats: ExtraStats;
  maxExtraReplicas: number;
  /** How long gateways may still route reads by an older table: copies outlive entries so. */
  graceMs: number;
  /** Copy jobs at once (default 4). */
  maxJobs?: number;
  /** Whether the policy still wants extra replicas of this record's needle, now. */
  wanted(rec: HotObjectRecord): boolean;
  /** Told of every table write in flight (reports wait for them before answering). */
  track?: <T>(p: Promise<T>) => Promise<T>;
}

const refOf = (r: { volumeId: number; needleId: string; cookie: number }): NeedleRef => ({
  volumeId: r.volumeId,
  needleId: BigInt(r.needleId),
  cookie: r.cookie,
});

export class HotExtras {
  /** The xrep table as the leader knows it (loaded each tick, kept up by its own writes). */
  private readonly table = new ChangeTable<ExtraReplicaRecord>();
  /** Serial number of the last local write per needle: a load does not undo a newer one. */
  private readonly writes = new Map<string, number>();
  private seq = 0;
  private readonly jobs = new Map<string, Promise<void>>();
  /** Per needle, one table change at a time (a job's listing vs. a removal). */
  private readonly locks = new Map<string, Promise<unknown>>();
  private deletes: Array<{ url: string; store: string; rec: ExtraReplicaRecord; at: number }> = [];
  private readonly failedAt = new Map<string, number>();
  /** Unlisted copies seen by the last sweep: removed when the next one sees them again. */
  private suspects = new Set<string>();

  constructor(private readonly o: HotExtrasOptions) {}

  /** Replaces the table with the committed one, keeping entries this leader wrote since. */
  async load(): Promise<void> {
    const mark = this.seq++;
    const rows = await this.o.meta.listExtraReplicas();
    const next = new Map(rows.map((r) => [hotNeedleKey(r.volumeId, r.needleId), r]));
    for (const [k, s] of this.writes) {
      // Older writes are in what was just read: no later load needs them (the map stays small).
      if (s <= mark) {
        this.writes.delete(k);
        continue;
      }
      const mine = this.table.get(k);
      if (mine) next.set(k, mine);
      else next.delete(k);
    }
    this.table.replace(next, sameRow);
  }

  get(volumeId: number, needleId: string): ExtraReplicaRecord | undefined {
    return this.table.get(hotNeedleKey(volumeId, needleId));
  }

  /** Forgets in-memory work of a former leadership (its jobs finish on their own). */
  reset(): void {
    this.deletes = [];
    this.suspects.clear();
    this.failedAt.clear();
  }

  /** Resolves when no copy job is running (tests). */
  async idle(): Promise<void> {
    for (let i = 0; i < 100 && this.jobs.size > 0; i++) await Promise.all(this.jobs.values());
  }

  private async locked<T>(k: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(k) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(k, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(k) === tail) this.locks.delete(k);
    }
  }

  private async write(rec: ExtraReplicaRecord): Promise<void> {
    const k = hotNeedleKey(rec.volumeId, rec.needleId);
    const p = this.o.meta.setExtraReplicas(rec).then(() => {
      this.writes.set(k, ++this.seq);
      if (rec.stores.length === 0) this.table.delete(k);
      else this.table.set(k, rec);
    });
    await (this.o.track ? this.o.track(p) : p);
  }

  /** Changes with every change of the table: part of the hot table's version. */
  get version(): number {
    return this.table.seq;
  }

  /** The entries changed and the needles (`volumeId/needleId`) removed after `version`. */
  since(version: number): TableDelta<ExtraReplicaRecord> | null {
    return this.table.since(version);
  }

  /** The table as this leader knows it. */
  rows(): ExtraReplicaRecord[] {
    return [...this.table.values()];
  }

  /**
   * Drops the needle's entry now and its copies once gateways' tables have moved on. A copy
   * job still running for the needle lists nothing once the policy no longer wants it
   * (`wanted`, checked under the same lock) and schedules its copies' removal itself.
   */
  async drop(volumeId: number, needleId: string, urlOf: (id: string) => string | undefined) {
    const k = hotNeedleKey(volumeId, needleId);
    await this.locked(k, async () => {
      const e = this.table.get(k);
      if (!e) return;
      await this.write({ ...e, stores: [] });
      this.o.stats.extraRemoved += e.stores.length;
      for (const s of e.stores) this.scheduleDelete(e, s, urlOf(s));
    });
  }

  private scheduleDelete(rec: ExtraReplicaRecord, store: string, url: string | undefined): void {
    if (url) this.deletes.push({ url, store, rec, at: this.o.now() + this.o.graceMs });
  }

  /**
   * One pass: entries of needles no record wants are dropped, stores no longer online are
   * dropped from entries (their copies wait for the sweep), and records short of extra
   * replicas get copy jobs. `wants` are the records whose needles keep extra replicas;
   * only those `grow` accepts get new copies.
   */
  async tend(
    wants: HotObjectRecord[],
    nodes: NodeRecord[],
    grow: (r: HotObjectRecord) => boolean = () => true,
  ): Promise<void> {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const urlOf = (id: string) => byId.get(id)?.url;
    const wanted = new Map(wants.map((r) => [hotNeedleKey(r.volumeId, r.needleId), r]));
    for (const [k, e] of [...this.table.entries()]) {
      if (this.jobs.has(k)) continue;
      if (!wanted.has(k)) {
        await this.drop(e.volumeId, e.needleId, urlOf);
        continue;
      }
      const online = e.stores.filter((s) => byId.get(s)?.state === 'online');
      if (online.length === e.stores.length) continue;
      await this.locked(k, async () => {
        const cur = this.table.get(k);
        if (!cur) return;
        const keep = cur.stores.filter((s) => online.includes(s));
        await this.write({ ...cur, stores: keep });
        this.o.stats.extraRemoved += cur.stores.length - keep.length;
        this.o.log.info(
          { needle: k, dropped: cur.stores.filter((s) => !keep.includes(s)) },
          'extra replicas on stores no longer online dropped',
        );
      });
    }
    const now = this.o.now();
    for (const [k, rec] of wanted) {
      if (this.jobs.size >= (this.o.maxJobs ?? 4)) break;
      if (this.jobs.has(k) || !grow(rec)) continue;
      const have = this.table.get(k)?.stores ?? [];
      if (have.length >= this.o.maxExtraReplicas) continue;
      // A needle whose copy failed is retried after a while, not every tick.
      if (now - (this.failedAt.get(k) ?? Number.NEGATIVE_INFINITY) < 10 * this.o.graceMs) continue;
      const vol = await this.o.meta.getVolume(rec.volumeId);
      if (!vol) continue;
      const holders = vol.replicas
        .map((id) => byId.get(id))
        .filter((n): n is NodeRecord => n !== undefined && n.state !== 'removed');
      const sources = holders.filter((n) => this.o.ops.alive(n.id)).map((n) => n.url);
      if (sources.length === 0) continue;
      const taken = new Set([...vol.replicas, ...have]);
      const candidates = nodes
        .filter((n) => n.state === 'online' && !taken.has(n.id) && this.o.ops.alive(n.id))
        .map((n) => ({ ...n, used: this.o.ops.used(n.id) }));
      const need = Math.min(this.o.maxExtraReplicas - have.length, candidates.length);
      if (need === 0) continue;
      // Distinct zones first (those of the volume's replicas and earlier copies taken), then
      // the least used: the same rule as a volume's replicas.
      const zones = [...taken].map((id) => byId.get(id)?.zone ?? '');
      const targets = chooseReplicas(candidates, need, new Set(), zones) ?? [];
      const job = this.copy(rec, sources, targets, urlOf).finally(() => this.jobs.delete(k));
      this.jobs.set(k, job);
    }
  }

  /** Copies the needle to `targets`, then lists those that took it. Never throws. */
  private async copy(
    rec: HotObjectRecord,
    sources: string[],
    targets: NodeRecord[],
    urlOf: (id: string) => string | undefined,
  ): Promise<void> {
    const k = hotNeedleKey(rec.volumeId, rec.needleId);
    const ref = refOf(rec);
    try {
      const obj = await this.o.meta.getObject(rec.bucket, rec.key);
      const ch = obj?.chunks.length === 1 ? obj.chunks[0] : undefined;
      if (!ch || ch.volumeId !== rec.volumeId || ch.needleId !== rec.needleId) return;
      let data: Buffer | undefined;
      let lastErr: unknown;
      for (const url of sources) {
        try {
          data = await this.o.ops.read(url, ref);
          break;
        } catch (e) {
          lastErr = e;
        }
      }
      if (!data) throw lastErr ?? new Error('no source for the needle');
      const done: string[] = [];
      for (const t of targets) {
        try {
          await this.o.ops.write(t.url, ref, data, obj?.contentType);
          done.push(t.id);
        } catch (e) {
          this.o.log.warn(
            { needle: k, store: t.id, err: (e as Error).message },
            'extra copy failed',
          );
        }
      }
      if (done.length < targets.length) this.failedAt.set(k, this.o.now());
      if (done.length === 0) return;
      await this.locked(k, async () => {
        // Overwritten or cooled while copying: nothing listed, the copies go again.
        if (!this.o.wanted(rec)) {
          for (const id of done) this.scheduleDelete({ ...rec, stores: [] }, id, urlOf(id));
          return;
        }
        const prev = this.table.get(k);
        const stores = [...new Set([...(prev?.stores ?? []), ...done])];
        const entry: ExtraReplicaRecord = {
          volumeId: rec.volumeId,
          needleId: rec.needleId,
          cookie: rec.cookie,
          stores,
          bucket: rec.bucket,
          key: rec.key,
        };
        await this.write(entry);
        this.o.stats.extraAdded += done.length;
      });
      this.o.log.info(
        { needle: k, object: `${rec.bucket}/${rec.key}`, to: done },
        'extra replicas made',
      );
    } catch (e) {
      this.failedAt.set(k, this.o.now());
      this.o.log.warn({ needle: k, err: (e as Error).message }, 'extra replicas not made');
    }
  }

  /** Removes the copies whose grace has passed, unless listed again meanwhile. */
  async runDeletes(): Promise<void> {
    const now = this.o.now();
    const due = this.deletes.filter((d) => d.at <= now);
    if (due.length === 0) return;
    this.deletes = this.deletes.filter((d) => d.at > now);
    for (const d of due) {
      if (this.get(d.rec.volumeId, d.rec.needleId)?.stores.includes(d.store)) continue;
      try {
        await this.o.ops.remove(d.url, refOf(d.rec));
      } catch (e) {
        // Left for the sweep, which finds every unlisted copy.
        this.o.log.warn({ store: d.store, err: (e as Error).message }, 'extra copy not removed');
      }
    }
  }

  /**
   * Removes copies on `nodes` (online ones) that no entry lists, no job is making and no
   * removal is scheduled for, once two sweeps in a row have seen them.
   */
  async sweep(nodes: NodeRecord[]): Promise<number> {
    const seen = new Set<string>();
    let removed = 0;
    for (const n of nodes) {
      if (n.state !== 'online' || !this.o.ops.alive(n.id)) continue;
      let copies: Awaited<ReturnType<ExtraReplicaOps['list']>>;
      try {
        copies = await this.o.ops.list(n.url);
      } catch {
        continue; // a store without extra replicas (older build) or unreachable
      }
      for (const c of copies) {
        const k = hotNeedleKey(c.volumeId, c.needleId);
        if (this.jobs.has(k) || this.table.get(k)?.stores.includes(n.id)) continue;
        if (
          this.deletes.some(
            (d) => d.store === n.id && hotNeedleKey(d.rec.volumeId, d.rec.needleId) === k,
          )
        ) {
          continue;
        }
        const id = `${n.id} ${k}`;
        if (!this.suspects.has(id)) {
          seen.add(id);
          continue;
        }
        try {
          await this.o.ops.remove(n.url, refOf(c));
          removed++;
        } catch {
          seen.add(id); // next time
        }
      }
    }
    this.suspects = seen;
    return removed;
  }
}

/** ExtraReplicaOps over the stores' HTTP API (StoreClient), with liveness from heartbeats. */
export function storeExtraOps(o: {
  auth: InternalAuth;
  liveness: Liveness;
  aliveMs: number;
  timeoutMs?: number;
}): ExtraReplicaOps {
  const clients = new Map<string, StoreClient>();
  const client = (url: string) => {
    let c = clients.get(url);
    if (!c) {
      c = new StoreClient(url, o.auth, o.timeoutMs ?? DEFAULT_CONFIG.cache.extraCopyTimeoutMs, 4);
      clients.set(url, c);
    }
    return c;
  };
  return {
    alive: (id) => o.liveness.isAlive(id, o.aliveMs),
    used: (id) => o.liveness.get(id)?.h.used ?? 0,
    read: async (url, ref) => Buffer.from((await client(url).get(ref)).data),
    write: async (url, ref, data, contentType) => {
      await client(url).putExtra(ref, data, contentType);
    },
    remove: async (url, ref) => {
      try {
        await client(url).deleteExtra(ref);
      } catch (e) {
        if (!(e instanceof StoreError && e.code === 'NoSuchNeedle')) throw e;
      }
    },
    list: async (url) => {
      const r = await client(url).listExtra();
      return r.needles.map((x) => ({
        volumeId: x.volumeId,
        needleId: String(x.needleId),
        cookie: x.cookie,
      }));
    },
    close: async () => {
      await Promise.all([...clients.values()].map((c) => c.close()));
      clients.clear();
    },
  };
}
