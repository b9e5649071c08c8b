// S3 request dispatch. S3 routes by method, by whether a bucket and key are present and
// by sub-resource query parameters, which a path router expresses poorly; Hono serves
// as the HTTP adapter and this table is the routing.

import {
  createBucket,
  deleteBucket,
  getBucketLocation,
  headBucket,
  listBuckets,
} from './bucket.ts';
import type { S3Request } from './context.ts';
import { copyObject } from './copy.ts';
import { deleteObject, deleteObjects } from './delete.ts';
import { S3Error } from './error.ts';
import { getObject, getObjectAttributes } from './get.ts';
import { listObjectsV1, listObjectsV2, listObjectVersions } from './list.ts';
import {
  abortUpload,
  completeUpload,
  createUpload,
  listParts,
  listUploads,
  uploadPart,
  uploadPartCopy,
} from './multipart.ts';
import { putObject } from './put.ts';

type Handler = (req: S3Request) => Promise<Response>;

/** Sub-resources we do not implement: answered with NotImplemented, never ignored. */
const UNSUPPORTED = [
  'acl',
  'policy',
  'policyStatus',
  'versioning',
  'lifecycle',
  'cors',
  'website',
  'tagging',
  'encryption',
  'replication',
  'logging',
  'notification',
  'accelerate',
  'requestPayment',
  'object-lock',
  'retention',
  'legal-hold',
  'torrent',
  'restore',
  'select',
  'analytics',
  'inventory',
  'metrics',
  'intelligent-tiering',
  'ownershipControls',
  'publicAccessBlock',
];

export function route(req: S3Request): Handler {
  const q = req.query;
  const m = req.method;
  for (const sub of UNSUPPORTED) {
    if (q.has(sub)) return notImplemented(`The ${sub} sub-resource is not implemented.`);
  }
  if (!req.bucket) {
    if (m === 'GET') return listBuckets;
    return methodNotAllowed;
  }
  if (!req.key) {
    switch (m) {
      case 'GET':
        if (q.has('location')) return getBucketLocation;
        if (q.has('uploads')) return listUploads;
        if (q.has('versions')) return listObjectVersions;
        if (q.get('list-type') === '2') return listObjectsV2;
        return listObjectsV1;
      case 'HEAD':
        return headBucket;
      case 'PUT':
        return createBucket;
      case 'DELETE':
        return deleteBucket;
      case 'POST':
        if (q.has('delete')) return deleteObjects;
        return notImplemented(
          'POST on a bucket supports ?delete only (browser POST uploads are not implemented).',
        );
      default:
        return methodNotAllowed;
    }
  }
  switch (m) {
    case 'GET':
      if (q.has('uploadId')) return listParts;
      if (q.has('attributes')) return getObjectAttributes;
      return (r) => getObject(r, false);
    case 'HEAD':
      return (r) => getObject(r, true);
    case 'PUT':
      if (q.has('partNumber') && q.has('uploadId')) {
        return req.headers['x-amz-copy-source'] !== undefined ? uploadPartCopy : uploadPart;
      }
      if (req.headers['x-amz-copy-source'] !== undefined) return copyObject;
      return putObject;
    case 'DELETE':
      if (q.has('uploadId')) return abortUpload;
      return deleteObject;
    case 'POST':
      if (q.has('uploads')) return createUpload;
      if (q.has('uploadId')) return completeUpload;
      return notImplemented('This POST is not implemented.');
    default:
      return methodNotAllowed;
  }
}

function notImplemented(message: string): Handler {
  return async () => {
    throw new S3Error('NotImplemented', message);
  };
}

async function methodNotAllowed(req: S3Request): Promise<Response> {
  throw new S3Error(
    'MethodNotAllowed',
    'The specified method is not allowed against this resource.',
    {
      extra: {
        Method: req.method,
        ResourceType: req.key ? 'OBJECT' : req.bucket ? 'BUCKET' : 'SERVICE',
      },
    },
  );
}
