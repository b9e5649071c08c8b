// Who may do what to a bucket. The router declares the access each operation needs; the
// request pipeline (app.ts) resolves the bucket and checks it once, before the handler.
// The bucket record comes from the gateway's one-second cache (lookup-cache.ts), so a
// write also carries the owner it was allowed against (guard) and the directory refuses
// it at commit if the bucket has changed hands since.
import type { BucketGuard, BucketRecord } from '../directory/model/api.ts';
import type { GuardedWrite, GuardedWrites } from '../directory/model/methods.ts';
import type { HandlerServices, S3Request } from './context.ts';
import { S3Error } from './error.ts';

/**
 * What an operation needs, as Garage's Endpoint authorization: none (service-level: the
 * handler is not even given a bucket name), create (CreateBucket: a name that need not
 * exist yet), read, write, owner (the bucket resolved and checked before the handler runs).
 */
export type Access = 'none' | 'create' | 'read' | 'write' | 'owner';

/** What a bucket-level check needs. */
export type BucketAccess = Exclude<Access, 'none' | 'create'>;

type Guard = Required<BucketGuard>;
type HandlerMetadata = HandlerServices['meta'];

/**
 * The metadata store a bucket handler gets: its bucket writes cannot be called without the
 * owner the write was allowed against, which the directory checks again at commit (the
 * record checked here may be up to a second old). Forgetting it does not compile. Which
 * writes, and their signatures, come from directory/model/methods.ts GUARDED_WRITES.
 */
export interface GuardedMetadata extends Omit<HandlerMetadata, GuardedWrite>, GuardedWrites {}

/** A request whose bucket exists and which may act on it as its route declared. */
export interface BucketRequest extends S3Request {
  readonly bucketRecord: BucketRecord;
  readonly services: HandlerServices & { meta: GuardedMetadata };
}

/**
 * Without ACLs or bucket policies yet, every level is the owner's alone: read and write
 * are kept apart in the routes so that granting them to others later is a change here.
 */
function allows(b: BucketRecord, userId: string | null, _access: BucketAccess): boolean {
  return userId !== null && b.owner === userId;
}

/** The bucket's record, once it exists and the caller may act on it; else the S3 error. */
export async function authorizeBucket(
  req: S3Request,
  bucket: string,
  access: BucketAccess,
): Promise<BucketRecord> {
  const b = await req.services.meta.getBucket(bucket);
  if (!b) {
    throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', {
      resource: `/${bucket}`,
      extra: { BucketName: bucket },
    });
  }
  if (!allows(b, req.userId, access)) {
    throw new S3Error('AccessDenied', 'Access Denied', { resource: `/${bucket}` });
  }
  return b;
}

/** The commit-time check for a write allowed against `req.bucketRecord`. */
export function guardOf(req: BucketRequest): Guard {
  return { bucketOwner: req.bucketRecord.owner };
}
