// Prometheus metrics of the cache levels (cache/README.md, "Where to look"). One process
// may run several levels on one registry (embedded mode: gateway and store levels, Redis),
// so each metric exists once per registry and has a sample per registered level.
import client from 'prom-client';

export interface CacheMetricsSource {
  hits: number;
  misses: number;
  bytes: number;
  entries: number;
  evictions: number;
  evictedBytes?: number;
  errors?: number;
  promotions?: number;
}

type Key = keyof CacheMetricsSource;

/** Per registry: the levels it reports, each read at every scrape. */
const levelsOf = new WeakMap<client.Registry, Map<string, () => CacheMetricsSource>>();

const METRICS: { field: Key; name: string; help: string; counter: boolean }[] = [
  { field: 'hits', name: 'kubestorage_cache_hits_total', help: 'Cache hits', counter: true },
  { field: 'misses', name: 'kubestorage_cache_misses_total', help: 'Cache misses', counter: true },
  { field: 'bytes', name: 'kubestorage_cache_bytes', help: 'Bytes held', counter: false },
  { field: 'entries', name: 'kubestorage_cache_entries', help: 'Entries held', counter: false },
  {
    field: 'evictions',
    name: 'kubestorage_cache_evictions_total',
    help: 'Entries evicted to make room',
    counter: true,
  },
  {
    field: 'evictedBytes',
    name: 'kubestorage_cache_evicted_bytes_total',
    help: 'Bytes evicted to make room',
    counter: true,
  },
  {
    field: 'errors',
    name: 'kubestorage_cache_errors_total',
    help: 'Calls to the level that failed or timed out',
    counter: true,
  },
  {
    field: 'promotions',
    name: 'kubestorage_cache_promotions_total',
    help: 'Objects promoted into the level',
    counter: true,
  },
];

function create(registry: client.Registry, levels: Map<string, () => CacheMetricsSource>): void {
  for (const m of METRICS) {
    // Sources are read at each scrape; a level without the field has no sample for it.
    const samples = () => {
      const out: [string, number][] = [];
      for (const [level, source] of levels) {
        const v = source()[m.field];
        if (typeof v === 'number' && Number.isFinite(v)) out.push([level, v]);
      }
      return out;
    };
    const common = { name: m.name, help: m.help, labelNames: ['level'], registers: [registry] };
    if (m.counter) {
      new client.Counter({
        ...common,
        collect() {
          // A counter cannot be set: start from zero and add the source's total.
          this.reset();
          for (const [level, v] of samples()) this.inc({ level }, Math.max(0, v));
        },
      });
    } else {
      new client.Gauge({
        ...common,
        collect() {
          this.reset();
          for (const [level, v] of samples()) this.set({ level }, v);
        },
      });
    }
  }
}

/**
 * Reports a cache level on `registry`, read from `source()` at each scrape. A second call
 * for the same level replaces its source. Returns a function that stops reporting it.
 */
export function registerCacheMetrics(
  registry: client.Registry,
  level: string,
  source: () => CacheMetricsSource,
): () => void {
  let levels = levelsOf.get(registry);
  if (!levels) {
    levels = new Map();
    levelsOf.set(registry, levels);
    create(registry, levels);
  }
  levels.set(level, source);
  const mine = levels;
  return () => {
    if (mine.get(level) === source) mine.delete(level);
  };
}
