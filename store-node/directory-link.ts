// What a store asks the directory: which other stores hold a replica of a volume. Used by
// scrub repair; calls the directory's /meta RPC (POST /meta/<method>, body = JSON array of
// arguments, answer {"r": result}) on each directory replica in turn until one answers.
import { request } from 'undici';
import { AUTH_HEADER, type InternalAuth } from '../common/internal-auth.ts';
import type { NodeRecord, VolumeRecord } from '../directory/model/topology.ts';
import type { StoreClient } from './client.ts';
import type { RepairHook } from './store.ts';

export interface DirectoryLinkOptions {
  directories: string[];
  auth: InternalAuth;
  /** This store, left out of the answers (by node id and by URL). */
  selfId: string;
  selfUrl: string;
  timeoutMs?: number;
}

async function call<T>(o: DirectoryLinkOptions, method: string, args: unknown[]): Promise<T> {
  let last: unknown = new Error('no directory configured');
  for (const d of o.directories) {
    const u = new URL(d);
    const path = `${u.pathname.replace(/\/+$/, '')}/meta/${method}`;
    const body = JSON.stringify(args);
    try {
      const res = await request(`${u.origin}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [AUTH_HEADER]: o.auth.sign('POST', path, undefined, body),
        },
        body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 5000),
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`${method}: HTTP ${res.statusCode} ${text}`);
      return (JSON.parse(text) as { r: T }).r;
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

/** Base URLs of the other stores the directory lists as replicas of a volume. */
export function directoryReplicaUrls(o: DirectoryLinkOptions): (vid: number) => Promise<string[]> {
  const self = new URL(o.selfUrl).origin;
  return async (vid) => {
    const vol = await call<VolumeRecord | null>(o, 'getVolume', [vid]);
    if (!vol) return [];
    const nodes = await call<NodeRecord[]>(o, 'listNodes', []);
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
