// Several needle GETs in one request: POST /needles/_read (issue 15).
//
// A gateway under load sends one HTTP request per needle to each store, and both ends pay
// for each one: undici and llhttp on the gateway, node:http, the token check and the
// metrics on the store — together more than reading the needle. Reads that a gateway makes
// while earlier ones to the same store are outstanding leave together instead (ReadBatcher
// in batch-read-client.ts), so the per-request cost is shared by all of them.
//
// Request body: N items of 17 bytes — u32 volume, u64 needle, u32 cookie, u8 cache hint
// (0 none, 1 fill, 2 drop) — under a token that covers its SHA-256 (signBody): the body
// says what is read, so it is authenticated like the head. No ranges: a ranged read takes
// the single-needle route.
//
// Answer: 200 with one frame per item, in order. A needle: u8 0, u32 size, u32 CRC32C,
// u32 length, bytes. A failure: u8 1, u16 status, u32 length, the JSON error a single GET
// would have answered. Each item fails or succeeds on its own, as it would alone.
import type http from 'node:http';
import { crc32c } from '@node-rs/crc32';
import { DIGEST_HEADER, sha256Hex } from '../common/internal-auth.ts';
import { forbidden, readBody } from '../common/internal-http.ts';
import { StoreError, type StoreErrorCode } from './errors.ts';
import type { StoreMetrics } from './metrics.ts';
import type { CacheHint, NeedleRef } from './needle-ref.ts';
import type { Store } from './store.ts';

export const BATCH_READ_PATH = '/needles/_read';
/** Most needles in one request. */
export const MAX_BATCH_READS = 256;
const ITEM_BYTES = 17;
export const MAX_BATCH_BODY = MAX_BATCH_READS * ITEM_BYTES;

export interface BatchItem extends NeedleRef {
  hint?: CacheHint;
}

/** What one item of a batch got: the needle, or the error a single GET would have got. */
export type ItemResult =
  | { ok: true; data: Buffer; size: number }
  | { ok: false; error: StoreError };

const HINTS: (CacheHint | undefined)[] = [undefined, 'fill', 'drop'];

export function encodeReadRequest(items: readonly BatchItem[]): Buffer {
  const b = Buffer.allocUnsafe(items.length * ITEM_BYTES);
  let o = 0;
  for (const it of items) {
    b.writeUInt32BE(it.volumeId, o);
    b.writeBigUInt64BE(it.needleId, o + 4);
    b.writeUInt32BE(it.cookie >>> 0, o + 12);
    b[o + 16] = it.hint === 'fill' ? 1 : it.hint === 'drop' ? 2 : 0;
    o += ITEM_BYTES;
  }
  return b;
}

export function decodeReadRequest(body: Buffer): BatchItem[] {
  if (body.length === 0 || body.length % ITEM_BYTES !== 0 || body.length > MAX_BATCH_BODY) {
    throw new StoreError('InvalidArgument', `a read batch of ${body.length} bytes`);
  }
  const items: BatchItem[] = [];
  for (let o = 0; o < body.length; o += ITEM_BYTES) {
    const h = body[o + 16]!;
    if (h > 2) throw new StoreError('InvalidArgument', `cache hint ${h}`);
    items.push({
      volumeId: body.readUInt32BE(o),
      needleId: body.readBigUInt64BE(o + 4),
      cookie: body.readUInt32BE(o + 12),
      hint: HINTS[h],
    });
  }
  return items;
}

/** The answer's frames, in the items' order. */
export function encodeReadAnswer(results: readonly ItemResult[]): Buffer[] {
  const parts: Buffer[] = [];
  for (const r of results) {
    if (r.ok) {
      const head = Buffer.allocUnsafe(13);
      head[0] = 0;
      head.writeUInt32BE(r.size, 1);
      head.writeUInt32BE(crc32c(r.data), 5);
      head.writeUInt32BE(r.data.length, 9);
      parts.push(head, r.data);
    } else {
      const json = Buffer.from(JSON.stringify(r.error.toJSON()));
      const head = Buffer.allocUnsafe(7);
      head[0] = 1;
      head.writeUInt16BE(r.error.status, 1);
      head.writeUInt32BE(json.length, 3);
      parts.push(head, json);
    }
  }
  return parts;
}

/**
 * Splits an answer into one result per item. A frame that does not parse, a count that
 * does not match, or a CRC that does not (damage in transit) fails the item or the batch
 * as NeedleCorrupt / InternalError: never bytes that were not sent.
 */
export function decodeReadAnswer(body: Buffer, count: number): ItemResult[] {
  const out: ItemResult[] = [];
  let o = 0;
  const short = () => new StoreError('InternalError', 'read batch answer cut short');
  for (let i = 0; i < count; i++) {
    if (o >= body.length) throw short();
    if (body[o] === 0) {
      if (o + 13 > body.length) throw short();
      const size = body.readUInt32BE(o + 1);
      const crc = body.readUInt32BE(o + 5);
      const len = body.readUInt32BE(o + 9);
      o += 13;
      if (o + len > body.length) throw short();
      const data = body.subarray(o, o + len);
      o += len;
      out.push(
        crc32c(data) === crc
          ? { ok: true, data, size }
          : { ok: false, error: new StoreError('NeedleCorrupt', 'needle damaged in transit') },
      );
    } else if (body[o] === 1) {
      if (o + 7 > body.length) throw short();
      const status = body.readUInt16BE(o + 1);
      const len = body.readUInt32BE(o + 3);
      o += 7;
      if (o + len > body.length) throw short();
      out.push({ ok: false, error: errorOf(status, body.subarray(o, o + len)) });
      o += len;
    } else {
      throw new StoreError('InternalError', `read batch frame kind ${body[o]}`);
    }
  }
  if (o !== body.length) throw new StoreError('InternalError', 'read batch answer too long');
  return out;
}

/** The StoreError a single GET's error answer would have made (StoreClient.call). */
export function errorOf(status: number, json: Buffer): StoreError {
  try {
    const { error, message, ...rest } = JSON.parse(json.toString()) as {
      error: StoreErrorCode;
      message: string;
    };
    return new StoreError(error, message, Object.keys(rest).length > 0 ? rest : undefined);
  } catch {
    if (status === 404) return new StoreError('NoSuchNeedle', `HTTP ${status}`);
    if (status === 403) return new StoreError('Forbidden', `HTTP ${status}`);
    return new StoreError('InternalError', `HTTP ${status}`);
  }
}

/**
 * Serves POST /needles/_read. The head's token was checked by the server before this
 * (authorizeHead covers x-ks-content-sha256); the body must match that digest.
 */
export async function serveReadBatch(
  store: Store,
  metrics: StoreMetrics,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<string> {
  const digest = req.headers[DIGEST_HEADER];
  if (typeof digest !== 'string') throw forbidden();
  const body = await readBody(req, MAX_BATCH_BODY);
  if (sha256Hex(body) !== digest) throw forbidden();
  const items = decodeReadRequest(body);
  metrics.inflightReads += items.length;
  let results: ItemResult[];
  try {
    results = await Promise.all(
      items.map((it) =>
        store.read(it.volumeId, it.needleId, it.cookie, undefined, { cache: it.hint }).then(
          (r): ItemResult => ({ ok: true, data: r.data, size: r.size }),
          (e: unknown): ItemResult => ({ ok: false, error: asStoreError(e) }),
        ),
      ),
    );
  } finally {
    metrics.inflightReads -= items.length;
  }
  const parts = encodeReadAnswer(results);
  let length = 0;
  for (const p of parts) length += p.length;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': length });
  res.end(Buffer.concat(parts, length));
  metrics.bytesOut.inc(length);
  return 'read-batch';
}

const asStoreError = (e: unknown): StoreError =>
  e instanceof StoreError ? e : new StoreError('InternalError', (e as Error)?.message ?? String(e));
