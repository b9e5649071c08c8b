// What a store asks the directory: which other stores hold a replica of a volume. Used by
// scrub repair; the calls go through the metadata client (directory/wire/client.ts), which
// tries the directory replicas in turn until one answers.
import { DEFAULT_CONFIG } from '../common/config.ts';
import type { InternalAuth } from '../common/internal-auth.ts';
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

/** Base URLs of the other stores the directory lists as replicas of a volume. */
export function directoryReplicaUrls(o: DirectoryLinkOptions): (vid: number) => Promise<string[]> {
  const self = new URL(o.selfUrl).origin;
  const timeoutMs = o.timeoutMs ?? DEFAULT_CONFIG.store.directoryTimeoutMs;
  let client: MetadataClient | undefined;
  // Scrub repair is rare and not urgent: a few connections, each replica tried about once.
  const dir = () =>
    (client ??= new MetadataClient(o.directories, o.auth, {
      timeoutMs,
      connectTimeoutMs: timeoutMs,
      readAttemptMs: timeoutMs,
      deadlineMs: timeoutMs * o.directories.length,
      connections: 2,
      batch: false,
    }));
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
