// The cache of one gateway (cache/README.md), assembled from the config: its view of the
// hot table, the record and byte levels, the optional Redis L2, and the hints and extra
// replicas it hands the cluster's needle store. compose/gateway.ts wraps the gateway's
// metadata and data path with it; nothing else needs to know it is there.
import crypto from 'node:crypto';
import client from 'prom-client';
import { CachingDataPath } from '../cache/caching-data-path.ts';
import { type HotSource, HotView } from '../cache/hot-view.ts';
import { registerCacheMetrics } from '../cache/metrics.ts';
import { ObjectCache, withObjectCache } from '../cache/object-cache.ts';
import { RedisTier } from '../cache/redis-tier.ts';
import type { Config } from '../common/config.ts';
import type { Logger } from '../common/log.ts';
import type { DataPath } from '../data-path/api.ts';
import type { ClusterNeedleStore } from '../data-path/cluster-store.ts';
import type { MetadataStore } from '../directory/model/api.ts';
import type { NeedleStore } from '../store-node/api.ts';

export interface GatewayCache {
  id: string;
  view: HotView;
  objects: ObjectCache;
  data: CachingDataPath;
  redis?: RedisTier;
  registry: client.Registry;
  meta(m: MetadataStore): MetadataStore;
  stats(): Record<string, number>;
  close(): Promise<void>;
}

export interface CacheSpec {
  cfg: Config;
  log: Logger;
  source: HotSource;
  /** The only gateway (embedded, one process): it drops its own copies and never waits. */
  exclusive: boolean;
  inner: DataPath;
  needles: NeedleStore;
  /** The cluster's needle store: reads spread over extra replicas too. */
  cluster?: ClusterNeedleStore;
}

export async function assembleCache(spec: CacheSpec): Promise<GatewayCache> {
  const c = spec.cfg.cache;
  const id = `gw-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  let stats: () => Record<string, number> = () => ({});
  const view = new HotView({
    source: spec.source,
    gateway: id,
    reportMs: c.reportMs,
    leaseMs: c.leaseMs,
    exclusive: spec.exclusive,
    log: spec.log,
    stats: () => stats(),
  });
  // Records are small: a sixteenth of the level's budget, the rest for bytes.
  const objects = new ObjectCache({
    view,
    maxBytes: Math.max(1 << 20, Math.floor(c.gatewayBytes / 16)),
    highWatermark: c.highWatermark,
    lowWatermark: c.lowWatermark,
  });
  const redis = c.redisUrl
    ? new RedisTier({ url: c.redisUrl, timeoutMs: c.redisTimeoutMs, log: spec.log })
    : undefined;
  const data = new CachingDataPath({
    inner: spec.inner,
    needles: spec.needles,
    view,
    maxBytes: c.gatewayBytes - Math.floor(c.gatewayBytes / 16),
    maxObjectBytes: c.maxObjectBytes,
    highWatermark: c.highWatermark,
    lowWatermark: c.lowWatermark,
    redis,
  });
  if (spec.cluster) {
    spec.cluster.extraReplicas = (vid, nid) => view.extraReplicas(vid, nid);
  }
  stats = () => {
    const b = data.lru.stats;
    const o = objects.lru.stats;
    const r = redis?.stats;
    return {
      hits: b.hits,
      misses: b.misses,
      bytes: b.bytes,
      entries: b.entries,
      evictions: b.evictions,
      promotions: data.stats.promotions,
      recordHits: o.hits,
      recordMisses: o.misses,
      leaseWaits: objects.stats.leaseWaits,
      // Copies whose lease a report renewed, and copies found expired when read.
      leaseRenewals: objects.stats.renewed,
      leaseExpired: objects.stats.expired,
      storeFills: data.stats.storeFills,
      l2Hits: r?.hits ?? 0,
      l2Misses: r?.misses ?? 0,
      l2Errors: r?.errors ?? 0,
      l2Up: redis ? Number(redis.up) : 0,
    };
  };
  const registry = new client.Registry();
  registerCacheMetrics(registry, 'gateway', () => ({
    ...data.lru.stats,
    promotions: data.stats.promotions,
  }));
  registerCacheMetrics(registry, 'gateway-records', () => objects.lru.stats);
  if (redis) {
    registerCacheMetrics(registry, 'redis', () => ({
      hits: redis.stats.hits,
      misses: redis.stats.misses,
      bytes: redis.stats.bytes,
      entries: 0,
      evictions: 0,
      errors: redis.stats.errors,
    }));
  }
  // A first table before serving, so writes do not all wait for want of one.
  await Promise.race([
    view.refresh().catch(() => {}),
    new Promise((r) => setTimeout(r, 2_000).unref()),
  ]);
  view.start();
  return {
    id,
    view,
    objects,
    data,
    redis,
    registry,
    meta: (m) => withObjectCache(m, objects),
    stats,
    async close() {
      view.stop();
      await redis?.close();
    },
  };
}
