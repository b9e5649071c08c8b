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
import { Pool } from 'undici';
import type { InternalAuth } from '../../common/internal-auth.ts';
import type { ObjectRecord, PutCondition } from '../model/api.ts';
import { MetadataError } from '../model/api.ts';
import {
  defineMethods,
  META_METHODS,
  type MetaApi,
  type MetaMethod,
  READ_ONLY_METHODS,
  trimArgs,
} from '../model/methods.ts';
import { encodeObject } from '../model/object-codec.ts';
import { type BatchOptions, BatchQueue, type Reply, replyOf } from './client-batch.ts';
import { encodeJson } from './json.ts';
import { AttemptFailure, type PostOptions, signedPost } from './post.ts';
import { LEADER_HEADER } from './server.ts';

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
   * Coalescing of concurrent calls into POST /meta/_batch requests (default on, with the
   * defaults of BatchOptions); false sends every call on its own.
   */
  batch?: BatchOptions | false;
}

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

// Every API method not written out below is a plain call (generated onto the prototype, in
// the static block); this declares their types.
export interface MetadataClient extends Omit<MetaApi, 'close'> {}

// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: see the interface above
export class MetadataClient implements MetaApi {
  static {
    defineMethods(
      MetadataClient.prototype,
      Object.keys(META_METHODS) as MetaMethod[],
      (m) =>
        function (this: MetadataClient, ...args: unknown[]) {
          return this.call(m, args);
        },
    );
  }

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
  /** Index of the replica to try first: the leader if known, else the last one that answered. */
  private current = 0;
  /** The leader among our replicas, as the last answer named it (LEADER_HEADER). */
  private leader = -1;
  /** Per replica: not chosen for being the leader again before this time (it failed us). */
  private readonly failedAt: number[];
  private closed = false;
  /** How mutations and reads are posted (the same to every replica). */
  private readonly post: { write: PostOptions; read: PostOptions };

  /**
   * @param baseUrls one replica's base URL, a list of them, or a comma-separated list
   */
  constructor(
    baseUrls: string | readonly string[],
    auth: InternalAuth,
    opts: MetadataClientOptions = {},
  ) {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    this.deadlineMs = opts.deadlineMs ?? 10_000;
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
    const onHeaders =
      this.origins.length > 1
        ? (raw: Buffer[] | string[] | null | undefined) => this.noteLeader(raw)
        : undefined;
    const headers = { ...opts.headers, 'content-type': 'application/json' };
    const write: PostOptions = { auth, headers, onHeaders };
    const read: PostOptions = { ...write, timeoutMs: this.readAttemptMs };
    this.post = { write, read };
    const batch = opts.batch ?? {};
    this.batches =
      batch === false
        ? undefined
        : this.pools.map((pool) => ({
            read: new BatchQueue((path, body) => signedPost(pool, path, body, read), batch),
            write: new BatchQueue((path, body) => signedPost(pool, path, body, write), batch),
          }));
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
    const body = encodeJson(trimArgs(args));
    const readOnly = READ_ONLY_METHODS.has(method);
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
              await signedPost(
                this.pools[idx]!,
                `/meta/${method}`,
                body,
                readOnly ? this.post.read : this.post.write,
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

  // Only the methods whose client side does more than the call.

  /**
   * Sent as putObjectStored: the record encoded here, in the gateway, instead of in the
   * directory's leader (its scarcest CPU).
   */
  putObject(bucket: string, rec: ObjectRecord, cond?: PutCondition): Promise<ObjectRecord | null> {
    return this.putObjectStored(bucket, rec.key, encodeObject(rec), cond ?? null);
  }

  /** Closes the connections (the servers own the store and stay up). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.pools.map((p) => p.close()));
  }
}
