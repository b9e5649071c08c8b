// The directory level's record half: a gateway answers getObject for hot objects from its
// own copy of the record, under the lease rules of cache/README.md, and counts every read
// for the directory's policy. The bytes half is cache/caching-data-path.ts (keyed by
// needle, so it needs no lease). Writes to an object drop this gateway's copy and, when
// other gateways may hold one, are acknowledged only after their copies have expired.
import type { MetadataStore, ObjectRecord } from '../directory/model/api.ts';
import { recordStamp } from '../directory/model/record-stamp.ts';
import type { HotView, LeaseRenewer, RenewBatch } from './hot-view.ts';
import { objectKey, splitObjectKey } from './hot-view.ts';
import { ByteLru } from './lru.ts';

interface Entry {
  rec: ObjectRecord;
  /** Local time the copy must no longer be used: the read's (or renewal's) send time + leaseMs. */
  until: number;
  /** recordStamp(rec), computed on the first renewal. */
  stamp?: string;
}

interface Renewal extends RenewBatch {
  entries: [string, Entry][];
}

/**
 * Copies used within this long are renewed with each report; colder ones lapse and are
 * fetched again when next read (a renewal costs the leader a database read per report).
 */
const RENEW_IDLE_MS = 2_000;
const MAX_RENEW = 20_000;

export interface ObjectCacheOptions {
  view: HotView;
  maxBytes: number;
  highWatermark?: number;
  lowWatermark?: number;
  /** Tolerance for clock rate differences and timer lateness on top of leaseMs. */
  marginMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** A record's rough size in memory: its key, metadata and chunk list. */
function recordBytes(r: ObjectRecord): number {
  let n = 200 + r.key.length * 2 + r.chunks.length * 64;
  for (const [k, v] of Object.entries(r.userMeta)) n += (k.length + v.length) * 2;
  return n;
}

export class ObjectCache implements LeaseRenewer {
  readonly lru: ByteLru<Entry>;
  /**
   * Sequence numbers of the last start or end of a write per key: a read that a write's
   * start or end overlapped is not kept. Pruned wholesale (with `epoch`) when large.
   */
  private readonly lastWrite = new Map<string, number>();
  private seq = 0;
  private epoch = 0;
  /** Keys of held copies and when this gateway last used each: the renewal candidates. */
  private readonly recent = new Map<string, number>();
  readonly stats = { leaseWaits: 0, leaseWaitMs: 0, expired: 0, renewed: 0 };
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly o: ObjectCacheOptions) {
    this.now = o.now ?? Date.now;
    this.sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.lru = new ByteLru<Entry>({
      maxBytes: o.maxBytes,
      highWatermark: o.highWatermark,
      lowWatermark: o.lowWatermark,
      sizeOf: (e) => recordBytes(e.rec),
    });
    o.view.setRenewer(this);
  }

  async get(
    bucket: string,
    key: string,
    load: () => Promise<ObjectRecord | null>,
  ): Promise<ObjectRecord | null> {
    const view = this.o.view;
    view.count(bucket, key);
    const sentAt = this.now();
    if (!view.mayCache(bucket, key, sentAt)) return load();
    const k = objectKey(bucket, key);
    const hit = this.lru.get(k);
    if (hit) {
      if (sentAt < hit.until) {
        if (!view.exclusive) this.recent.set(k, sentAt);
        return hit.rec;
      }
      this.stats.expired++;
    }
    const seq = this.seq;
    const epoch = this.epoch;
    const rec = await load();
    const overlapped = epoch !== this.epoch || (this.lastWrite.get(k) ?? -1) >= seq;
    if (rec && !overlapped && view.mayCache(bucket, key)) {
      // The only gateway drops its copy on each of its writes, and there are no others.
      const until = view.exclusive ? Number.POSITIVE_INFINITY : sentAt + view.leaseMs;
      this.lru.set(k, { rec, until });
      if (!view.exclusive) this.recent.set(k, sentAt);
    }
    return rec;
  }

  /** The copies used lately that may still be cached: their leases are renewed by a report. */
  collect(now: number): Renewal | undefined {
    if (this.o.view.exclusive) return undefined;
    const renew: Renewal['renew'] = [];
    const entries: Renewal['entries'] = [];
    for (const [k, t] of this.recent) {
      const e = this.lru.peek(k);
      if (!e || now - t > RENEW_IDLE_MS) {
        this.recent.delete(k);
        continue;
      }
      if (renew.length >= MAX_RENEW) break;
      const [bucket, key] = splitObjectKey(k);
      if (!this.o.view.mayCache(bucket, key, now)) continue;
      e.stamp ??= recordStamp(e.rec);
      renew.push([bucket, key, e.stamp]);
      entries.push([k, e]);
    }
    return renew.length > 0 ? { renew, entries } : undefined;
  }

  /**
   * The directory confirmed, after the report was sent at `sentAt`, that these copies are
   * the current records: each may be used until sentAt + leaseMs, like a fresh read sent
   * then. A copy replaced or dropped since (a local write) is not the same entry any more.
   */
  renewed(batch: RenewBatch, flags: boolean[], sentAt: number): void {
    const { entries } = batch as Renewal;
    const until = sentAt + this.o.view.leaseMs;
    for (let i = 0; i < entries.length; i++) {
      const [k, e] = entries[i]!;
      if (!flags[i] || this.lru.peek(k) !== e) continue;
      if (until > e.until) e.until = until;
      this.stats.renewed++;
    }
  }

  /**
   * Runs a write of `bucket/key`: this gateway's copy goes before and after it, and once it
   * succeeded it waits out other gateways' leases when the hot table says they may have one.
   */
  async write<T>(bucket: string, key: string, run: () => Promise<T>): Promise<T> {
    const k = objectKey(bucket, key);
    this.mark(k);
    this.o.view.wrote(bucket, key);
    try {
      const out = await run();
      if (this.o.view.mustWait(bucket, key)) {
        const ms = this.o.view.leaseMs + (this.o.marginMs ?? 25);
        this.stats.leaseWaits++;
        this.stats.leaseWaitMs += ms;
        await this.sleep(ms);
      }
      return out;
    } finally {
      this.mark(k);
    }
  }

  private mark(k: string): void {
    if (this.lastWrite.size >= 100_000) {
      this.lastWrite.clear();
      this.epoch++;
    }
    this.lastWrite.set(k, this.seq++);
    this.lru.delete(k);
  }
}

/** The MetadataStore a gateway uses: object reads through `cache`, object writes around it. */
export function withObjectCache(meta: MetadataStore, cache: ObjectCache): MetadataStore {
  return new Proxy(meta, {
    get(target, prop, receiver) {
      switch (prop) {
        case 'getObject':
          return (bucket: string, key: string) =>
            cache.get(bucket, key, () => target.getObject(bucket, key));
        case 'putObject':
          return (bucket: string, rec: ObjectRecord, ...rest: unknown[]) =>
            cache.write(bucket, rec.key, () =>
              (target.putObject as (...a: unknown[]) => ReturnType<MetadataStore['putObject']>)(
                bucket,
                rec,
                ...rest,
              ),
            );
        case 'putObjectStored':
        case 'deleteObject':
        case 'completeUpload':
          return (bucket: string, key: string, ...rest: unknown[]) =>
            cache.write(bucket, key, () =>
              (target[prop] as (...a: unknown[]) => Promise<unknown>).call(
                target,
                bucket,
                key,
                ...rest,
              ),
            );
        default: {
          const v = Reflect.get(target, prop, receiver);
          return typeof v === 'function' ? v.bind(target) : v;
        }
      }
    },
  });
}
