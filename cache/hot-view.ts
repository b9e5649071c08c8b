// A gateway's view of the directory's hot table, and its read counts on the way there.
// Every `reportMs` it sends the counts gathered since the last report and gets the table
// back (reportReads, answered by the directory leader). The lease rules of cache/README.md
// live here: which objects this gateway may answer from its own record copy, and which
// writes must wait for every other gateway's copy to expire.
import type { Logger } from '../common/log.ts';
import type {
  ExtraReplicaRecord,
  HotObjectRecord,
  HotSnapshot,
  ReadReport,
} from '../directory/model/hot.ts';

export interface HotSource {
  reportReads(r: ReadReport): Promise<HotSnapshot>;
}

export interface HotViewOptions {
  source: HotSource;
  gateway: string;
  reportMs: number;
  leaseMs: number;
  log?: Logger;
  /**
   * This gateway is the only one (embedded): its own writes drop its copies, so it caches
   * at once and never waits.
   */
  exclusive?: boolean;
  /** Extra numbers sent with each report (the gateway's cache stats). */
  stats?: () => Record<string, number>;
  now?: () => number;
}

/**
 * Whoever holds record copies under leases (the ObjectCache): asked at each report which
 * copies to renew, told which the directory confirmed.
 */
export interface LeaseRenewer {
  collect(now: number): RenewBatch | undefined;
  renewed(batch: RenewBatch, flags: boolean[], sentAt: number): void;
}

export interface RenewBatch {
  renew: NonNullable<ReadReport['renew']>;
}

export const objectKey = (bucket: string, key: string): string => `${bucket}\n${key}`;

/** objectKey's bucket and key again (bucket names hold no newline). */
export function splitObjectKey(k: string): [bucket: string, key: string] {
  const i = k.indexOf('\n');
  return [k.slice(0, i), k.slice(i + 1)];
}
export const needleKey = (volumeId: number, needleId: string): string => `${volumeId}/${needleId}`;

/** Most counted objects sent in one report; the long tail of single reads is not news. */
const MAX_REPORTED = 20_000;

export class HotView {
  /** Send time of the request whose answer `objects` is: freshness counts from there. */
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private readonly objects = new Map<string, HotObjectRecord>();
  private readonly byNeedle = new Map<string, HotObjectRecord>();
  private readonly extra = new Map<string, ExtraReplicaRecord>();
  /** When this gateway first received each object at gateway level (receipt time). */
  private readonly gatewaySince = new Map<string, number>();
  private counts = new Map<string, number>();
  private written = new Map<string, [string, string]>();
  /** The version of the table held, sent with each report (an unchanged one is not resent). */
  private version: string | undefined;
  private timer?: NodeJS.Timeout;
  private inFlight?: Promise<void>;
  private readonly now: () => number;
  private readonly listeners: (() => void)[] = [];
  private renewer?: LeaseRenewer;
  readonly stats = { reports: 0, reportErrors: 0 };

  constructor(private readonly o: HotViewOptions) {
    this.now = o.now ?? Date.now;
  }

  /** A table answer older than this is no guide: 4 missed reports (README "S"). */
  get staleMs(): number {
    return 4 * this.o.reportMs;
  }

  start(): void {
    this.timer = setInterval(() => void this.refresh().catch(() => {}), this.o.reportMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  count(bucket: string, key: string): void {
    const k = objectKey(bucket, key);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  /** An object this gateway wrote: the directory re-reads it at its next round. */
  wrote(bucket: string, key: string): void {
    this.written.set(objectKey(bucket, key), [bucket, key]);
  }

  /** Who gets its record leases renewed by the reports (one). */
  setRenewer(r: LeaseRenewer): void {
    this.renewer = r;
  }

  /** One report and table refresh (one at a time). */
  refresh(): Promise<void> {
    this.inFlight ??= this.report().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async report(): Promise<void> {
    const taken = this.counts;
    this.counts = new Map();
    const written = this.written;
    this.written = new Map();
    let entries = [...taken];
    if (entries.length > MAX_REPORTED) {
      entries = entries.sort((a, b) => b[1] - a[1]).slice(0, MAX_REPORTED);
    }
    const counts: ReadReport['counts'] = entries.map(([k, n]) => {
      const [bucket, key] = splitObjectKey(k);
      return [bucket, key, n];
    });
    const sentAt = this.now();
    const batch = this.renewer?.collect(sentAt);
    let snap: HotSnapshot;
    try {
      snap = await this.o.source.reportReads({
        gateway: this.o.gateway,
        counts,
        stats: this.o.stats?.(),
        ...(written.size > 0 ? { written: [...written.values()] } : {}),
        ...(this.version ? { have: this.version } : {}),
        ...(batch ? { renew: batch.renew } : {}),
      });
    } catch (e) {
      // The counts go back: the next report carries them.
      for (const [k, n] of taken) this.counts.set(k, (this.counts.get(k) ?? 0) + n);
      for (const [k, w] of written) this.written.set(k, w);
      this.stats.reportErrors++;
      this.o.log?.debug({ err: (e as Error).message }, 'read report failed');
      throw e;
    }
    this.stats.reports++;
    this.install(snap, sentAt);
    if (batch && snap.renewed?.length === batch.renew.length) {
      this.renewer?.renewed(batch, snap.renewed, sentAt);
    }
  }

  private install(snap: HotSnapshot, sentAt: number): void {
    if (snap.unchanged && snap.version === this.version) {
      this.fetchedAt = Math.max(this.fetchedAt, sentAt);
      return;
    }
    if (snap.delta && this.version !== undefined) {
      this.apply(snap.objects, snap.delta.removed, snap.extra, snap.delta.extraRemoved);
    } else {
      // The whole table: what it no longer lists is removed (objects still at gateway level
      // keep the time this gateway first saw them there).
      const listed = new Set(snap.objects.map((r) => objectKey(r.bucket, r.key)));
      const gone = [...this.objects.values()].filter(
        (r) => !listed.has(objectKey(r.bucket, r.key)),
      );
      this.extra.clear();
      this.apply(
        snap.objects,
        gone.map((r): [string, string] => [r.bucket, r.key]),
        snap.extra,
        [],
      );
    }
    this.version = snap.version;
    this.fetchedAt = Math.max(this.fetchedAt, sentAt);
    for (const f of this.listeners) f();
  }

  /** Rows changed and removed since the version this gateway held. */
  private apply(
    objects: HotObjectRecord[],
    removed: [bucket: string, key: string][],
    extra: ExtraReplicaRecord[],
    extraRemoved: [volumeId: number, needleId: string][],
  ): void {
    const got = this.now();
    const unindex = (old: HotObjectRecord | undefined) => {
      if (!old) return;
      const n = needleKey(old.volumeId, old.needleId);
      if (this.byNeedle.get(n) === old) this.byNeedle.delete(n);
    };
    for (const [b, key] of removed) {
      const k = objectKey(b, key);
      unindex(this.objects.get(k));
      this.objects.delete(k);
      this.gatewaySince.delete(k);
    }
    for (const r of objects) {
      const k = objectKey(r.bucket, r.key);
      unindex(this.objects.get(k));
      this.objects.set(k, r);
      this.byNeedle.set(needleKey(r.volumeId, r.needleId), r);
      if (r.level !== 'gateway') this.gatewaySince.delete(k);
      else if (!this.gatewaySince.has(k)) this.gatewaySince.set(k, got);
    }
    for (const [v, n] of extraRemoved) this.extra.delete(needleKey(v, n));
    for (const x of extra) this.extra.set(needleKey(x.volumeId, x.needleId), x);
  }

  /** Called after each new table (the levels drop what cooled). */
  onTable(f: () => void): void {
    this.listeners.push(f);
  }

  fresh(now = this.now()): boolean {
    return now - this.fetchedAt < this.staleMs;
  }

  /**
   * Whether this gateway may answer `bucket/key` from its own record copy now: at gateway
   * level in a fresh table, and for at least `staleMs` in this gateway's tables, so every
   * other gateway's fresh table shows it too (a writer anywhere then waits).
   */
  mayCache(bucket: string, key: string, now = this.now()): boolean {
    const since = this.gatewaySince.get(objectKey(bucket, key));
    if (this.o.exclusive) return since !== undefined;
    return since !== undefined && now - since >= this.staleMs && this.fresh(now);
  }

  /** Whether a write to `bucket/key` must wait out the other gateways' leases. */
  mustWait(bucket: string, key: string, now = this.now()): boolean {
    if (this.o.exclusive) return false;
    if (!this.fresh(now)) return true;
    const level = this.objects.get(objectKey(bucket, key))?.level;
    return level === 'gateway' || level === 'cooling';
  }

  /** The hot record of a needle (its level says how to read it), if any. */
  byNeedleId(volumeId: number, needleId: string): HotObjectRecord | undefined {
    return this.byNeedle.get(needleKey(volumeId, needleId));
  }

  /** Stores holding an extra copy of the needle. */
  extraReplicas(volumeId: number, needleId: string): string[] | undefined {
    return this.extra.get(needleKey(volumeId, needleId))?.stores;
  }

  get leaseMs(): number {
    return this.o.leaseMs;
  }

  /** The only gateway: it sees every write, so its copies need no lease. */
  get exclusive(): boolean {
    return this.o.exclusive === true;
  }

  /** The table as last received (admin, tests). */
  table(): { objects: HotObjectRecord[]; extra: ExtraReplicaRecord[]; fetchedAt: number } {
    return {
      objects: [...this.objects.values()],
      extra: [...this.extra.values()],
      fetchedAt: this.fetchedAt,
    };
  }
}
