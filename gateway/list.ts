// ListObjects (v1), ListObjectsV2 and ListObjectVersions. Buckets are unversioned, so
// versions are listed as the single `null` version of each key (s3-tests and several
// clients clean buckets up through ListObjectVersions even when versioning is off).
import type { ListObjectsResult, ObjectSummary } from '../directory/model/api.ts';
import { intParam, type S3Request } from './context.ts';
import { S3Error } from './error.ts';
import { escapeXml, isoDate, toXml, type XmlNode } from './xml.ts';

export const MAX_KEYS = 1000;

function encoder(req: S3Request): (s: string) => string {
  const enc = req.query.get('encoding-type');
  if (enc === null) return (s) => s;
  if (enc.toLowerCase() !== 'url') {
    throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', {
      extra: { ArgumentName: 'encoding-type', ArgumentValue: enc },
    });
  }
  return (s) => encodeURIComponent(s).replace(/%2F/g, '/');
}

// A page has up to 1000 entries of five or six fields each: building an XmlNode per entry
// and escaping every value cost the gateway ~2 ms a page, so entries are written directly,
// and only text that needs it goes through escapeXml (byte-identical to toXml's output;
// list.test.ts checks).

// Printable ASCII but & < > " ' — what escapeXml returns unchanged.
const PLAIN = /^[ !#-%(-;=?-~]*$/;

function text(s: string): string {
  return PLAIN.test(s) ? s : escapeXml(s);
}

function ownerXml(userId: string): string {
  const id = text(userId);
  return `<Owner><ID>${id}</ID><DisplayName>${id}</DisplayName></Owner>`;
}

export function contentsXml(o: ObjectSummary, withOwner: boolean, enc: (s: string) => string) {
  return `<Contents><Key>${text(enc(o.key))}</Key><LastModified>${isoDate(o.lastModified)}</LastModified><ETag>&quot;${text(o.etag)}&quot;</ETag><Size>${text(String(o.size))}</Size><StorageClass>STANDARD</StorageClass>${withOwner ? ownerXml(o.owner) : ''}</Contents>`;
}

export function versionXml(o: ObjectSummary, enc: (s: string) => string): string {
  return `<Version><Key>${text(enc(o.key))}</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>${isoDate(o.lastModified)}</LastModified><ETag>&quot;${text(o.etag)}&quot;</ETag><Size>${text(String(o.size))}</Size><StorageClass>STANDARD</StorageClass>${ownerXml(o.owner)}</Version>`;
}

export function prefixesXml(prefixes: string[], enc: (s: string) => string): string {
  let out = '';
  for (const p of prefixes)
    out += `<CommonPrefixes><Prefix>${text(enc(p))}</Prefix></CommonPrefixes>`;
  return out;
}

/** toXml(root, head) with `entries` (rendered XML) after head's fields. */
export function listXml(root: string, head: XmlNode, entries: string): string {
  const close = `</${root}>`;
  const xml = toXml(root, head);
  return xml.slice(0, xml.length - close.length) + entries + close;
}

function listResponse(root: string, head: XmlNode, entries: string): Response {
  return new Response(listXml(root, head, entries), {
    headers: { 'content-type': 'application/xml' },
  });
}

export function objectsXml(
  r: ListObjectsResult<ObjectSummary>,
  withOwner: boolean,
  enc: (s: string) => string,
) {
  let out = '';
  for (const o of r.objects) out += contentsXml(o, withOwner, enc);
  return out + prefixesXml(r.commonPrefixes, enc);
}

type PageFn = (after: string | undefined, max: number) => Promise<ListObjectsResult<ObjectSummary>>;

/**
 * The page is asked for as soon as the arguments are read, with no await before it: these
 * routes run alongside their bucket check (router.ts), and a MetadataClient sends both in
 * one batch, one trip to the directory and one read barrier instead of two. The pipeline
 * lets the check decide first: its NoSuchBucket/AccessDenied wins over a bad argument and
 * over the page.
 */
function withBucket(
  req: S3Request,
  handler: (page: PageFn) => Promise<Response>,
): Promise<Response> {
  return handler((after, max) =>
    req.services.meta.listObjectSummaries(req.bucket, {
      prefix: req.query.get('prefix') ?? '',
      delimiter: req.query.get('delimiter') || undefined,
      after,
      maxKeys: max,
    }),
  );
}

export function listObjectsV1(req: S3Request): Promise<Response> {
  return withBucket(req, (page) => listV1(req, page));
}

async function listV1(req: S3Request, page: PageFn): Promise<Response> {
  const enc = encoder(req);
  const max = intParam(req, 'max-keys', MAX_KEYS, MAX_KEYS);
  const marker = req.query.get('marker') ?? '';
  const delimiter = req.query.get('delimiter') ?? '';
  const r = await page(marker || undefined, max);
  const head: XmlNode = {
    Name: req.bucket,
    // Not url-encoded in V1 (as AWS: SDKs decode Delimiter, Marker, NextMarker and keys only).
    Prefix: req.query.get('prefix') ?? '',
    Marker: enc(marker),
    // S3 sends NextMarker only with a delimiter; without one clients use the last key.
    NextMarker: r.isTruncated && delimiter && r.last !== undefined ? enc(r.last) : undefined,
    MaxKeys: max,
    Delimiter: delimiter ? enc(delimiter) : undefined,
    IsTruncated: r.isTruncated,
    EncodingType: req.query.get('encoding-type') ? 'url' : undefined,
  };
  return listResponse('ListBucketResult', head, objectsXml(r, true, enc));
}

function decodeToken(token: string): string {
  const key = Buffer.from(token, 'base64url').toString('utf8');
  if (Buffer.from(key, 'utf8').toString('base64url') !== token) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', {
      extra: { ArgumentName: 'continuation-token' },
    });
  }
  return key;
}

export function listObjectsV2(req: S3Request): Promise<Response> {
  return withBucket(req, (page) => listV2(req, page));
}

async function listV2(req: S3Request, page: PageFn): Promise<Response> {
  const enc = encoder(req);
  const max = intParam(req, 'max-keys', MAX_KEYS, MAX_KEYS);
  const token = req.query.get('continuation-token');
  const startAfter = req.query.get('start-after') ?? '';
  const delimiter = req.query.get('delimiter') ?? '';
  let after = startAfter || undefined;
  if (token !== null) {
    const k = decodeToken(token);
    if (after === undefined || k > after) after = k;
  }
  const r = await page(after, max);
  const fetchOwner = req.query.get('fetch-owner') === 'true';
  const head: XmlNode = {
    Name: req.bucket,
    Prefix: enc(req.query.get('prefix') ?? ''),
    StartAfter: startAfter ? enc(startAfter) : undefined,
    ContinuationToken: token ?? undefined,
    NextContinuationToken:
      r.isTruncated && r.last !== undefined
        ? Buffer.from(r.last, 'utf8').toString('base64url')
        : undefined,
    KeyCount: r.objects.length + r.commonPrefixes.length,
    MaxKeys: max,
    Delimiter: delimiter ? enc(delimiter) : undefined,
    IsTruncated: r.isTruncated,
    EncodingType: req.query.get('encoding-type') ? 'url' : undefined,
  };
  return listResponse('ListBucketResult', head, objectsXml(r, fetchOwner, enc));
}

export function listObjectVersions(req: S3Request): Promise<Response> {
  return withBucket(req, (page) => listVersions(req, page));
}

async function listVersions(req: S3Request, page: PageFn): Promise<Response> {
  const enc = encoder(req);
  const max = intParam(req, 'max-keys', MAX_KEYS, MAX_KEYS);
  const keyMarker = req.query.get('key-marker') ?? '';
  const delimiter = req.query.get('delimiter') ?? '';
  const r = await page(keyMarker || undefined, max);
  const head: XmlNode = {
    Name: req.bucket,
    Prefix: enc(req.query.get('prefix') ?? ''),
    KeyMarker: enc(keyMarker),
    VersionIdMarker: req.query.get('version-id-marker') ?? '',
    NextKeyMarker: r.isTruncated && r.last !== undefined ? enc(r.last) : undefined,
    NextVersionIdMarker: r.isTruncated ? 'null' : undefined,
    MaxKeys: max,
    Delimiter: delimiter ? enc(delimiter) : undefined,
    IsTruncated: r.isTruncated,
    EncodingType: req.query.get('encoding-type') ? 'url' : undefined,
  };
  let entries = '';
  for (const o of r.objects) entries += versionXml(o, enc);
  return listResponse('ListVersionsResult', head, entries + prefixesXml(r.commonPrefixes, enc));
}
