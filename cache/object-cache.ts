// The directory level's record half: a gateway answers getObject for hot objects from its
// own copy of the record, under the lease rules of cache/README.md, and counts every read
// for the directory's policy. The bytes half is cache/caching-data-path.ts (keyed by
// needle, so it needs no lease). Writes to an object drop this gateway's copy and, when
// other gateways may hold one, are acknowledged only after their copies have expired.
import type { MetadataStore, ObjectRecord } from '../directory/model/api.ts';
import type { HotView } from './hot-view.ts';
import { objectKey } from './hot-view.ts';
import { ByteLru } from './lru.ts';

interface Entry {
  rec: ObjectRecord;
  /** Local time the copy must no longer be used: the read's send time + leaseMs. */
  until: number;
}

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

export class ObjectCache {
  readonly lru: ByteLru<Entry>;
  /**
   * Sequence numbers of the last start or end of a write per key: a read that a write's
   * start or end overlapped is not kept. Pruned wholesale (with `epoch`) when large.
   */
  private readonly lastWrite = new Map<string, number>();
  private seq = 0;
  private epoch = 0;
  readonly stats = { leaseWaits: 0, leaseWaitMs: 0, expired: 0 };
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
      if (sentAt < hit.until) return hit.rec;
      this.stats.expired++;
    }
    const seq = this.seq;
    const epoch = this.epoch;
    const rec = await load();
    const overlapped = epoch !== this.epoch || (this.lastWrite.get(k) ?? -1) >= seq;
    if (rec && !overlapped && view.mayCache(bucket, key)) {
      this.lru.set(k, { rec, until: sentAt + view.leaseMs });
    }
    return rec;
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
