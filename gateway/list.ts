// ListObjects (v1), ListObjectsV2 and ListObjectVersions. Buckets are unversioned, so
// versions are listed as the single `null` version of each key (s3-tests and several
// clients clean buckets up through ListObjectVersions even when versioning is off).
import type { ListObjectsResult, ObjectRecord } from '../directory/api.ts';
import { owner, requireBucket } from './bucket.ts';
import { intParam, type S3Request } from './context.ts';
import { S3Error } from './error.ts';
import { xmlResponse } from './response.ts';
import { isoDate, type XmlNode } from './xml.ts';

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

function contents(o: ObjectRecord, withOwner: boolean, enc: (s: string) => string): XmlNode {
  return {
    Key: enc(o.key),
    LastModified: isoDate(o.lastModified),
    ETag: `"${o.etag}"`,
    Size: o.size,
    StorageClass: 'STANDARD',
    Owner: withOwner ? owner(o.owner) : undefined,
  };
}

function page(req: S3Request, after: string | undefined, max: number): Promise<ListObjectsResult> {
  const delimiter = req.query.get('delimiter') || undefined;
  return req.services.meta.listObjects(req.bucket, {
    prefix: req.query.get('prefix') ?? '',
    delimiter,
    after,
    maxKeys: max,
  });
}

export async function listObjectsV1(req: S3Request): Promise<Response> {
  await requireBucket(req);
  const enc = encoder(req);
  const max = intParam(req, 'max-keys', MAX_KEYS, MAX_KEYS);
  const marker = req.query.get('marker') ?? '';
  const delimiter = req.query.get('delimiter') ?? '';
  const r = await page(req, marker || undefined, max);
  return xmlResponse('ListBucketResult', {
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
    Contents: r.objects.map((o) => contents(o, true, enc)),
    CommonPrefixes: r.commonPrefixes.map((p) => ({ Prefix: enc(p) })),
  });
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

export async function listObjectsV2(req: S3Request): Promise<Response> {
  await requireBucket(req);
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
  const r = await page(req, after, max);
  const fetchOwner = req.query.get('fetch-owner') === 'true';
  return xmlResponse('ListBucketResult', {
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
    Contents: r.objects.map((o) => contents(o, fetchOwner, enc)),
    CommonPrefixes: r.commonPrefixes.map((p) => ({ Prefix: enc(p) })),
  });
}

export async function listObjectVersions(req: S3Request): Promise<Response> {
  await requireBucket(req);
  const enc = encoder(req);
  const max = intParam(req, 'max-keys', MAX_KEYS, MAX_KEYS);
  const keyMarker = req.query.get('key-marker') ?? '';
  const delimiter = req.query.get('delimiter') ?? '';
  const r = await page(req, keyMarker || undefined, max);
  return xmlResponse('ListVersionsResult', {
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
    Version: r.objects.map((o) => ({
      Key: enc(o.key),
      VersionId: 'null',
      IsLatest: true,
      LastModified: isoDate(o.lastModified),
      ETag: `"${o.etag}"`,
      Size: o.size,
      StorageClass: 'STANDARD',
      Owner: owner(o.owner),
    })),
    CommonPrefixes: r.commonPrefixes.map((p) => ({ Prefix: enc(p) })),
  });
}
