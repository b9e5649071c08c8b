// How many copies of an object's data to keep: `x-ks-replica-count` on the PUT (or upload
// part / copy) wins, then the bucket's setting from CreateBucket, then the gateway's
// default (`kubestorage gateway --replicas`). Only the cluster placement acts on it.
import { MAX_REPLICAS } from '../common/config.ts';
import type { BucketRequest } from './access.ts';
import { header, type S3Request } from './context.ts';
import { S3Error } from './error.ts';

export const REPLICA_HEADER = 'x-ks-replica-count';

/** The header's value, validated; undefined when absent. */
export function replicaHeader(req: S3Request): number | undefined {
  const v = header(req, REPLICA_HEADER);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d{1,2}$/.test(v) || n < 1 || n > MAX_REPLICAS) {
    throw new S3Error(
      'InvalidArgument',
      `${REPLICA_HEADER} must be an integer from 1 to ${MAX_REPLICAS}.`,
      {
        extra: { ArgumentName: REPLICA_HEADER, ArgumentValue: v },
      },
    );
  }
  return n;
}

/** For a write: the request's count, else the bucket's (as the access check resolved it). */
export function replicaCountFor(req: BucketRequest): number | undefined {
  return replicaHeader(req) ?? req.bucketRecord.replicaCount;
}
