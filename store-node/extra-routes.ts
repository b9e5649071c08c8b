// The store's /extra and /cache routes (extra-replicas.ts holds the copies themselves):
// apart so that the copies' module need not know the Store it lives in.
import type http from 'node:http';
import { crc32c } from '@node-rs/crc32';
import { AUTH_HEADER } from '../common/internal-auth.ts';
import { readBody, sendJson } from '../common/internal-http.ts';
import { StoreError } from './errors.ts';
import { EXTRA_RE, extraListing } from './extra-replicas.ts';
import { CRC_HEADER } from './needle-ref.ts';
import type { Store } from './store.ts';

export interface ExtraRouteContext {
  store: Store;
  maxNeedleSize: number;
  parseVolumeId(s: string): number;
  parseNeedleId(s: string): bigint;
  parseCookie(s: string | null): number;
  onBytesIn(n: number): void;
}

/** Serves an /extra or /cache route; returns the metrics op name, or null when none matched. */
export async function extraRoute(
  ctx: ExtraRouteContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  method: string,
  pathname: string,
  query: URLSearchParams,
): Promise<string | null> {
  if (pathname === '/cache') {
    if (method !== 'GET') throw new StoreError('MethodNotAllowed', `${method} not allowed here`);
    sendJson(res, 200, {
      cache: ctx.store.cache?.stats ?? null,
      extra: extraListing(ctx.store.extras),
    });
    return 'cache';
  }
  if (pathname === '/extra') {
    if (method !== 'GET') throw new StoreError('MethodNotAllowed', `${method} not allowed here`);
    sendJson(res, 200, extraListing(ctx.store.extras));
    return 'extra-list';
  }
  const m = EXTRA_RE.exec(pathname);
  if (!m) return null;
  const vid = ctx.parseVolumeId(m[1]!);
  const nid = ctx.parseNeedleId(m[2]!);
  if (method === 'DELETE') {
    if (!(await ctx.store.deleteExtra(vid, nid)))
      throw new StoreError('NoSuchNeedle', `no extra copy of ${vid}/${nid}`);
    res.writeHead(204).end();
    return 'extra-delete';
  }
  if (method !== 'PUT') throw new StoreError('MethodNotAllowed', `${method} not allowed here`);
  const cookie = ctx.parseCookie(query.get('cookie'));
  // As for a needle PUT: the CRC the token covers binds it to these bytes, so it is
  // required and checked before anything is stored.
  const sent = req.headers[CRC_HEADER];
  if (typeof sent !== 'string' || !/^\d{1,10}$/.test(sent) || Number(sent) > 0xffff_ffff) {
    throw new StoreError('InvalidArgument', `an extra PUT needs ${CRC_HEADER}: <decimal u32>`);
  }
  const body = await readBody(req, ctx.maxNeedleSize);
  const crc = crc32c(body);
  if (sent !== String(crc)) {
    throw new StoreError('BadChecksum', `body CRC32C ${crc} does not match ${sent}`);
  }
  const ct = req.headers['content-type'];
  // The token was checked already: its time tells a replay from a request after a removal.
  const signedAt = Number(String(req.headers[AUTH_HEADER]).split('.')[0]) * 1000;
  const r = await ctx.store.putExtra({ volumeId: vid, needleId: nid, cookie }, body, ct, signedAt);
  ctx.onBytesIn(body.length);
  sendJson(res, r.created ? 201 : 200, { created: r.created, size: body.length });
  return 'extra-put';
}
