// Volume sync: make this node's copy of a volume match another replica's (re-replication
// onto a new node, reconciliation after an outage). Idempotent by construction — it
// copies only what is missing or locally corrupt, so a re-run after a crash just resumes.
//
// A needle written on both replicas while the sync runs is never lost: new writes reach
// this node through the normal replicated PUT, and a deletion candidate (live here, not in
// the source's listing) is confirmed absent at the source one more time before it goes.
import type { Logger } from '../common/log.ts';
import type { SyncResult } from './api.ts';
import type { StoreClient } from './client.ts';
import { StoreError } from './errors.ts';
import { scrubVolume } from './scrub.ts';
import type { Store } from './store.ts';
import type { Volume } from './volume.ts';

export interface SyncOptions {
  /** Also delete local needles the source does not have. */
  deletes: boolean;
  /** Needles copied at once: each local write waits for a group-commit fdatasync. */
  concurrency?: number;
  pageSize?: number;
  logger?: Logger;
}

function isMissing(e: unknown): boolean {
  return e instanceof StoreError && (e.code === 'NoSuchNeedle' || e.code === 'NoSuchVolume');
}

async function localVolume(store: Store, vid: number): Promise<Volume> {
  try {
    return store.volume(vid);
  } catch (e) {
    if (!isMissing(e)) throw e;
  }
  try {
    return await store.createVolume(vid);
  } catch (e) {
    // Two syncs of one volume racing to create it: the other one won.
    if (e instanceof StoreError && e.code === 'VolumeExists') return store.volume(vid);
    throw e;
  }
}

/** Runs `fn` over `items` with at most `n` in flight; collects failures, never throws. */
async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<unknown[]> {
  const errors: unknown[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const t = items[next++]!;
      try {
        await fn(t);
      } catch (e) {
        errors.push(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return errors;
}

export async function syncVolume(
  store: Store,
  vid: number,
  source: StoreClient,
  opts: SyncOptions,
): Promise<SyncResult> {
  const t0 = performance.now();
  const concurrency = opts.concurrency ?? 16;
  const limit = opts.pageSize ?? 1000;
  // The source is asked first, so a wrong source leaves no empty volume behind.
  let page = await source.listNeedles(vid, { limit });
  const vol = await localVolume(store, vid);
  // Corrupt needles count as missing: the copy below appends a good version over them.
  const corrupt = new Set((await scrubVolume(vol)).corrupt);
  const seen = opts.deletes ? new Set<bigint>() : null;
  const failures: unknown[] = [];
  let copied = 0;
  let bytes = 0;
  let sourceReadOnly = false;
  for (;;) {
    sourceReadOnly = page.readOnly;
    const todo: bigint[] = [];
    for (const n of page.needles) {
      seen?.add(n.id);
      if (!vol.has(n.id) || corrupt.has(n.id)) todo.push(n.id);
    }
    const errs = await pool(todo, concurrency, async (id) => {
      let raw: Awaited<ReturnType<StoreClient['getRaw']>>;
      try {
        raw = await source.getRaw(vid, id);
      } catch (e) {
        if (isMissing(e)) return; // deleted at the source since the listing
        throw e;
      }
      await vol.write(id, raw.cookie, raw.data, undefined, {
        repair: true,
        compression: raw.compressed ? undefined : 'off',
      });
      copied++;
      bytes += raw.data.length;
    });
    failures.push(...errs);
    if (page.next === undefined) break;
    page = await source.listNeedles(vid, { after: page.next, limit });
  }
  let deleted = 0;
  if (seen) {
    const extra: bigint[] = [];
    vol.g.map.forEach((lo, hi) => {
      const id = (BigInt(hi) << 32n) | BigInt(lo);
      if (!seen.has(id)) extra.push(id);
    });
    const errs = await pool(extra, concurrency, async (id) => {
      try {
        await source.getRaw(vid, id);
        return; // written at the source after its listing: keep it
      } catch (e) {
        if (!isMissing(e)) throw e;
      }
      try {
        await vol.delete(id);
        deleted++;
      } catch (e) {
        if (!isMissing(e)) throw e;
      }
    });
    failures.push(...errs);
  }
  if (failures.length > 0) {
    const sample = failures.slice(0, 5).map((e) => (e as Error)?.message ?? String(e));
    opts.logger?.warn({ volume: vid, failures: failures.length, sample }, 'volume sync incomplete');
    throw new StoreError(
      'SyncIncomplete',
      `volume ${vid}: ${failures.length} needles not synced (${sample.join('; ')})`,
      { copied, deleted, bytes, failed: failures.length },
    );
  }
  if (sourceReadOnly && !vol.readOnly) await store.seal(vid);
  const ms = Math.round(performance.now() - t0);
  opts.logger?.info({ volume: vid, copied, deleted, bytes, ms }, 'volume synced');
  return { copied, deleted, bytes, ms };
}
