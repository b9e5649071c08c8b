// Read counting and the hot-object policy (cache/README.md, "Read counting and the policy").
// Gateways report their reads per object every cache.reportMs (reportReads); this adds
// them up per inspection period — periods aligned to the wall clock, index
// floor(now / periodMs) — in memory: counts are advice, and a Raft proposal per report
// would cost more than the reads it saves. What it decides goes to the replicated hot table
// (putHotObject / deleteHotObject), which every report is answered with.
//
// Runs on the directory leader (its tick started and stopped with the replica, acting only
// while leader; counts start empty on each new leadership) and in the embedded server's own
// process over its LevelDB, where there are no other stores and so no extra replicas.
//
// Per object, with c its reads this period (all gateways):
//   c ≥ replicateThreshold (single-chunk, ≤ maxObjectBytes) → at least 'replicas';
//   c ≥ cacheThreshold → 'store'; cacheThreshold more while at 'store' → 'gateway'.
// At a period's end, by the reads of the period that ended, an object under its level's
// threshold steps down: gateway → cooling (then replicas or off), store → replicas or
// off, replicas → off. Cooling lasts 2 × S + leaseMs (S = 4 × reportMs): gateways stop
// caching it at once, but writers wait while any gateway's copy may still be alive.
import type { Config } from '../../common/config.ts';
import type { Logger } from '../../common/log.ts';
import type { MetadataStore, ObjectRecord } from '../model/api.ts';
import {
  type HotObjectRecord,
  type HotSnapshot,
  hotObjectKey,
  type ReadReport,
} from '../model/hot.ts';
import { ChangeTable, sameRow } from './change-table.ts';
import { confirmRenewals, tableDelta } from './hot-answers.ts';
import { type ExtraReplicaOps, HotExtras } from './hot-extras.ts';
import { checkReport, type EndedPeriod, ReadCounts } from './read-counts.ts';

export type { ExtraReplicaOps } from './hot-extras.ts';

export type HotMeta = {
  /** Many records at once (lease renewals); without it, getObject each. */
  getObjects?: (keys: [bucket: string, key: string][]) => Promise<(ObjectRecord | null)[]>;
} & Pick<
  MetadataStore,
  | 'getObject'
  | 'getVolume'
  | 'listNodes'
  | 'putHotObject'
  | 'deleteHotObject'
  | 'listHotObjects'
  | 'setExtraReplicas'
  | 'listExtraReplicas'
>;

export interface HotnessOptions {
  /**
   * The policy's reads and writes. On a Raft leader its reads may come straight from the
   * leader's applied state (no read-index round each): the leader wrote every hot-table
   * change itself, and a moment's lag behind object writes only delays a re-pointing.
   */
  meta: HotMeta;
  /** Linearizable reads for the answers to reports (the lease protocol needs them); default meta. */
  reportMeta?: Pick<HotMeta, 'listHotObjects' | 'listExtraReplicas'>;
  /**
   * Resolves once this replica has confirmed its leadership with a quorum and applied what
   * was committed before the call (a Raft read-index barrier). With it, reports are answered
   * from the leader's own copy of the table, which it alone writes.
   */
  barrier?: () => Promise<void>;
  cache: Config['cache'];
  /** Absent in the embedded server: no other stores, no extra replicas. */
  extra?: ExtraReplicaOps;
  log: Logger;
  now?: () => number;
  /** Acts only while this says so (the Raft leader); default always. */
  isLeader?: () => boolean;
}

export interface HotStats {
  extraAdded: number;
  extraRemoved: number;
  promotions: number;
  demotions: number;
  reports: number;
  trackedObjects: number;
}

export interface HotStatus {
  period: { index: number; startsAt: number; periodMs: number };
  /** The hottest objects this period. */
  top: Array<{ bucket: string; key: string; reads: number }>;
  stats: HotStats;
  /** The last stats each gateway reported, and when. */
  gateways: Record<string, { at: number; stats: Record<string, number> }>;
  /** The settings the policy runs with. */
  policy: Pick<
    Config['cache'],
    | 'enabled'
    | 'replicateThreshold'
    | 'cacheThreshold'
    | 'maxExtraReplicas'
    | 'maxObjectBytes'
    | 'leaseMs'
    | 'reportMs'
  > & { coolingMs: number };
}

/** An object found unfit for the policy is looked up again after this long. */
const UNFIT_RECHECK_MS = 60_000;
/** Concurrent hot-table reads of one tick (one per hot object to follow its writes). */
const READ_CONCURRENCY = 8;
/** Every this many ticks the policy re-reads the whole table and every hot object. */
const FULL_EVERY = 20;

export class Hotness {
  readonly stats: HotStats = {
    extraAdded: 0,
    extraRemoved: 0,
    promotions: 0,
    demotions: 0,
    reports: 0,
    trackedObjects: 0,
  };
  private readonly now: () => number;
  private readonly counts: ReadCounts;
  private leading = false;
  private ticking = false;
  /** Objects found unfit (multi-chunk, large, gone) and when: not looked up every tick. */
  private readonly unfit = new Map<string, number>();
  /** The hot table as of the running tick, kept up by the tick's own writes. */
  private readonly recs = new ChangeTable<HotObjectRecord>();
  private readonly extras: HotExtras | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastSweep = 0;
  /** This leadership's name; `recs` and the extras' table are this leadership's once loaded. */
  private epoch = '';
  private loadedEpoch = '';
  /** Hot-table writes proposed and not yet reflected in `recs` (a report waits for them). */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Objects gateways reported writing: the next tick re-reads them. */
  private written = new Map<string, [string, string]>();
  private ticks = 0;

  constructor(private readonly o: HotnessOptions) {
    this.now = o.now ?? Date.now;
    this.counts = new ReadCounts(Math.max(1, o.cache.periodMs), this.now);
    if (o.extra) {
      this.extras = new HotExtras({
        meta: o.meta,
        ops: o.extra,
        log: o.log,
        now: this.now,
        stats: this.stats,
        maxExtraReplicas: o.cache.maxExtraReplicas,
        graceMs: this.staleMs,
        track: (p) => this.track(p),
        wanted: (r) => {
          const cur = this.recs.get(hotObjectKey(r.bucket, r.key));
          return cur !== undefined && keepsExtras(cur) && cur.needleId === r.needleId;
        },
      });
    }
  }

  /** README's S: a gateway's table older than this is no guide. */
  private get staleMs(): number {
    return 4 * this.o.cache.reportMs;
  }

  /** How long an object cools: gateways' copies of the record may live this long. */
  get coolingMs(): number {
    return 2 * this.staleMs + this.o.cache.leaseMs;
  }

  /** Ticks every cache.reportMs (the leader's directory replica). */
  start(): void {
    this.timer ??= setInterval(() => void this.tick(), Math.max(10, this.o.cache.reportMs));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Copy jobs finished (tests). */
  async idle(): Promise<void> {
    await this.extras?.idle();
  }

  /** A new leadership counts from nothing; a former leader forgets its counts. */
  private checkLeadership(): boolean {
    const lead = this.o.isLeader?.() ?? true;
    if (lead !== this.leading) {
      this.epoch = lead ? Math.random().toString(36).slice(2, 10) : '';
      this.loadedEpoch = '';
      this.written.clear();
      this.counts.reset();
      this.unfit.clear();
      this.extras?.reset();
      this.stats.trackedObjects = 0;
    }
    this.leading = lead;
    return lead;
  }

  /**
   * Adds a gateway's counts and answers the hot table. The answer is linearizable: it
   * reflects every hot-table change committed before the call arrived, because it is read
   * through meta's reads — on a Raft replica those take a ReadIndex barrier first (the
   * leader confirms with a quorum that it still leads, and answers once it has applied
   * at least the commit index it had when the call came), on LevelMetadata they read the
   * committed database. So a change the policy committed (e.g. gateway → cooling) is in
   * every answer to a report sent after the commit: the lease rules build on this.
   */
  async report(r: ReadReport): Promise<HotSnapshot> {
    checkReport(r);
    const timing = { periodMs: this.o.cache.periodMs, leaseMs: this.o.cache.leaseMs };
    if (this.o.cache.enabled && this.checkLeadership()) {
      this.counts.add(r);
      for (const [b, k] of r.written ?? []) this.written.set(hotObjectKey(b, k), [b, k]);
      this.stats.trackedObjects = this.counts.size;
      this.stats.reports++;
      // From memory: every write committed before this call is a promise in `inflight`
      // or already in `recs`; the barrier proves this replica still led after the call came.
      const epoch = this.epoch;
      if (this.loadedEpoch === epoch && this.o.barrier) {
        await Promise.all([...this.inflight]);
        await this.o.barrier();
        if (this.epoch === epoch && this.loadedEpoch === epoch && this.checkLeadership()) {
          // After the barrier the local state holds every write committed before the call.
          const renewed = await confirmRenewals(this.o.meta, r);
          const version = `${epoch}:${this.recs.seq}:${this.extras?.version ?? 0}`;
          if (r.have === version)
            return { objects: [], extra: [], ...timing, version, unchanged: true, ...renewed };
          const delta = tableDelta(epoch, r.have, this.recs, this.extras);
          if (delta) return { ...delta, ...timing, version, ...renewed };
          return {
            objects: [...this.recs.values()],
            extra: this.extras?.rows() ?? [],
            ...timing,
            version,
            ...renewed,
          };
        }
      }
    }
    const m = this.o.reportMeta ?? this.o.meta;
    const [objects, extra] = await Promise.all([m.listHotObjects(), m.listExtraReplicas()]);
    // Without a barrier, meta reads the committed database itself (the embedded server).
    const renewed = this.o.barrier ? {} : await confirmRenewals(this.o.meta, r);
    return { objects, extra, ...timing, ...renewed };
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  /** One round of decisions; never throws (a failure is logged, the next tick retries). */
  async tick(): Promise<void> {
    if (this.ticking || !this.o.cache.enabled || !this.checkLeadership()) return;
    this.ticking = true;
    try {
      this.counts.roll();
      this.stats.trackedObjects = this.counts.size;
      // The whole table is (re)read at the start of a leadership, after a barrier (so it
      // holds what former leaders committed), and every FULL_EVERY ticks; in between the
      // leader's copy is kept up by its own writes, the only ones the table gets.
      const full = this.loadedEpoch !== this.epoch || this.ticks++ % FULL_EVERY === 0;
      if (full) {
        const epoch = this.epoch;
        await this.o.barrier?.();
        const rows = await this.o.meta.listHotObjects();
        this.recs.replace(new Map(rows.map((r) => [hotObjectKey(r.bucket, r.key), r])), sameRow);
        await this.extras?.load();
        if (this.epoch === epoch) this.loadedEpoch = epoch;
      }
      const nodes = this.extras ? await this.o.meta.listNodes() : [];
      const urlOf = (id: string) => nodes.find((n) => n.id === id)?.url;
      const dropExtras = async (r: { volumeId: number; needleId: string }) =>
        this.extras?.drop(r.volumeId, r.needleId, urlOf);
      for (const e of this.counts.takeEnded()) await this.endPeriod(e, dropExtras);
      await this.endCooling();
      await this.followWrites(dropExtras, full);
      await this.decide();
      if (this.extras) {
        // No new copies for objects at gateway level: their reads are served from the
        // gateways' memory, a store sees only a gateway's first read or a miss. Copies made
        // before the promotion stay while the object stays hot.
        await this.extras.tend([...this.recs.values()].filter(keepsExtras), nodes, (r) => {
          return r.level !== 'gateway';
        });
        await this.extras.runDeletes();
        if (this.now() - this.lastSweep >= 30 * this.staleMs) {
          this.lastSweep = this.now();
          await this.extras.sweep(nodes);
        }
      }
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'hot-object round failed');
    } finally {
      this.ticking = false;
    }
  }

  private async put(r: HotObjectRecord): Promise<void> {
    await this.track(
      this.o.meta.putHotObject(r).then(() => {
        this.recs.set(hotObjectKey(r.bucket, r.key), r);
      }),
    );
  }

  private async remove(r: HotObjectRecord): Promise<void> {
    await this.track(
      this.o.meta.deleteHotObject(r.bucket, r.key).then(() => {
        this.recs.delete(hotObjectKey(r.bucket, r.key));
      }),
    );
  }

  /** Leaving gateway level: cooling first (see the header), `next` after it. */
  private cool(r: HotObjectRecord, next: 'replicas' | 'store' | null): HotObjectRecord {
    return { ...r, level: 'cooling', next, since: this.now(), reads: 0 };
  }

  private async endPeriod(
    e: EndedPeriod,
    dropExtras: (r: HotObjectRecord) => Promise<void>,
  ): Promise<void> {
    const t = this.o.cache;
    // Counts begun mid-period (a new leader, a restart) would demote objects whose reads
    // went to the former leader: such a period demotes nothing.
    if (!this.counts.sawWhole(e.index)) return;
    for (const r of [...this.recs.values()]) {
      const c = e.counts.get(hotObjectKey(r.bucket, r.key))?.reads ?? 0;
      const replicated = c >= t.replicateThreshold;
      if (r.level === 'cooling') {
        const next = !replicated
          ? null
          : c < t.cacheThreshold && r.next === 'store'
            ? 'replicas'
            : r.next;
        if (next === (r.next ?? null)) continue;
        await this.put({ ...r, next });
        if (next === null) await dropExtras(r);
        continue;
      }
      const threshold = r.level === 'replicas' ? t.replicateThreshold : t.cacheThreshold;
      if (c >= threshold) continue;
      this.stats.demotions++;
      if (r.level === 'gateway') await this.put(this.cool(r, replicated ? 'replicas' : null));
      else if (r.level === 'store' && replicated) {
        await this.put({ ...r, level: 'replicas', since: this.now(), reads: 0 });
      } else await this.remove(r);
      if (!replicated) await dropExtras(r);
    }
  }

  private async endCooling(): Promise<void> {
    for (const r of [...this.recs.values()]) {
      if (r.level !== 'cooling' || this.now() < r.since + this.coolingMs) continue;
      if (!r.next) {
        await this.remove(r);
        continue;
      }
      const reads = this.counts.reads(hotObjectKey(r.bucket, r.key));
      const { next: _, ...rest } = r;
      await this.put({ ...rest, level: r.next, since: this.now(), reads });
    }
  }

  /**
   * Follows overwrites and deletes: a hot record is re-pointed at its object's new needle
   * (the old needle's extra copies removed), or leaves the table — through cooling if
   * gateways may hold its record.
   */
  private async followWrites(
    dropExtras: (r: HotObjectRecord) => Promise<void>,
    all: boolean,
  ): Promise<void> {
    // The objects gateways reported writing; all of them now and then (a gateway that died
    // between its write and its next report).
    const written = this.written;
    this.written = new Map();
    const recs = all
      ? [...this.recs.values()]
      : [...written.keys()].flatMap((k) => {
          const r = this.recs.get(k);
          return r ? [r] : [];
        });
    const m = this.o.meta;
    const objs = m.getObjects
      ? await m.getObjects(recs.map((r): [string, string] => [r.bucket, r.key]))
      : await mapBounded(recs, READ_CONCURRENCY, (r) => this.o.meta.getObject(r.bucket, r.key));
    for (const [i, r] of recs.entries()) {
      const obj = objs[i];
      const ch = obj?.chunks.length === 1 ? obj.chunks[0] : undefined;
      const fit = ch !== undefined && obj != null && obj.size <= this.o.cache.maxObjectBytes;
      const k = hotObjectKey(r.bucket, r.key);
      if (fit) this.unfit.delete(k);
      else this.unfit.set(k, this.now()); // not brought back by its reads while so
      if (fit && ch.volumeId === r.volumeId && ch.needleId === r.needleId) continue;
      if (fit) {
        await this.put({
          ...r,
          volumeId: ch.volumeId,
          needleId: ch.needleId,
          cookie: ch.cookie,
          size: obj.size,
        });
      } else if (r.level === 'gateway') await this.put(this.cool(r, null));
      else if (r.level === 'cooling') {
        if (r.next) await this.put({ ...r, next: null });
      } else await this.remove(r);
      await dropExtras(r);
    }
  }

  /** Promotions by this period's reads so far. */
  private async decide(): Promise<void> {
    const t = this.o.cache;
    for (const [k, { bucket, key, reads: c }] of [...this.counts.entries()]) {
      if (c < t.replicateThreshold) continue;
      const r = this.recs.get(k);
      const now = this.now();
      if (now - (this.unfit.get(k) ?? Number.NEGATIVE_INFINITY) < UNFIT_RECHECK_MS) continue;
      if (!r) {
        const obj = await this.o.meta.getObject(bucket, key);
        const ch = obj?.chunks.length === 1 ? obj.chunks[0] : undefined;
        if (!obj || !ch || obj.size > t.maxObjectBytes) {
          this.unfit.set(k, now);
          continue;
        }
        const level = c >= t.cacheThreshold ? 'store' : 'replicas';
        await this.put({
          bucket,
          key,
          volumeId: ch.volumeId,
          needleId: ch.needleId,
          cookie: ch.cookie,
          size: obj.size,
          level,
          since: now,
          reads: c,
        });
        continue;
      }
      if (r.level === 'replicas' && c >= t.cacheThreshold) {
        await this.put({ ...r, level: 'store', since: now, reads: c });
      } else if (r.level === 'store') {
        // Reads since it went to store level, this period (from 0 in a later period).
        const base =
          Math.floor(r.since / this.counts.periodMs) === this.counts.period ? r.reads : 0;
        if (c - base < t.cacheThreshold) continue;
        await this.put({ ...r, level: 'gateway', since: now, reads: c });
        this.stats.promotions++;
      } else if (r.level === 'cooling') {
        // Hot again while cooling: it comes back at the level its reads earn, after cooling.
        const want = c >= t.cacheThreshold ? 'store' : 'replicas';
        const more = want === 'store' ? r.next !== 'store' : r.next == null;
        if (more) await this.put({ ...r, next: want });
      }
    }
  }

  /** For GET /cluster/cache. */
  status(): HotStatus {
    const { period, periodMs } = this.counts;
    const c = this.o.cache;
    return {
      period: { index: period, startsAt: period * periodMs, periodMs },
      top: this.counts.top(20),
      stats: { ...this.stats },
      gateways: this.counts.gatewayStats(),
      policy: {
        enabled: c.enabled,
        replicateThreshold: c.replicateThreshold,
        cacheThreshold: c.cacheThreshold,
        maxExtraReplicas: c.maxExtraReplicas,
        maxObjectBytes: c.maxObjectBytes,
        leaseMs: c.leaseMs,
        reportMs: c.reportMs,
        coolingMs: this.coolingMs,
      },
    };
  }
}

/** Levels whose needles keep extra replicas (cooling: if it comes back to one). */
function keepsExtras(r: HotObjectRecord): boolean {
  return r.level === 'cooling' ? r.next != null : true;
}

async function mapBounded<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}
