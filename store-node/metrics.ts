// Prometheus metrics of one store node. A registry per server (not the global one) so
// several nodes can live in one process (embedded mode, tests).
import client from 'prom-client';
import { registerCacheMetrics } from '../cache/metrics.ts';
import type { Store } from './store.ts';

export class StoreMetrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'op' | 'status'>;
  readonly duration: client.Histogram<'op'>;
  readonly bytesIn: client.Counter;
  readonly bytesOut: client.Counter;
  inflightReads = 0;
  inflightWrites = 0;
  errors = 0;

  constructor(store: Store) {
    const registers = [this.registry];
    this.requests = new client.Counter({
      name: 'kubestorage_store_requests_total',
      help: 'Store API requests by operation and HTTP status',
      labelNames: ['op', 'status'],
      registers,
    });
    this.duration = new client.Histogram({
      name: 'kubestorage_store_request_seconds',
      help: 'Store API request latency',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.bytesIn = new client.Counter({
      name: 'kubestorage_store_bytes_written_total',
      help: 'Needle payload bytes accepted',
      registers,
    });
    this.bytesOut = new client.Counter({
      name: 'kubestorage_store_bytes_read_total',
      help: 'Needle payload bytes served',
      registers,
    });
    const gauge = (name: string, help: string, collect: () => number | Promise<number>) =>
      new client.Gauge({
        name,
        help,
        registers,
        async collect() {
          this.set(await collect());
        },
      });
    gauge('kubestorage_store_volumes', 'Volumes on this node', () => store.volumeIds().length);
    gauge('kubestorage_store_needles', 'Live needles', async () => (await store.status()).needles);
    gauge(
      'kubestorage_store_live_bytes',
      'Bytes of live needles',
      async () => (await store.status()).liveBytes,
    );
    gauge(
      'kubestorage_store_garbage_bytes',
      'Bytes reclaimable by compaction',
      async () => (await store.status()).garbageBytes,
    );
    gauge(
      'kubestorage_store_free_bytes',
      'Free bytes on the data file system',
      async () => (await store.status()).freeBytes,
    );
    gauge(
      'kubestorage_store_index_bytes',
      'RAM held by needle indexes',
      async () => (await store.status()).indexBytes,
    );
    gauge('kubestorage_store_inflight_reads', 'Reads in progress', () => this.inflightReads);
    gauge('kubestorage_store_inflight_writes', 'Writes in progress', () => this.inflightWrites);
    gauge('kubestorage_store_io_errors', 'Disk I/O errors since start', () => store.ioErrors());
    gauge(
      'kubestorage_store_repaired_needles',
      'Corrupt needles rewritten from another replica since start',
      () => store.repairedNeedles,
    );
    gauge(
      'kubestorage_store_extra_needles',
      'Extra copies of hot needles held for volumes elsewhere',
      () => store.extras.count,
    );
    gauge(
      'kubestorage_store_extra_bytes',
      'Bytes of extra copies of hot needles',
      () => store.extras.bytes,
    );
    const cache = store.cache;
    if (cache) {
      // A needle admitted on a 'fill' hint is an object promoted to the store level.
      registerCacheMetrics(this.registry, 'store', () => {
        const s = cache.stats;
        return { ...s, promotions: s.fills };
      });
    }
    gauge('kubestorage_store_corrupt_needles', 'Corrupt needles found by the last scrub', () =>
      store.lastScrub ? store.lastScrub.results.reduce((a, r) => a + r.corrupt.length, 0) : 0,
    );
  }
}
