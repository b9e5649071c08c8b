// S3 request dispatch. S3 routes by method, by whether a bucket and key are present and
// by sub-resource query parameters, which a path router expresses poorly; Hono serves
// as the HTTP adapter and this table is the routing. Each route also says what access to
// the bucket its operation needs: the pipeline (app.ts) checks it before the handler runs,
// and a handler that uses the bucket can only be routed with a level that resolves it.

import type { BucketAccess, BucketRequest } from './access.ts';
import {
  createBucket,
  deleteBucket,
  getBucketLocation,
  headBucket,
  listBuckets,
} from './bucket.ts';
import type { S3Request, ServiceRequest } from './context.ts';
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
  partNumber,
  uploadPart,
  uploadPartCopy,
} from './multipart.ts';
import { putObject } from './put.ts';

type ServiceHandler = (req: ServiceRequest) => Promise<Response>;
type Handler = (req: S3Request) => Promise<Response>;
type BucketHandler = (req: BucketRequest) => Promise<Response>;

/**
 * An operation and the access it needs. Only a bucket-level route hands its handler the
 * bucket; a 'none' handler cannot name one, and 'create' is CreateBucket's alone.
 */
export type Route =
  | { readonly access: 'none'; readonly handler: ServiceHandler }
  | { readonly access: 'create'; readonly handler: Handler }
  | {
      readonly access: BucketAccess;
      readonly alongside?: false;
      readonly handler: BucketHandler;
      /** Request-shape checks S3 makes before it looks at the bucket. */
      readonly validate?: (req: S3Request) => void;
    }
  | {
      /**
       * A read that runs while its bucket check is under way (its metadata requests can
       * share the check's trip to the directory); the pipeline lets the check decide
       * the outcome, so nothing it read is answered unless the check passed.
       */
      readonly access: 'read';
      readonly alongside: true;
      readonly handler: Handler;
    };

const none = (handler: ServiceHandler): Route => ({ access: 'none', handler });
const read = (handler: BucketHandler): Route => ({ access: 'read', handler });
const write = (handler: BucketHandler, validate?: (req: S3Request) => void): Route => ({
  access: 'write',
  handler,
  validate,
});
const owner = (handler: BucketHandler): Route => ({ access: 'owner', handler });
const readAlongside = (handler: Handler): Route => ({ access: 'read', alongside: true, handler });

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

// Built once: routing allocates nothing per request.
const LIST_BUCKETS = none(listBuckets);
const METHOD_NOT_ALLOWED_SERVICE = methodNotAllowed('SERVICE');
const METHOD_NOT_ALLOWED_BUCKET = methodNotAllowed('BUCKET');
const METHOD_NOT_ALLOWED_OBJECT = methodNotAllowed('OBJECT');
const GET_BUCKET_LOCATION = read(getBucketLocation);
const LIST_UPLOADS = read(listUploads);
const LIST_OBJECT_VERSIONS = readAlongside(listObjectVersions);
const LIST_OBJECTS_V2 = readAlongside(listObjectsV2);
const LIST_OBJECTS_V1 = readAlongside(listObjectsV1);
const HEAD_BUCKET = read(headBucket);
// Any authenticated user may try; the directory decides who gets the name.
const CREATE_BUCKET: Route = { access: 'create', handler: createBucket };
const DELETE_BUCKET = owner(deleteBucket);
const DELETE_OBJECTS = write(deleteObjects);
const POST_BUCKET = notImplemented(
  'POST on a bucket supports ?delete only (browser POST uploads are not implemented).',
);
const LIST_PARTS = read(listParts);
const GET_OBJECT_ATTRIBUTES = read(getObjectAttributes);
const GET_OBJECT = read((r) => getObject(r, false));
const HEAD_OBJECT = read((r) => getObject(r, true));
const UPLOAD_PART_COPY = write(uploadPartCopy, partNumber);
const UPLOAD_PART = write(uploadPart, partNumber);
// The source bucket's read access is checked by the handler (copy.ts loadCopySource).
const COPY_OBJECT = write(copyObject);
const PUT_OBJECT = write(putObject);
const ABORT_UPLOAD = write(abortUpload);
const DELETE_OBJECT = write(deleteObject);
const CREATE_UPLOAD = write(createUpload);
const COMPLETE_UPLOAD = write(completeUpload);
const POST_OBJECT = notImplemented('This POST is not implemented.');

/** Whether a route receives an object body (and so takes an upload slot, limits.ts). */
export const receivesBody = (r: Route): boolean => r === PUT_OBJECT || r === UPLOAD_PART;

export function route(req: S3Request): Route {
  const q = req.query;
  const m = req.method;
  if (q.size > 0) {
    for (const sub of UNSUPPORTED) {
      if (q.has(sub)) return notImplemented(`The ${sub} sub-resource is not implemented.`);
    }
  }
  if (!req.bucket) {
    if (m === 'GET') return LIST_BUCKETS;
    return METHOD_NOT_ALLOWED_SERVICE;
  }
  if (!req.key) {
    switch (m) {
      case 'GET':
        if (q.has('location')) return GET_BUCKET_LOCATION;
        if (q.has('uploads')) return LIST_UPLOADS;
        if (q.has('versions')) return LIST_OBJECT_VERSIONS;
        if (q.get('list-type') === '2') return LIST_OBJECTS_V2;
        return LIST_OBJECTS_V1;
      case 'HEAD':
        return HEAD_BUCKET;
      case 'PUT':
        return CREATE_BUCKET;
      case 'DELETE':
        return DELETE_BUCKET;
      case 'POST':
        if (q.has('delete')) return DELETE_OBJECTS;
        return POST_BUCKET;
      default:
        return METHOD_NOT_ALLOWED_BUCKET;
    }
  }
  switch (m) {
    case 'GET':
      if (q.has('uploadId')) return LIST_PARTS;
      if (q.has('attributes')) return GET_OBJECT_ATTRIBUTES;
      return GET_OBJECT;
    case 'HEAD':
      return HEAD_OBJECT;
    case 'PUT':
      if (q.has('partNumber') && q.has('uploadId')) {
        return req.headers['x-amz-copy-source'] !== undefined ? UPLOAD_PART_COPY : UPLOAD_PART;
      }
      if (req.headers['x-amz-copy-source'] !== undefined) return COPY_OBJECT;
      return PUT_OBJECT;
    case 'DELETE':
      if (q.has('uploadId')) return ABORT_UPLOAD;
      return DELETE_OBJECT;
    case 'POST':
      if (q.has('uploads')) return CREATE_UPLOAD;
      if (q.has('uploadId')) return COMPLETE_UPLOAD;
      return POST_OBJECT;
    default:
      return METHOD_NOT_ALLOWED_OBJECT;
  }
}

function notImplemented(message: string): Route {
  return none(async () => {
    throw new S3Error('NotImplemented', message);
  });
}

function methodNotAllowed(resourceType: 'SERVICE' | 'BUCKET' | 'OBJECT'): Route {
  return none(async (req) => {
    throw new S3Error(
      'MethodNotAllowed',
      'The specified method is not allowed against this resource.',
      { extra: { Method: req.method, ResourceType: resourceType } },
    );
  });
}
