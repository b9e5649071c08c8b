// The metadata service as the gateway sees it. Implementations: LevelMetadata (one node,
// classic-level), RaftMetadata (a Raft directory replica) and MetadataClient (over the
// network); each method's kind (read, write, …) is declared in methods.ts. The gateway
// never knows which one it has. All keys and names are plain JS strings (UTF-8 on disk);
// listing order is S3's: by the UTF-8 bytes of the key.

import type { TopologyStore } from './topology.ts';

/** Where one piece of an object's data lives: a needle on a store volume. */
export interface ChunkRef {
  volumeId: number;
  /** u64 as a decimal string (JSON-safe). */
  needleId: string;
  cookie: number;
  size: number;
}

export interface ObjectRecord {
  key: string;
  size: number;
  /** Without quotes: md5 hex, or `<md5 of part md5s>-<part count>` for multipart. */
  etag: string;
  /** Milliseconds since the epoch. */
  lastModified: number;
  contentType?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  cacheControl?: string;
  expires?: string;
  /** x-amz-meta-* without the prefix, names lowercased. */
  userMeta: Record<string, string>;
  /** x-amz-checksum-<algo> values (base64) keyed by algo: crc32, crc32c, sha1, sha256. */
  checksums?: Record<string, string>;
  /** Data in order; empty for a zero-byte object. */
  chunks: ChunkRef[];
  /** Sizes of the parts of a multipart object, in order (for partNumber reads). */
  partSizes?: number[];
  owner: string;
}

/**
 * The bucket owner a gateway authorized a write against, from a cached bucket record: the
 * write fails with BucketOwnerChanged when the bucket now has another owner (deleted and
 * re-created by someone else since), so a stale cache cannot let a former owner write.
 */
export type BucketGuard = { bucketOwner?: string };

/** putObject's preconditions: If-None-Match: * and If-Match, and the bucket's owner. */
export type PutCondition = BucketGuard & { ifNoneMatch?: boolean; ifMatch?: string };

/** What a listing shows of an object. */
export type ObjectSummary = Pick<ObjectRecord, 'key' | 'size' | 'etag' | 'lastModified' | 'owner'>;

export interface BucketRecord {
  name: string;
  owner: string;
  createdAt: number;
  region: string;
  /** Copies of each object's data (cluster mode); the gateway's default when absent. */
  replicaCount?: number;
}

export interface UploadRecord {
  uploadId: string;
  bucket: string;
  key: string;
  initiated: number;
  owner: string;
  /** Object attributes given at CreateMultipartUpload (content type, meta, …). */
  object: Omit<ObjectRecord, 'key' | 'size' | 'etag' | 'lastModified' | 'chunks' | 'partSizes'>;
}

export interface PartRecord {
  partNumber: number;
  etag: string;
  size: number;
  lastModified: number;
  chunks: ChunkRef[];
  checksums?: Record<string, string>;
}

export interface UserRecord {
  id: string;
  displayName: string;
  createdAt: number;
}

export interface AccessKeyRecord {
  accessKey: string;
  secretKey: string;
  userId: string;
  createdAt: number;
}

export interface ListObjectsOptions {
  prefix?: string;
  delimiter?: string;
  /** Return keys strictly after this one (marker / start-after / continuation token). */
  after?: string;
  maxKeys: number;
}

export interface ListObjectsResult<T = ObjectRecord> {
  /** Objects and common prefixes interleaved in key order, at most maxKeys in all. */
  objects: T[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The last key or common prefix returned: where the next page starts (after it). */
  last?: string;
}

export interface ListUploadsOptions {
  prefix?: string;
  delimiter?: string;
  keyMarker?: string;
  uploadIdMarker?: string;
  maxUploads: number;
}

export interface ListUploadsResult {
  uploads: UploadRecord[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
}

/** Thrown for conflicts the gateway maps to S3 errors. */
export class MetadataError extends Error {
  constructor(
    readonly code:
      | 'BucketAlreadyExists'
      | 'BucketAlreadyOwnedByYou'
      | 'BucketNotEmpty'
      | 'NoSuchBucket'
      | 'NoSuchUpload'
      | 'InvalidPart'
      | 'PreconditionFailed'
      | 'BucketOwnerChanged'
      | 'NoSuchUser'
      | 'UserExists'
      | 'KeyExists'
      | 'Unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'MetadataError';
  }
}

/** Everything the gateway uses; the topology records ride along (topology.ts). */
export interface MetadataStore extends TopologyStore {
  // Buckets
  /** Throws BucketAlreadyOwnedByYou / BucketAlreadyExists. */
  createBucket(b: BucketRecord): Promise<void>;
  getBucket(name: string): Promise<BucketRecord | null>;
  /** Throws NoSuchBucket, or BucketNotEmpty when objects or uploads remain. */
  deleteBucket(name: string, guard?: BucketGuard): Promise<void>;
  /** Sorted by name; only the owner's when given. */
  listBuckets(owner?: string): Promise<BucketRecord[]>;

  // Objects
  /**
   * Commits an object record atomically and returns the one it replaced (whose chunks
   * the caller then frees). `ifNoneMatch` fails with PreconditionFailed if the key exists;
   * `ifMatch` fails unless the current etag equals it. Throws NoSuchBucket.
   */
  putObject(bucket: string, rec: ObjectRecord, cond?: PutCondition): Promise<ObjectRecord | null>;
  /**
   * putObject with the record already in its stored form (object-codec.ts encodeObject) and
   * its key apart. Remote clients send this (the encoding then costs the gateways, not the
   * directory's leader), and a Raft leader proposes it for every putObject, so replicas
   * store the text as is. The caller vouches for `stored` being encodeObject's output.
   */
  putObjectStored(
    bucket: string,
    key: string,
    stored: string,
    cond: PutCondition | null,
  ): Promise<ObjectRecord | null>;
  getObject(bucket: string, key: string): Promise<ObjectRecord | null>;
  /** Returns the deleted record, or null when there was none. Throws NoSuchBucket. */
  deleteObject(bucket: string, key: string, guard?: BucketGuard): Promise<ObjectRecord | null>;
  /**
   * One page in key order. Cost is proportional to the page: a delimiter listing seeks
   * past each common prefix instead of walking the keys under it. Throws NoSuchBucket.
   */
  listObjects(bucket: string, opts: ListObjectsOptions): Promise<ListObjectsResult>;
  /** listObjects with each object's summary only (what S3 listings show): a third of the bytes. */
  listObjectSummaries(
    bucket: string,
    opts: ListObjectsOptions,
  ): Promise<ListObjectsResult<ObjectSummary>>;

  // Multipart uploads
  createUpload(u: UploadRecord, guard?: BucketGuard): Promise<void>;
  getUpload(bucket: string, key: string, uploadId: string): Promise<UploadRecord | null>;
  /**
   * Stores or replaces a part; returns the replaced part (its chunks are garbage). Throws
   * NoSuchUpload when the upload does not exist (any more).
   */
  putPart(
    bucket: string,
    key: string,
    uploadId: string,
    part: PartRecord,
    guard?: BucketGuard,
  ): Promise<PartRecord | null>;
  /** Parts in part-number order, after `marker`, at most `max` (+ whether more remain). */
  listParts(
    bucket: string,
    key: string,
    uploadId: string,
    opts: { marker?: number; max: number },
  ): Promise<{ parts: PartRecord[]; isTruncated: boolean }>;
  /**
   * Atomically: the object record becomes visible, the upload and all its part records
   * are removed. Returns the replaced object and the parts not used by `rec` (garbage).
   * Throws NoSuchUpload; InvalidPart when a used part is missing or `rec` holds a chunk that
   * none of the used parts holds now (a part replaced after the caller read it).
   */
  completeUpload(
    bucket: string,
    key: string,
    uploadId: string,
    rec: ObjectRecord,
    usedParts: number[],
    guard?: BucketGuard,
  ): Promise<{ previous: ObjectRecord | null; unused: PartRecord[] }>;
  /** Removes the upload and returns its parts (garbage). Throws NoSuchUpload. */
  abortUpload(
    bucket: string,
    key: string,
    uploadId: string,
    guard?: BucketGuard,
  ): Promise<PartRecord[]>;
  listUploads(bucket: string, opts: ListUploadsOptions): Promise<ListUploadsResult>;

  // Users and keys
  createUser(u: UserRecord): Promise<void>;
  getUser(id: string): Promise<UserRecord | null>;
  listUsers(): Promise<UserRecord[]>;
  /** Removes the user and all its keys. Throws NoSuchUser. */
  deleteUser(id: string): Promise<void>;
  /** Throws KeyExists, or NoSuchUser when the user does not exist. */
  addKey(k: AccessKeyRecord): Promise<void>;
  getKey(accessKey: string): Promise<AccessKeyRecord | null>;
  listKeys(userId?: string): Promise<AccessKeyRecord[]>;
  /** Idempotent: deleting an unknown key does nothing. */
  deleteKey(accessKey: string): Promise<void>;
  /**
   * Stores `secretKey` as the key's secret if the stored one is still `expected`, in one
   * command (sealing a secret stored in clear loses nothing in a crash); false otherwise.
   */
  replaceKeySecret(accessKey: string, expected: string, secretKey: string): Promise<boolean>;

  // Allocation
  /** A block of needle ids never handed out before (durable before it returns). */
  allocateNeedleIds(count: number): Promise<{ first: bigint; count: number }>;
  /** A new volume id, never handed out before. */
  allocateVolumeId(): Promise<number>;

  close(): Promise<void>;
}
