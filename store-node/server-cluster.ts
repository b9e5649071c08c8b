// The store API's cluster routes (store ↔ store and directory → store; internal, signed
// like every other route):
//
//   GET  /volumes/:vid/needles?after=<decimal id>&limit=<1..10000>
//        → 200 {needles: [{id: "<decimal>", size}], next?: "<decimal>", readOnly}
//          live needles in ascending id order; size is the stored (maybe compressed) size
//   GET  /volumes/:vid/needles/:nid/raw
//        → 200 needle bytes; headers x-ks-cookie, x-ks-crc32c, x-ks-compressed (0|1)
//   POST /volumes/:vid/sync?source=<base URL>[&deletes=1]
//        → 200 {copied, deleted, bytes, ms}; 502 SyncIncomplete if some needles failed;
//          403 UnknownReplica when the source is not a store the directory knows
import type http from 'node:http';
import { crc32c } from '@node-rs/crc32';
import { sendJson } from '../common/internal-http.ts';
import type { Logger } from '../common/log.ts';
import { CRC_HEADER } from './api.ts';
import { StoreError } from './errors.ts';
import { listNeedles, MAX_LIST_LIMIT } from './needle-list.ts';
import type { Replicator } from './replication.ts';
import type { Store } from './store.ts';
import { syncVolume } from './sync.ts';

const LIST_RE = /^\/volumes\/([^/]+)\/needles$/;
const RAW_RE = /^\/volumes\/([^/]+)\/needles\/([^/]+)\/raw$/;
const SYNC_RE = /^\/volumes\/([^/]+)\/sync$/;

export interface ClusterRouteContext {
  store: Store;
  replicator: Replicator;
  logger?: Logger;
  parseVolumeId(s: string): number;
  parseNeedleId(s: string): bigint;
  /** Volumes with a sync running: a second one at once would only duplicate the copying. */
  syncing: Set<number>;
  /** Throws (403 UnknownReplica) unless every origin is a store the directory knows. */
  checkKnown(origins: string[]): Promise<void>;
}

/** Serves a cluster route; returns the metrics op name, or null when none matched. */
export async function clusterRoute(
  ctx: ClusterRouteContext,
  res: http.ServerResponse,
  method: string,
  pathname: string,
  query: URLSearchParams,
): Promise<string | null> {
  let m = LIST_RE.exec(pathname);
  if (m) {
    if (method !== 'GET') throw new StoreError('MethodNotAllowed', `${method} not allowed here`);
    const vol = ctx.store.volume(ctx.parseVolumeId(m[1]!));
    const afterText = query.get('after') ?? '0';
    const after = afterText === '0' ? 0n : ctx.parseNeedleId(afterText);
    const limitText = query.get('limit') ?? '1000';
    if (!/^\d{1,5}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > MAX_LIST_LIMIT)
      throw new StoreError('InvalidArgument', `limit must be 1..${MAX_LIST_LIMIT}`);
    const page = listNeedles(vol.g.map, after, Number(limitText));
    sendJson(res, 200, { ...page, readOnly: vol.readOnly });
    return 'list';
  }
  m = RAW_RE.exec(pathname);
  if (m) {
    if (method !== 'GET') throw new StoreError('MethodNotAllowed', `${method} not allowed here`);
    const vol = ctx.store.volume(ctx.parseVolumeId(m[1]!));
    const r = await vol.readRaw(ctx.parseNeedleId(m[2]!));
    // The needle format keeps no content type; whether it was compressed is what a copy
    // needs to store it the same way.
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': r.data.length,
      'x-ks-cookie': r.cookie,
      'x-ks-compressed': r.compressed ? '1' : '0',
      [CRC_HEADER]: crc32c(r.data),
    });
    res.end(r.data);
    return 'raw';
  }
  m = SYNC_RE.exec(pathname);
  if (m) {
    if (method !== 'POST') throw new StoreError('MethodNotAllowed', `${method} not allowed here`);
    const vid = ctx.parseVolumeId(m[1]!);
    const source = query.get('source');
    let origin: string;
    try {
      const u = new URL(source ?? '');
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
      origin = u.origin;
    } catch {
      throw new StoreError('InvalidArgument', 'source must be an http(s) base URL');
    }
    // The store calls the source with tokens of its own: only ever a store of this cluster.
    await ctx.checkKnown([origin]);
    if (ctx.syncing.has(vid)) throw new StoreError('Busy', `volume ${vid} is already syncing`);
    ctx.syncing.add(vid);
    try {
      const result = await syncVolume(ctx.store, vid, ctx.replicator.client(origin), {
        deletes: query.get('deletes') === '1',
        logger: ctx.logger,
      });
      sendJson(res, 200, result);
    } finally {
      ctx.syncing.delete(vid);
    }
    return 'sync';
  }
  return null;
}
