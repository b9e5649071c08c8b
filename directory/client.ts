// MetadataStore over HTTP: what a gateway process uses to reach a MetadataServer (see
// directory/server.ts for the wire format). An undici Pool keeps connections alive (about
// 4× the calls per second of the global fetch on loopback).
// A 409 answer is the store's MetadataError, thrown again as one; an unreachable server
// is MetadataError('Unavailable') (the gateway answers 503); anything else is an Error.
import { Pool } from 'undici';
import { AUTH_HEADER, type InternalAuth } from '../common/internal-auth.ts';
import type {
  AccessKeyRecord,
  BucketRecord,
  ListObjectsOptions,
  ListObjectsResult,
  ListUploadsOptions,
  ListUploadsResult,
  MetadataStore,
  ObjectRecord,
  PartRecord,
  UploadRecord,
  UserRecord,
} from './api.ts';
import { MetadataError } from './api.ts';
import { decodeJson, encodeJson, type MetaMethod } from './server.ts';

export interface MetadataClientOptions {
  /** Per-call timeout (default 30 s). */
  timeoutMs?: number;
  /** Most connections kept to the server (default 256). */
  connections?: number;
  /**
   * Remember found access keys this long (default 0: off). Every signed request looks its
   * key up, so this saves a round trip per request; the price is that a key deleted through
   * another process keeps working for up to this long (deletes through this client apply
   * at once).
   */
  keyCacheMs?: number;
}

export class MetadataClient implements MetadataStore {
  private readonly pool: Pool;
  private readonly keyCacheMs: number;
  private readonly keyCache = new Map<string, { rec: AccessKeyRecord; until: number }>();

  constructor(
    baseUrl: string,
    private readonly auth: InternalAuth,
    opts: MetadataClientOptions = {},
  ) {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    this.keyCacheMs = opts.keyCacheMs ?? 0;
    this.pool = new Pool(new URL(baseUrl).origin, {
      connections: opts.connections ?? 256,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connectTimeout: Math.min(timeoutMs, 10_000),
      keepAliveTimeout: 60_000,
    });
  }

  private async call<T>(method: MetaMethod, args: unknown[]): Promise<T> {
    // Trailing undefined arguments are dropped rather than sent as null.
    let n = args.length;
    while (n > 0 && args[n - 1] === undefined) n--;
    const path = `/meta/${method}`;
    let status: number;
    let text: string;
    try {
      const res = await this.pool.request({
        method: 'POST',
        path,
        headers: {
          [AUTH_HEADER]: this.auth.sign('POST', path),
          'content-type': 'application/json',
        },
        body: encodeJson(n === args.length ? args : args.slice(0, n)),
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (e) {
      throw new MetadataError(
        'Unavailable',
        `metadata service unreachable: ${(e as Error)?.message ?? String(e)}`,
      );
    }
    if (status === 200) return (decodeJson(text) as { r?: T }).r as T;
    let code = 'InternalError';
    let message = `HTTP ${status}`;
    try {
      const j = JSON.parse(text) as { error: string; message: string };
      code = j.error;
      message = j.message;
    } catch {
      // not JSON: keep the status line
    }
    if (status === 409) throw new MetadataError(code as MetadataError['code'], message);
    const err = new Error(`metadata ${method}: ${code}: ${message}`);
    (err as Error & { code?: string; status?: number }).code = code;
    (err as Error & { code?: string; status?: number }).status = status;
    throw err;
  }

  // Buckets
  createBucket(b: BucketRecord): Promise<void> {
    return this.call('createBucket', [b]);
  }
  getBucket(name: string): Promise<BucketRecord | null> {
    return this.call('getBucket', [name]);
  }
  deleteBucket(name: string): Promise<void> {
    return this.call('deleteBucket', [name]);
  }
  listBuckets(owner?: string): Promise<BucketRecord[]> {
    return this.call('listBuckets', [owner]);
  }

  // Objects
  putObject(
    bucket: string,
    rec: ObjectRecord,
    cond?: { ifNoneMatch?: boolean; ifMatch?: string },
  ): Promise<ObjectRecord | null> {
    return this.call('putObject', [bucket, rec, cond]);
  }
  getObject(bucket: string, key: string): Promise<ObjectRecord | null> {
    return this.call('getObject', [bucket, key]);
  }
  deleteObject(bucket: string, key: string): Promise<ObjectRecord | null> {
    return this.call('deleteObject', [bucket, key]);
  }
  listObjects(bucket: string, opts: ListObjectsOptions): Promise<ListObjectsResult> {
    return this.call('listObjects', [bucket, opts]);
  }

  // Multipart uploads
  createUpload(u: UploadRecord): Promise<void> {
    return this.call('createUpload', [u]);
  }
  getUpload(bucket: string, key: string, uploadId: string): Promise<UploadRecord | null> {
    return this.call('getUpload', [bucket, key, uploadId]);
  }
  putPart(
    bucket: string,
    key: string,
    uploadId: string,
    part: PartRecord,
  ): Promise<PartRecord | null> {
    return this.call('putPart', [bucket, key, uploadId, part]);
  }
  listParts(
    bucket: string,
    key: string,
    uploadId: string,
    opts: { marker?: number; max: number },
  ): Promise<{ parts: PartRecord[]; isTruncated: boolean }> {
    return this.call('listParts', [bucket, key, uploadId, opts]);
  }
  completeUpload(
    bucket: string,
    key: string,
    uploadId: string,
    rec: ObjectRecord,
    usedParts: number[],
  ): Promise<{ previous: ObjectRecord | null; unused: PartRecord[] }> {
    return this.call('completeUpload', [bucket, key, uploadId, rec, usedParts]);
  }
  abortUpload(bucket: string, key: string, uploadId: string): Promise<PartRecord[]> {
    return this.call('abortUpload', [bucket, key, uploadId]);
  }
  listUploads(bucket: string, opts: ListUploadsOptions): Promise<ListUploadsResult> {
    return this.call('listUploads', [bucket, opts]);
  }

  // Users and keys
  createUser(u: UserRecord): Promise<void> {
    return this.call('createUser', [u]);
  }
  getUser(id: string): Promise<UserRecord | null> {
    return this.call('getUser', [id]);
  }
  listUsers(): Promise<UserRecord[]> {
    return this.call('listUsers', []);
  }
  deleteUser(id: string): Promise<void> {
    this.keyCache.clear();
    return this.call('deleteUser', [id]);
  }
  addKey(k: AccessKeyRecord): Promise<void> {
    return this.call('addKey', [k]);
  }
  async getKey(accessKey: string): Promise<AccessKeyRecord | null> {
    if (this.keyCacheMs <= 0) return this.call('getKey', [accessKey]);
    const now = Date.now();
    const hit = this.keyCache.get(accessKey);
    if (hit && hit.until > now) return { ...hit.rec };
    const rec = await this.call<AccessKeyRecord | null>('getKey', [accessKey]);
    if (rec) {
      if (this.keyCache.size >= 10_000) this.keyCache.clear();
      this.keyCache.set(accessKey, { rec, until: now + this.keyCacheMs });
    } else this.keyCache.delete(accessKey);
    return rec;
  }
  listKeys(userId?: string): Promise<AccessKeyRecord[]> {
    return this.call('listKeys', [userId]);
  }
  deleteKey(accessKey: string): Promise<void> {
    this.keyCache.delete(accessKey);
    return this.call('deleteKey', [accessKey]);
  }

  // Allocation
  allocateNeedleIds(count: number): Promise<{ first: bigint; count: number }> {
    return this.call('allocateNeedleIds', [count]);
  }
  allocateVolumeId(): Promise<number> {
    return this.call('allocateVolumeId', []);
  }

  /** Closes the connections (the server owns the store and stays up). */
  async close(): Promise<void> {
    await this.pool.close();
  }
}
