// Short-lived caches of the two metadata reads every request makes before its real work:
// the access key (whose secret verifies the signature) and the bucket (existence and
// owner). Profiling the embedded server put LevelDB gets at the top of the PUT/GET path.
// A second is the bound on staleness: a removed key or a deleted bucket may be honoured
// for up to TTL_MS by this gateway (writes still fail at once: the metadata store checks
// the bucket, and the owner the write was allowed against, inside the commit). Changes
// made through this gateway invalidate immediately. This is the only key cache between a
// request and the directory: another one under it would add its own second to the bound.
import type {
  AccessKeyRecord,
  BucketGuard,
  BucketRecord,
  MetadataStore,
} from '../directory/model/api.ts';

const TTL_MS = 1000;
const MAX_ENTRIES = 10_000;

class TtlCache<V> {
  private readonly m = new Map<string, { v: V; at: number }>();

  get(k: string, now: number): V | undefined {
    const e = this.m.get(k);
    if (!e) return undefined;
    if (now - e.at > TTL_MS) {
      this.m.delete(k);
      return undefined;
    }
    return e.v;
  }

  set(k: string, v: V, now: number): void {
    if (this.m.size >= MAX_ENTRIES) this.m.clear();
    this.m.set(k, { v, at: now });
  }

  delete(k: string): void {
    this.m.delete(k);
  }

  clear(): void {
    this.m.clear();
  }
}

/** A MetadataStore whose getKey/getBucket answers may be up to a second old. */
export function withLookupCache(meta: MetadataStore): MetadataStore {
  const keys = new TtlCache<AccessKeyRecord>();
  const buckets = new TtlCache<BucketRecord>();
  const target = meta;
  // Made once, not on every property read: every request reads a few of these.
  const own: Record<string, unknown> = {
    async getKey(accessKey: string) {
      const now = Date.now();
      const hit = keys.get(accessKey, now);
      if (hit) return hit;
      const k = await target.getKey(accessKey);
      if (k) keys.set(accessKey, k, now);
      return k;
    },
    async deleteKey(accessKey: string) {
      keys.delete(accessKey);
      await target.deleteKey(accessKey);
      keys.delete(accessKey);
    },
    async deleteUser(id: string) {
      await target.deleteUser(id);
      keys.clear();
    },
    async getBucket(name: string) {
      const now = Date.now();
      const hit = buckets.get(name, now);
      if (hit) return hit;
      const b = await target.getBucket(name);
      if (b) buckets.set(name, b, now);
      return b;
    },
    async deleteBucket(name: string, guard?: BucketGuard) {
      buckets.delete(name);
      await target.deleteBucket(name, guard);
      buckets.delete(name);
    },
  };
  // The target's other methods, bound to it: one bound function per method as it is now.
  const bound = new Map<string | symbol, { fn: (...a: unknown[]) => unknown; bound: unknown }>();
  return new Proxy(meta, {
    get(t, prop, receiver) {
      if (typeof prop === 'string' && Object.hasOwn(own, prop)) return own[prop];
      const v = Reflect.get(t, prop, receiver);
      if (typeof v !== 'function') return v;
      const b = bound.get(prop);
      if (b !== undefined && b.fn === v) return b.bound;
      const fresh = v.bind(t);
      bound.set(prop, { fn: v, bound: fresh });
      return fresh;
    },
  });
}
