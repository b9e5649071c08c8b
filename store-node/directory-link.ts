// What a store asks the directory: which other stores hold a replica of a volume (scrub
// repair), and which stores exist at all (the only places a needle may be forwarded to or
// synced from). The calls go through the metadata client (directory/wire/client.ts), which
// tries the directory replicas in turn until one answers.
import { DEFAULT_CONFIG } from '../common/config.ts';
import type { InternalAuth } from '../common/internal-auth.ts';
import type { NodeRecord } from '../directory/model/topology.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import type { StoreClient } from './client.ts';
import type { RepairHook } from './store.ts';

export interface DirectoryLinkOptions {
  directories: string[];
  auth: InternalAuth;
  /** This store, left out of the answers (by node id and by URL). */
  selfId: string;
  selfUrl: string;
  /** Bound on one attempt at one replica (config store.directoryTimeoutMs). */
  timeoutMs?: number;
}

/** A metadata client made on first use: a few connections, each replica tried about once. */
function lazyDirectory(o: Pick<DirectoryLinkOptions, 'directories' | 'auth' | 'timeoutMs'>) {
  const timeoutMs = o.timeoutMs ?? DEFAULT_CONFIG.store.directoryTimeoutMs;
  let client: MetadataClient | undefined;
  return () =>
    (client ??= new MetadataClient(o.directories, o.auth, {
      timeoutMs,
      connectTimeoutMs: timeoutMs,
      readAttemptMs: timeoutMs,
      deadlineMs: timeoutMs * o.directories.length,
      connections: 2,
      batch: false,
    }));
}

/**
 * The directory's record of node `id` (null: it has none), or undefined when no replica
 * answered within about `timeoutMs` per replica (a store starting must not wait long for
 * a directory that is down).
 */
export async function directoryNodeRecord(
  o: Pick<DirectoryLinkOptions, 'directories' | 'auth' | 'timeoutMs'>,
  id: string,
): Promise<NodeRecord | null | undefined> {
  const client = lazyDirectory(o)();
  try {
    return (await client.listNodes()).find((n) => n.id === id) ?? null;
  } catch {
    return undefined;
  } finally {
    await client.close().catch(() => {});
  }
}

/** Base URLs of the other stores the directory lists as replicas of a volume. */
export function directoryReplicaUrls(o: DirectoryLinkOptions): (vid: number) => Promise<string[]> {
  const self = new URL(o.selfUrl).origin;
  // Scrub repair is rare and not urgent.
  const dir = lazyDirectory(o);
  return async (vid) => {
    const vol = await dir().getVolume(vid);
    if (!vol) return [];
    const nodes = await dir().listNodes();
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const urls: string[] = [];
    for (const id of vol.replicas) {
      const n = byId.get(id);
      if (!n || id === o.selfId || n.state === 'removed') continue;
      if (new URL(n.url).origin === self) continue;
      urls.push(n.url);
    }
    return urls;
  };
}

/**
 * A scrub repair hook: the first other replica whose raw copy arrives intact (getRaw checks
 * the wire CRC; the source verified its own on-disk CRCs when reading) supplies the bytes.
 */
export function replicaRepair(
  replicaUrls: (vid: number) => Promise<string[]>,
  client: (url: string) => StoreClient,
): RepairHook {
  return async (vid, needleId) => {
    for (const url of await replicaUrls(vid)) {
      try {
        const r = await client(url).getRaw(vid, needleId);
        return { cookie: r.cookie, data: r.data, compressed: r.compressed };
      } catch {
        // That replica lacks it or has it damaged too: try the next.
      }
    }
    return null;
  };
}

export interface KnownStoresOptions {
  directories: string[];
  auth: InternalAuth;
  /** Bound on one attempt at one directory replica. */
  timeoutMs?: number;
  /** The node list is trusted this long (default config store.knownStoresTtlMs). */
  ttlMs?: number;
  /** An origin missing from the list re-reads it, at most this often (default 250 ms). */
  missRereadMs?: number;
  now?: () => number;
}

/**
 * Whether an origin is a store the directory knows (any state but removed): what a store
 * may forward a needle to or sync from (StoreServerOptions.knownStore). The node list is
 * cached for `ttlMs` and re-read on a miss, so a store added a moment ago is accepted at
 * once. When the directory cannot be reached the last list read is used; with none yet,
 * the call throws.
 */
export function directoryKnownStores(o: KnownStoresOptions): (origin: string) => Promise<boolean> {
  const dir = lazyDirectory(o);
  const ttl = o.ttlMs ?? DEFAULT_CONFIG.store.knownStoresTtlMs;
  const reread = o.missRereadMs ?? 250;
  const now = o.now ?? (() => performance.now());
  let known: Set<string> | null = null;
  let readAt = Number.NEGATIVE_INFINITY;
  let loading: Promise<void> | null = null;
  let lastError: unknown = null;
  const load = () =>
    (loading ??= (async () => {
      const started = now();
      lastError = null;
      try {
        const nodes = await dir().listNodes();
        const next = new Set<string>();
        for (const n of nodes) {
          if (n.state === 'removed') continue;
          try {
            next.add(new URL(n.url).origin);
          } catch {
            // a record with a bad URL names no store
          }
        }
        known = next;
      } catch (e) {
        lastError = e;
        throw e;
      } finally {
        readAt = started;
      }
    })().finally(() => {
      loading = null;
    }));
  return async (origin) => {
    const age = now() - readAt;
    const hit = known?.has(origin) === true;
    if (age >= ttl || (!hit && age >= reread)) {
      try {
        await load();
      } catch {
        // the last list read, if any (below)
      }
    }
    if (known === null) throw lastError ?? new Error('directory not reached yet');
    return known.has(origin);
  };
}
