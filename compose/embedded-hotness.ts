// The embedded server has no directory leader: the hot-object policy runs in its own
// process, over its LevelDB, with no other stores to put extra replicas on.
import type { HotSource } from '../cache/hot-view.ts';
import type { Config } from '../common/config.ts';
import type { Logger } from '../common/log.ts';
import { Hotness } from '../directory/cluster/hotness.ts';
import type { LevelMetadata } from '../directory/engine/meta-level.ts';

export interface EmbeddedHotness {
  hotness: Hotness;
  source: HotSource;
  stop(): void;
}

export function startEmbeddedHotness(
  meta: LevelMetadata,
  cfg: Config,
  log: Logger,
): EmbeddedHotness {
  const hotness = new Hotness({ meta, cache: cfg.cache, log });
  const timer = setInterval(() => void hotness.tick().catch(() => {}), cfg.cache.reportMs);
  timer.unref();
  return {
    hotness,
    source: { reportReads: (r) => hotness.report(r) },
    stop: () => clearInterval(timer),
  };
}

/** `meta` with reportReads answered by `source` (a metadata server for the workers). */
export function withReportReads<T extends object>(meta: T, source: HotSource): T {
  return new Proxy(meta, {
    get(target, prop, receiver) {
      if (prop === 'reportReads') return source.reportReads;
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
