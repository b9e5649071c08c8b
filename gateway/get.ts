// GetObject and HeadObject: conditional requests, single byte ranges, partNumber reads,
// response-* overrides, and a streamed body read chunk by chunk from the stores.

import { DataError } from '../data-path/api.ts';
import type { ObjectRecord } from '../directory/model/api.ts';
import type { BucketRequest } from './access.ts';
import { header, type S3Request } from './context.ts';
import { S3Error } from './error.ts';
import { empty, xmlResponse } from './response.ts';
import { headerBytes } from './upload.ts';
import type { XmlNode } from './xml.ts';

// Every GET formats its object's Last-Modified: hot objects keep theirs.
const HTTP_DATE_CACHE_SIZE = 1024;
const httpDates = new Map<number, string>();

export function httpDate(ms: number): string {
  let s = httpDates.get(ms);
  if (s === undefined) {
    s = new Date(ms).toUTCString();
    if (httpDates.size >= HTTP_DATE_CACHE_SIZE) httpDates.clear();
    httpDates.set(ms, s);
  }
  return s;
}

function parseHttpDate(s: string | undefined): number | null {
  if (!s) return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}

function etagMatches(list: string, etag: string): boolean {
  return list.split(',').some((t) => {
    const v = t.trim().replace(/^W\//, '');
    return v === '*' || v === `"${etag}"` || v === etag;
  });
}

function preconditionFailed(prefix: string): S3Error {
  return new S3Error(
    'PreconditionFailed',
    'At least one of the pre-conditions you specified did not hold',
    { extra: { Condition: prefix ? 'x-amz-copy-source-If-Match' : 'If-Match' } },
  );
}

/**
 * RFC 7232 order as S3 applies it: If-Match beats If-Unmodified-Since, If-None-Match
 * beats If-Modified-Since. `prefix` selects the header family (x-amz-copy-source-).
 */
export function checkConditions(
  req: S3Request,
  obj: ObjectRecord,
  prefix = '',
): 'ok' | 'not-modified' {
  const ifMatch = header(req, `${prefix}if-match`);
  const ifNoneMatch = header(req, `${prefix}if-none-match`);
  const ifModifiedSince = parseHttpDate(header(req, `${prefix}if-modified-since`));
  const ifUnmodifiedSince = parseHttpDate(header(req, `${prefix}if-unmodified-since`));
  // HTTP dates have second precision: compare on whole seconds.
  const mtime = Math.floor(obj.lastModified / 1000) * 1000;
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, obj.etag)) throw preconditionFailed(prefix);
  } else if (ifUnmodifiedSince !== null && mtime > ifUnmodifiedSince) {
    throw preconditionFailed(prefix);
  }
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, obj.etag)) {
      if (prefix) throw preconditionFailed(prefix);
      return 'not-modified';
    }
  } else if (
    ifModifiedSince !== null &&
    mtime <= ifModifiedSince &&
    ifModifiedSince <= Date.now()
  ) {
    if (prefix) throw preconditionFailed(prefix);
    return 'not-modified';
  }
  return 'ok';
}

/** A single `bytes=` range against `size`; null for none (or one S3 would ignore). */
export function parseRange(
  value: string | undefined,
  size: number,
): { start: number; end: number } | null {
  if (value === undefined) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(value);
  if (!m || (m[1] === '' && m[2] === '')) return null; // malformed or multi-range: whole object
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) throw rangeError(size);
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size) throw rangeError(size);
  return { start, end };
}

function rangeError(size: number): S3Error {
  return new S3Error('InvalidRange', 'The requested range is not satisfiable', {
    extra: { ActualObjectSize: String(size) },
    headers: { 'content-range': `bytes */${size}` },
  });
}

const OVERRIDES: readonly [query: string, header: string][] = [
  ['response-content-type', 'content-type'],
  ['response-content-language', 'content-language'],
  ['response-expires', 'expires'],
  ['response-cache-control', 'cache-control'],
  ['response-content-disposition', 'content-disposition'],
  ['response-content-encoding', 'content-encoding'],
];

export function objectHeaders(obj: ObjectRecord, req: S3Request): Record<string, string> {
  const h: Record<string, string> = {
    etag: `"${obj.etag}"`,
    'last-modified': httpDate(obj.lastModified),
    'accept-ranges': 'bytes',
    'content-type': obj.contentType ?? 'binary/octet-stream',
  };
  if (obj.contentEncoding) h['content-encoding'] = obj.contentEncoding;
  if (obj.contentDisposition) h['content-disposition'] = obj.contentDisposition;
  if (obj.contentLanguage) h['content-language'] = obj.contentLanguage;
  if (obj.cacheControl) h['cache-control'] = obj.cacheControl;
  if (obj.expires) h.expires = obj.expires;
  for (const [k, v] of Object.entries(obj.userMeta)) h[`x-amz-meta-${k}`] = headerBytes(v);
  if (obj.partSizes) h['x-amz-mp-parts-count'] = String(obj.partSizes.length);
  // A whole-object checksum describes the whole object only: never sent with a range.
  const ranged = req.headers.range !== undefined || req.query.has('partNumber');
  if (!ranged && header(req, 'x-amz-checksum-mode')?.toUpperCase() === 'ENABLED' && obj.checksums) {
    for (const [algo, v] of Object.entries(obj.checksums)) h[`x-amz-checksum-${algo}`] = v;
  }
  if (req.query.size > 0) {
    for (const [q, name] of OVERRIDES) {
      const v = req.query.get(q);
      if (v !== null) h[name] = v;
    }
  }
  return h;
}

export async function loadObject(req: BucketRequest): Promise<ObjectRecord> {
  const obj = await req.services.meta.getObject(req.bucket, req.key);
  if (!obj) {
    throw new S3Error('NoSuchKey', 'The specified key does not exist.', {
      resource: `/${req.bucket}/${req.key}`,
      extra: { Key: req.key },
    });
  }
  return obj;
}

function partRange(obj: ObjectRecord, raw: string): { start: number; end: number } {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > 10000) {
    throw new S3Error(
      'InvalidArgument',
      'Part number must be an integer between 1 and 10000, inclusive',
      {
        extra: { ArgumentName: 'partNumber', ArgumentValue: raw },
      },
    );
  }
  const sizes = obj.partSizes ?? [obj.size];
  if (n > sizes.length)
    throw new S3Error('InvalidPart', 'The requested partnumber is not satisfiable');
  let start = 0;
  for (let i = 0; i < n - 1; i++) start += sizes[i]!;
  return { start, end: start + sizes[n - 1]! - 1 };
}

export async function getObject(req: BucketRequest, head: boolean): Promise<Response> {
  try {
    return await getOnce(req, head);
  } catch (e) {
    // An overwrite or delete committed between our metadata read and the data read has
    // freed the needles we were about to read: answer from the record as it is now.
    if (e instanceof DataError && e.code === 'NeedleGone') return getOnce(req, head);
    throw e;
  }
}

async function getOnce(req: BucketRequest, head: boolean): Promise<Response> {
  const obj = await loadObject(req);
  const headers = objectHeaders(obj, req);
  if (checkConditions(req, obj) === 'not-modified') {
    return empty(304, { etag: headers.etag!, 'last-modified': headers['last-modified']! });
  }
  const partNumber = req.query.get('partNumber');
  const range =
    partNumber !== null ? partRange(obj, partNumber) : parseRange(header(req, 'range'), obj.size);
  const start = range ? range.start : 0;
  const end = range ? range.end : obj.size - 1;
  headers['content-length'] = String(range ? end - start + 1 : obj.size);
  if (range) headers['content-range'] = `bytes ${start}-${end}/${obj.size}`;
  const status = range ? 206 : 200;
  if (head || obj.size === 0) return new Response(null, { status, headers });
  const it = req.services.data.read(obj.chunks, start, end)[Symbol.asyncIterator]();
  // The first chunk is read before answering, so a store failure becomes an error
  // response rather than a cut connection; a small object is then already complete.
  const first = await it.next();
  const length = end - start + 1;
  if (first.done) throw new S3Error('InternalError', 'object data missing');
  if (first.value.length === length) return new Response(first.value, { status, headers });
  let pending: Buffer | null = first.value;
  const body = new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      if (pending) {
        ctrl.enqueue(pending);
        pending = null;
        return;
      }
      try {
        const r = await it.next();
        if (r.done) ctrl.close();
        else ctrl.enqueue(r.value);
      } catch (e) {
        req.services.log.error(
          { err: e, bucket: req.bucket, key: req.key },
          'read failed mid-body',
        );
        ctrl.error(e);
      }
    },
    async cancel() {
      await it.return?.(undefined);
    },
  });
  return new Response(body, { status, headers });
}

export const CHECKSUM_NAMES: Record<string, string> = {
  crc32: 'ChecksumCRC32',
  crc32c: 'ChecksumCRC32C',
  crc64nvme: 'ChecksumCRC64NVME',
  sha1: 'ChecksumSHA1',
  sha256: 'ChecksumSHA256',
};

/** GetObjectAttributes (GET ?attributes): ETag, Checksum, ObjectParts, StorageClass, ObjectSize. */
export async function getObjectAttributes(req: BucketRequest): Promise<Response> {
  const obj = await loadObject(req);
  const wanted = new Set(
    (header(req, 'x-amz-object-attributes') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  if (wanted.size === 0) {
    throw new S3Error('InvalidArgument', 'x-amz-object-attributes header must be specified.', {
      extra: { ArgumentName: 'x-amz-object-attributes' },
    });
  }
  const body: XmlNode = {};
  if (wanted.has('ETag')) body.ETag = obj.etag;
  if (wanted.has('Checksum') && obj.checksums) {
    const c: XmlNode = {};
    for (const [algo, v] of Object.entries(obj.checksums)) {
      const name = CHECKSUM_NAMES[algo];
      if (name) c[name] = v;
    }
    if (Object.keys(c).length > 0) body.Checksum = c;
  }
  if (wanted.has('ObjectParts') && obj.partSizes) {
    const intHeader = (name: string, def: number) => {
      const raw = header(req, name);
      if (raw === undefined) return def;
      if (!/^\d+$/.test(raw.trim())) {
        throw new S3Error('InvalidArgument', `${name} must be a non-negative integer.`, {
          extra: { ArgumentName: name, ArgumentValue: raw },
        });
      }
      return Number(raw.trim());
    };
    const max = Math.min(intHeader('x-amz-max-parts', 1000), 1000);
    const marker = intHeader('x-amz-part-number-marker', 0);
    const sizes = obj.partSizes;
    const parts = sizes
      .map((size, i) => ({ PartNumber: i + 1, Size: size }))
      .filter((p) => p.PartNumber > marker);
    const page = parts.slice(0, max);
    const truncated = parts.length > page.length;
    body.ObjectParts = {
      PartsCount: sizes.length,
      PartNumberMarker: marker,
      NextPartNumberMarker: page.length > 0 ? page[page.length - 1]!.PartNumber : marker,
      MaxParts: max,
      IsTruncated: truncated,
      Part: page,
    };
  }
  if (wanted.has('StorageClass')) body.StorageClass = 'STANDARD';
  if (wanted.has('ObjectSize')) body.ObjectSize = obj.size;
  return xmlResponse('GetObjectAttributesResponse', body, 200, {
    'last-modified': httpDate(obj.lastModified),
  });
}
