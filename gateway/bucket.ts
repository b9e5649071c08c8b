// Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation.

import { MetadataError } from '../directory/model/api.ts';
import { type BucketRequest, guardOf } from './access.ts';
import { readSmallBody, type S3Request, type ServiceRequest } from './context.ts';
import { S3Error } from './error.ts';
import { replicaHeader } from './replicas.ts';
import { empty, xmlResponse } from './response.ts';
import { escapeXml, isoDate, parseXmlBody, S3_NS } from './xml.ts';

/** S3's naming rules for new buckets (existing names are only looked up). */
export function validateBucketName(name: string): void {
  const bad = (why: string) =>
    new S3Error('InvalidBucketName', `The specified bucket is not valid: ${why}.`, {
      extra: { BucketName: name },
    });
  if (name.length < 3 || name.length > 63) throw bad('length must be 3 to 63');
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name))
    throw bad('lowercase letters, digits, dots and hyphens; start and end with a letter or digit');
  if (/\.\.|\.-|-\./.test(name)) throw bad('no adjacent dots or dot-hyphen pairs');
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) throw bad('must not look like an IP address');
  if (name.startsWith('xn--') || name.endsWith('-s3alias') || name.endsWith('--ol-s3'))
    throw bad('reserved prefix or suffix');
}

export function owner(userId: string) {
  return { ID: userId, DisplayName: userId };
}

export async function listBuckets(req: ServiceRequest): Promise<Response> {
  const userId = req.userId!;
  let buckets = await req.services.meta.listBuckets(userId);
  // Optional pagination (max-buckets, continuation-token = last name seen) and prefix.
  const prefix = req.query.get('prefix');
  if (prefix) buckets = buckets.filter((b) => b.name.startsWith(prefix));
  const token = req.query.get('continuation-token');
  if (token) {
    const after = Buffer.from(token, 'base64url').toString('utf8');
    buckets = buckets.filter((b) => b.name > after);
  }
  const rawMax = req.query.get('max-buckets');
  let next: string | undefined;
  if (rawMax !== null) {
    const max = Number(rawMax);
    if (!/^\d+$/.test(rawMax) || max < 1 || max > 10000) {
      throw new S3Error('InvalidArgument', 'max-buckets must be an integer from 1 to 10000.', {
        extra: { ArgumentName: 'max-buckets', ArgumentValue: rawMax },
      });
    }
    if (buckets.length > max) {
      buckets = buckets.slice(0, max);
      next = Buffer.from(buckets[max - 1]!.name, 'utf8').toString('base64url');
    }
  }
  return xmlResponse('ListAllMyBucketsResult', {
    Owner: owner(userId),
    Buckets: { Bucket: buckets.map((b) => ({ Name: b.name, CreationDate: isoDate(b.createdAt) })) },
    ContinuationToken: next,
    Prefix: prefix ?? undefined,
  });
}

/** A region name: AWS's look like us-east-1 (and the legacy EU); other stores use short words. */
const REGION_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$/;

export async function createBucket(req: S3Request): Promise<Response> {
  validateBucketName(req.bucket);
  const body = await readSmallBody(req, 64 * 1024);
  let region = req.services.config.region;
  if (body.length > 0) {
    const doc = parseXmlBody(body.toString('utf8'), 'CreateBucketConfiguration');
    const constraint = doc.LocationConstraint;
    if (typeof constraint === 'string' && constraint !== '') {
      // It comes back in a response header (HeadBucket) and XML: a region name only.
      if (!REGION_NAME.test(constraint)) {
        throw new S3Error(
          'InvalidLocationConstraint',
          'The specified location-constraint is not valid.',
          { extra: { LocationConstraint: constraint.slice(0, 64) } },
        );
      }
      region = constraint;
    }
  }
  const replicaCount = replicaHeader(req);
  try {
    await req.services.meta.createBucket({
      name: req.bucket,
      owner: req.userId!,
      createdAt: Date.now(),
      region,
      ...(replicaCount === undefined ? {} : { replicaCount }),
    });
  } catch (e) {
    if (e instanceof MetadataError && e.code === 'BucketAlreadyOwnedByYou') {
      // AWS's legacy us-east-1 behaviour: re-creating a bucket you own is a no-op 200.
      const existing = await req.services.meta.getBucket(req.bucket);
      if (existing?.region === 'us-east-1' && region === 'us-east-1') {
        return empty(200, { location: `/${req.bucket}` });
      }
      throw new S3Error(
        'BucketAlreadyOwnedByYou',
        'Your previous request to create the named bucket succeeded and you already own it.',
        {
          resource: `/${req.bucket}`,
          extra: { BucketName: req.bucket },
        },
      );
    }
    if (e instanceof MetadataError && e.code === 'BucketAlreadyExists') {
      throw new S3Error(
        'BucketAlreadyExists',
        'The requested bucket name is not available. Please select a different name and try again.',
        {
          resource: `/${req.bucket}`,
          extra: { BucketName: req.bucket },
        },
      );
    }
    throw e;
  }
  return empty(200, { location: `/${req.bucket}` });
}

export async function deleteBucket(req: BucketRequest): Promise<Response> {
  const guard = guardOf(req);
  // As on AWS, multipart uploads still in progress do not keep a bucket alive: they are
  // aborted (their parts freed) with it. Objects do.
  for (;;) {
    const page = await req.services.meta.listUploads(req.bucket, { maxUploads: 1000 });
    for (const u of page.uploads) {
      try {
        const parts = await req.services.meta.abortUpload(req.bucket, u.key, u.uploadId, guard);
        for (const p of parts) await req.services.data.free(p.chunks);
      } catch (e) {
        if (!(e instanceof MetadataError && e.code === 'NoSuchUpload')) throw e;
      }
    }
    if (!page.isTruncated || page.uploads.length === 0) break;
  }
  try {
    await req.services.meta.deleteBucket(req.bucket, guard);
  } catch (e) {
    if (e instanceof MetadataError && e.code === 'BucketNotEmpty') {
      throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty.', {
        extra: { BucketName: req.bucket },
      });
    }
    throw e;
  }
  return empty(204);
}

export async function headBucket(req: BucketRequest): Promise<Response> {
  const { region } = req.bucketRecord;
  // Buckets created before CreateBucket checked the constraint may hold any text (CR/LF made
  // every HeadBucket 500, 60 KB went into the header): such a region is left out.
  return empty(200, REGION_NAME.test(region) ? { 'x-amz-bucket-region': region } : {});
}

export async function getBucketLocation(req: BucketRequest): Promise<Response> {
  const b = req.bucketRecord;
  // us-east-1 is reported as an empty constraint, as AWS does.
  const loc = b.region === 'us-east-1' ? '' : b.region;
  return new Response(
    `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="${S3_NS}">${escapeXml(loc)}</LocationConstraint>`,
    { headers: { 'content-type': 'application/xml' } },
  );
}
