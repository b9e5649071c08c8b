// MetadataStore over HTTP: what a gateway process uses to reach the metadata service (see
// directory/wire/server.ts for the wire format). One undici Pool per replica keeps connections
// alive (about 4× the calls per second of the global fetch on loopback).
//
// The service is a Raft group: any replica accepts every call (followers forward to the
// leader), but a replica can be down or answer 503 while it has no leader. Calls go to the
// replica that last answered; one that cannot be reached or answers 503 is skipped in
// favour of the next (round-robin, with a short backoff once all have been tried) until
// the call's deadline, after which the call fails with MetadataError('Unavailable').
//
// A failure after the request may have reached a replica is ambiguous: a mutating call may
// have been applied, and retrying it elsewhere could apply it twice (two allocations, a
// record committed over its own successor). Such a call fails at once with an
// AmbiguousMetadataError, a MetadataError('Unavailable') — which the gateway already treats
// as "maybe committed" (gateway/put.ts definitelyRejected) — and only read-only calls are
// retried then. A 503 answer is taken to mean the replica did not apply the call.
// A replica's own MetadataError('Unavailable') arrives as a 409 and cannot say whether a
// forwarded mutation was applied, so only reads move on to another replica after one.
//
// A 409 answer is the store's MetadataError, thrown again as one; any other answer is an
// Error carrying the HTTP status and the server's error code.
//
// Concurrent calls to one replica share requests (client-batch.ts). The rules above apply
// to each call of a batch on its own: a batch not sent is retried elsewhere whole, one
// sent but unanswered makes its mutations ambiguous and its reads move on, and each call
// of an answered batch is treated as if its single-call answer had come back.
import { type Dispatcher, Pool } from 'undici';
import { AUTH_HEADER, type InternalAuth } from '../../common/internal-auth.ts';
import type {
  AccessKeyRecord,
  BucketRecord,
  ListObjectsOptions,
  ListObjectsResult,
  ListUploadsOptions,
  ListUploadsResult,
  MetadataStore,
  ObjectRecord,
  ObjectSummary,
  PartRecord,
  PutCondition,
  UploadRecord,
  UserRecord,
} from '../model/api.ts';
import { MetadataError } from '../model/api.ts';
import { encodeObject } from '../model/object-codec.ts';
import type {
  ClusterDirectory,
  Heartbeat,
  NodeLiveness,
  NodeRecord,
  NodeState,
  VolumeRecord,
  VolumeState,
} from '../model/topology.ts';
import {
  type Answer,
  AttemptFailure,
  type BatchOptions,
  BatchQueue,
  type Reply,
  replyOf,
} from './client-batch.ts';
import { encodeJson, LEADER_HEADER, type MetaMethod } from './server.ts';

export interface MetadataClientOptions {
  /** Per-attempt timeout waiting for an answer (default 30 s). */
  timeoutMs?: number;
  /** Per-attempt connect timeout (default 2 s, at most timeoutMs). */
  connectTimeoutMs?: number;
  /**
   * How long one call keeps trying other replicas (and the same one again) after
   * connection failures and 503 answers, before MetadataError('Unavailable') (default 10 s).
   */
  deadlineMs?: number;
  /**
   * Per-attempt answer timeout for reads when there are other replicas to try (default:
   * the deadline split between the replicas, at least 6 s, at most timeoutMs). A replica
   * that takes a read and hangs (a stopped process) then costs a read that long, not
   * timeoutMs; reads can be repeated elsewhere, mutations cannot.
   */
  readAttemptMs?: number;
  /** Sent with every call (e.g. to mark calls one replica forwards to another). */
  headers?: Record<string, string>;
  /** Most connections kept to each replica (default 256). */
  connections?: number;
  /**
   * Remember found access keys this long (default 0: off). Every signed request looks its
   * key up, so this saves a round trip per request; the price is that a key deleted through
   * another process keeps working for up to this long (deletes through this client apply
   * at once).
   */
  keyCacheMs?: number;
  /**
   * Coalescing of concurrent calls into POST /meta/_batch requests (default on, with the
   * defaults of BatchOptions); false sends every call on its own.
   */
  batch?: BatchOptions | false;
}

/** Methods that change nothing, so repeating one on another replica is always harmless. */
const READ_ONLY = new Set<MetaMethod>([
  'getBucket',
  'listBuckets',
  'getObject',
  'listObjects',
  'listObjectSummaries',
  'getUpload',
  'listParts',
  'listUploads',
  'getUser',
  'listUsers',
  'getKey',
  'listKeys',
  'listNodes',
  'getVolume',
  'listVolumes',
  'liveness',
] satisfies MetaMethod[]);

const BACKOFF_FIRST_MS = 50;
/**
 * A read attempt is given up no sooner than this: above a replica's 5 s wait for a leader
 * (it answers Unavailable then), and long enough that a batch slow under load is not sent
 * to every replica in turn.
 */
const READ_ATTEMPT_MIN_MS = 6_000;
/** A leader that failed a call is not preferred again for this long (others still work). */
const LEADER_RETRY_MS = 5_000;
const BACKOFF_MAX_MS = 400;

/**
 * MetadataError('Unavailable') for a mutating call that may have been applied: the request
 * reached a replica and no answer came back. Whoever retries it must be able to tell it
 * apart from a plain 'Unavailable', which means the call was not applied.
 */
export class AmbiguousMetadataError extends MetadataError {
  constructor(message: string) {
    super('Unavailable', message);
    this.name = 'AmbiguousMetadataError';
  }
}

function isUnavailable(r: Reply): boolean {
  return !r.ok && r.status === 409 && r.code === 'Unavailable';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Splits "http://a:1,http://b:1" so a single setting (an env var) can name every replica. */
function parseUrls(baseUrls: string | readonly string[]): string[] {
  const list = (typeof baseUrls === 'string' ? [baseUrls] : [...baseUrls])
    .flatMap((u) => u.split(','))
    .map((u) => u.trim())
    .filter((u) => u !== '');
  if (list.length === 0) throw new Error('MetadataClient needs at least one base URL');
  return list.map((u) => new URL(u).origin);
}

export class MetadataClient implements MetadataStore, ClusterDirectory {
  private readonly origins: string[];
  private readonly pools: Pool[];
  /**
   * Per replica, reads and mutations apart: a batch answers when its slowest call is done,
   * and a read should not wait for a Raft commit. Undefined when batching is off.
   */
  private readonly batches: { read: BatchQueue; write: BatchQueue }[] | undefined;
  private readonly deadlineMs: number;
  /** Answer timeout of one read attempt; undefined: the pool's (timeoutMs). */
  private readonly readAttemptMs: number | undefined;
  private readonly headers: Record<string, string>;
  /** Index of the replica to try first: the leader if known, else the last one that answered. */
  private current = 0;
  /** The leader among our replicas, as the last answer named it (LEADER_HEADER). */
  private leader = -1;
  /** Per replica: not chosen for being the leader again before this time (it failed us). */
  private readonly failedAt: number[];
  private closed = false;
  /** The directory knows putObjectStored / listObjectSummaries (older builds: 404). */
  private storedPuts = true;
  private summaryLists = true;
  private readonly keyCacheMs: number;
  private readonly keyCache = new Map<string, { rec: AccessKeyRecord; until: number }>();

  /**
   * @param baseUrls one replica's base URL, a list of them, or a comma-separated list
   */
  constructor(
    baseUrls: string | readonly string[],
    private readonly auth: InternalAuth,
    opts: MetadataClientOptions = {},
  ) {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    this.deadlineMs = opts.deadlineMs ?? 10_000;
    this.keyCacheMs = opts.keyCacheMs ?? 0;
    this.headers = { ...opts.headers, 'content-type': 'application/json' };
    this.origins = parseUrls(baseUrls);
    this.failedAt = this.origins.map(() => Number.NEGATIVE_INFINITY);
    this.readAttemptMs =
      this.origins.length < 2
        ? undefined
        : Math.min(
            timeoutMs,
            opts.readAttemptMs ??
              Math.max(READ_ATTEMPT_MIN_MS, Math.floor(this.deadlineMs / this.origins.length)),
          );
    // A short connect timeout: a replica whose host is gone would otherwise hold a call
    // for most of its deadline before another replica is tried.
    const connectTimeout = Math.min(timeoutMs, opts.connectTimeoutMs ?? 2_000);
    this.pools = this.origins.map(
      (origin) =>
        new Pool(origin, {
          connections: opts.connections ?? 256,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          connectTimeout,
          keepAliveTimeout: 60_000,
        }),
    );
    const batch = opts.batch ?? {};
    this.batches =
      batch === false
        ? undefined
        : this.pools.map((pool) => {
            const post = (path: string, body: string) => this.attempt(pool, path, body);
            const postRead = (path: string, body: string) =>
              this.attempt(pool, path, body, this.readAttemptMs);
            const replica = { batchRoute: true };
            return {
              read: new BatchQueue(postRead, batch, replica),
              write: new BatchQueue(post, batch, replica),
            };
          });
  }

  /**
   * One POST to one replica. `sent` turns true once undici has handed the whole body to
   * the socket (it writes a buffer body in one go): before that the server cannot hold a
   * complete request, and it applies only complete ones, so the call was not applied.
   */
  private attempt(pool: Pool, path: string, text: string, timeoutMs?: number): Promise<Answer> {
    const body = Buffer.from(text);
    return new Promise((resolve, reject) => {
      let sent = false;
      let status = 0;
      const chunks: Buffer[] = [];
      const handler: Dispatcher.DispatchHandler = {
        onConnect() {},
        onBodySent() {
          sent = true;
        },
        onHeaders: (statusCode, rawHeaders) => {
          sent = true;
          status = statusCode;
          if (this.origins.length > 1) this.noteLeader(rawHeaders);
          return true;
        },
        onData(chunk) {
          chunks.push(chunk);
          return true;
        },
        onComplete() {
          resolve({ status, text: Buffer.concat(chunks).toString('utf8') });
        },
        onError(err) {
          reject(new AttemptFailure(err, sent));
        },
      };
      try {
        pool.dispatch(
          {
            method: 'POST',
            path,
            headers: {
              ...this.headers,
              [AUTH_HEADER]: this.auth.sign('POST', path, undefined, body),
            },
            body,
            ...(timeoutMs === undefined
              ? {}
              : { headersTimeout: timeoutMs, bodyTimeout: timeoutMs }),
          },
          handler,
        );
      } catch (e) {
        reject(new AttemptFailure(e as Error, false));
      }
    });
  }

  /** The replica the next call goes to first. */
  get target(): string {
    return this.origins[this.current]!;
  }

  private noteLeader(raw: Buffer[] | string[] | null | undefined): void {
    // An answer naming no leader (none known, or not a Raft replica) drops the old hint.
    this.leader = -1;
    if (!raw) return;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      if (raw[i]!.toString().toLowerCase() !== LEADER_HEADER) continue;
      let origin: string;
      try {
        origin = new URL(raw[i + 1]!.toString()).origin;
      } catch {
        return;
      }
      // Only a replica we were given: the replicas' own addresses for each other may not be
      // reachable from here.
      this.leader = this.origins.indexOf(origin);
      return;
    }
  }

  /** Where calls go next after `idx` answered: the leader, unless it failed us lately. */
  private preferred(idx: number): number {
    const l = this.leader;
    return l >= 0 && Date.now() - this.failedAt[l]! > LEADER_RETRY_MS ? l : idx;
  }

  private async call<T>(method: MetaMethod, args: unknown[]): Promise<T> {
    // Trailing undefined arguments are dropped rather than sent as null.
    let n = args.length;
    while (n > 0 && args[n - 1] === undefined) n--;
    const body = encodeJson(n === args.length ? args : args.slice(0, n));
    const readOnly = READ_ONLY.has(method);
    const replicas = this.pools.length;
    const deadline = Date.now() + this.deadlineMs;
    let backoff = BACKOFF_FIRST_MS;
    let idx = this.current;
    let attempts = 0;
    let last = '';
    for (;;) {
      if (this.closed) throw new MetadataError('Unavailable', 'metadata client closed');
      let answer: Reply | undefined;
      try {
        answer = this.batches
          ? await this.batches[idx]![readOnly ? 'read' : 'write'].submit(method, body)
          : replyOf(
              await this.attempt(
                this.pools[idx]!,
                `/meta/${method}`,
                body,
                readOnly ? this.readAttemptMs : undefined,
              ),
            );
      } catch (e) {
        if (!(e instanceof AttemptFailure)) throw e;
        this.failedAt[idx] = Date.now();
        if (e.sent && !readOnly) {
          if (this.current === idx) this.current = (idx + 1) % replicas;
          throw new AmbiguousMetadataError(
            `metadata service unreachable: ${method} on ${this.origins[idx]} may or may not ` +
              `have been applied: ${e.message}`,
          );
        }
        last = `${this.origins[idx]}: ${e.message}`;
      }
      if (
        answer &&
        (answer.ok || (answer.status !== 503 && !(readOnly && isUnavailable(answer))))
      ) {
        this.current = this.preferred(idx);
        return this.result<T>(method, answer);
      }
      if (answer && !answer.ok)
        last = `${this.origins[idx]}: HTTP ${answer.status} ${answer.text.slice(0, 200)}`;
      this.failedAt[idx] = Date.now();
      attempts++;
      // Other calls in flight start at the next replica instead of failing here first.
      if (this.current === idx) this.current = (idx + 1) % replicas;
      idx = (idx + 1) % replicas;
      let left = deadline - Date.now();
      if (left > 0 && attempts % replicas === 0) {
        await sleep(Math.min(backoff, left));
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        left = deadline - Date.now();
      }
      if (left <= 0) {
        throw new MetadataError(
          'Unavailable',
          `metadata service unreachable: ${method} failed ${attempts} times on ${replicas} ` +
            `replica(s) within ${this.deadlineMs} ms; last: ${last}`,
        );
      }
    }
  }

  private result<T>(method: MetaMethod, reply: Reply): T {
    if (reply.ok) return reply.value as T;
    const { status, code, message } = reply;
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
  /**
   * Sent as putObjectStored: the record encoded here, in the gateway, instead of in the
   * directory's leader (its scarcest CPU). A directory of an older build answers 404 for
   * that method, and putObject goes as such from then on.
   */
  async putObject(
    bucket: string,
    rec: ObjectRecord,
    cond?: PutCondition,
  ): Promise<ObjectRecord | null> {
    if (this.storedPuts) {
      try {
        return await this.putObjectStored(bucket, rec.key, encodeObject(rec), cond ?? null);
      } catch (e) {
        if ((e as { status?: number }).status !== 404) throw e;
        this.storedPuts = false;
      }
    }
    return this.call('putObject', [bucket, rec, cond]);
  }
  putObjectStored(
    bucket: string,
    key: string,
    stored: string,
    cond: PutCondition | null,
  ): Promise<ObjectRecord | null> {
    return this.call('putObjectStored', [bucket, key, stored, cond]);
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

  /** A directory of an older build answers 404: then whole records, cut down here. */
  async listObjectSummaries(
    bucket: string,
    opts: ListObjectsOptions,
  ): Promise<ListObjectsResult<ObjectSummary>> {
    if (this.summaryLists) {
      try {
        return await this.call('listObjectSummaries', [bucket, opts]);
      } catch (e) {
        if ((e as { status?: number }).status !== 404) throw e;
        this.summaryLists = false;
      }
    }
    const page = await this.listObjects(bucket, opts);
    return {
      ...page,
      objects: page.objects.map(({ key, size, etag, lastModified, owner }) => ({
        key,
        size,
        etag,
        lastModified,
        owner,
      })),
    };
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
  registerNode(n: NodeRecord): Promise<void> {
    return this.call('registerNode', [n]);
  }
  setNodeState(id: string, state: NodeState, since: number): Promise<void> {
    return this.call('setNodeState', [id, state, since]);
  }
  listNodes(): Promise<NodeRecord[]> {
    return this.call('listNodes', []);
  }
  createVolume(v: VolumeRecord): Promise<void> {
    return this.call('createVolume', [v]);
  }
  getVolume(id: number): Promise<VolumeRecord | null> {
    return this.call('getVolume', [id]);
  }
  listVolumes(): Promise<VolumeRecord[]> {
    return this.call('listVolumes', []);
  }
  updateVolume(
    id: number,
    expectVersion: number,
    patch: { replicas?: string[]; state?: VolumeState },
  ): Promise<VolumeRecord> {
    return this.call('updateVolume', [id, expectVersion, patch]);
  }
  // Served by Raft directory replicas only (ClusterDirectory).
  heartbeat(h: Heartbeat): Promise<void> {
    return this.call('heartbeat', [h]);
  }
  liveness(): Promise<NodeLiveness[]> {
    return this.call('liveness', []);
  }
  allocateVolume(
    replicaCount: number,
    avoid: string[] = [],
  ): Promise<VolumeRecord & { urls: string[] }> {
    return this.call('allocateVolume', [replicaCount, avoid]);
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

  /** Closes the connections (the servers own the store and stay up). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.pools.map((p) => p.close()));
  }
}
