// HTTP wiring of NeedleStore: what a gateway or the directory uses to reach a store node.
// An undici Pool keeps connections alive (several times the requests per second of the
// global fetch on loopback).

import { crc32c } from '@node-rs/crc32';
import { Pool } from 'undici';
import { AUTH_HEADER, type InternalAuth } from '../common/internal-auth.ts';
import {
  CACHE_HEADER,
  CRC_HEADER,
  EXTRA_PUT_COVERED,
  type GetOptions,
  type GetResult,
  NEEDLE_PUT_COVERED,
  type NeedleRef,
  type NeedleStore,
  type PutResult,
  QUORUM_HEADER,
  REPLICAS_HEADER,
  type SyncResult,
} from './api.ts';
import { BATCH_READ_PATH } from './batch-read.ts';
import { ReadBatcher } from './batch-read-client.ts';
import { StoreError, type StoreErrorCode } from './errors.ts';
import type { NeedleCacheStats } from './needle-cache.ts';
import type { StoreStatus } from './store.ts';

export interface PutOptions {
  /** Base URLs of the volume's other replicas: the node forwards the write to each. */
  replicas?: string[];
  /** Copies (this node included) that must be durable before the answer (default all). */
  writeQuorum?: number;
}

export interface RawNeedle {
  cookie: number;
  data: Buffer;
  contentType?: string;
  compressed: boolean;
}

export interface NeedleList {
  needles: Array<{ id: bigint; size: number }>;
  next?: bigint;
  readOnly: boolean;
}

/** An extra copy of a needle held by a store (GET /extra, GET /cache). */
export interface ExtraNeedleInfo {
  volumeId: number;
  needleId: bigint;
  cookie: number;
  size: number;
  contentType?: string;
}

export interface ExtraListing {
  count: number;
  bytes: number;
  needles: ExtraNeedleInfo[];
}

/** GET /cache: the store cache's counters (null: no cache) and the extra copies held. */
export interface StoreCacheStatus {
  cache: NeedleCacheStats | null;
  extra: ExtraListing;
}

interface WireListing {
  count: number;
  bytes: number;
  needles: Array<Omit<ExtraNeedleInfo, 'needleId'> & { needleId: string }>;
}

const fromWire = (l: WireListing): ExtraListing => ({
  count: l.count,
  bytes: l.bytes,
  needles: l.needles.map((n) => ({ ...n, needleId: BigInt(n.needleId) })),
});

interface CallOptions {
  body?: Buffer;
  headers?: Record<string, string>;
  /**
   * Names of headers (lower case, in the route's order) whose values the token covers as
   * well: the server verifies them with the same list (authorizeHead).
   */
  covered?: readonly string[];
  /** Bound on the whole call (connect to last byte). */
  timeoutMs?: number;
  /** Per-phase undici timeouts for calls that legitimately take long (sync). */
  waitMs?: number;
  /** The token covers the body's digest as well (routes whose body says what to do). */
  signBody?: boolean;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Needles up to this size may travel in a read batch (POST /needles/_read). */
export const BATCH_NEEDLE_MAX = 256 * 1024;

export class StoreClient implements NeedleStore {
  private readonly pool: Pool;
  /** Coalesces whole-needle GETs whose size the caller knows (batch-read-client.ts). */
  readonly batcher = new ReadBatcher(
    async (body) => (await this.call('POST', BATCH_READ_PATH, { body, signBody: true })).body,
    (item) => this.getOne(item, undefined, item.hint),
  );

  constructor(
    baseUrl: string,
    private readonly auth: InternalAuth,
    timeoutMs = 30_000,
    /** Most connections kept to the node. */
    connections = 256,
  ) {
    this.pool = new Pool(new URL(baseUrl).origin, {
      connections,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connectTimeout: Math.min(timeoutMs, 10_000),
      keepAliveTimeout: 60_000,
    });
  }

  private async call(
    method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE',
    pathAndQuery: string,
    init: CallOptions = {},
  ): Promise<Answer> {
    const res = await this.pool.request({
      method,
      path: pathAndQuery,
      headers:
        init.signBody && init.body
          ? { ...init.headers, ...this.auth.signBody(method, pathAndQuery, init.body) }
          : {
              ...init.headers,
              [AUTH_HEADER]: this.auth.sign(method, pathAndQuery, undefined, {
                contentLength: init.body?.length,
                headers: init.covered?.map((name) => init.headers?.[name]),
              }),
            },
      body: init.body,
      signal: init.timeoutMs ? AbortSignal.timeout(init.timeoutMs) : undefined,
      headersTimeout: init.waitMs,
      bodyTimeout: init.waitMs,
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode >= 400) {
      let code: StoreErrorCode = 'InternalError';
      let message = `HTTP ${res.statusCode}`;
      let details: Record<string, unknown> | undefined;
      try {
        const j = JSON.parse(body.toString()) as { error: StoreErrorCode; message: string };
        const { error, message: m, ...rest } = j;
        code = error;
        message = m;
        // e.g. which replicas a replicated write could not reach
        if (Object.keys(rest).length > 0) details = rest;
      } catch {
        if (res.statusCode === 404) code = 'NoSuchNeedle';
        else if (res.statusCode === 403) code = 'Forbidden';
      }
      throw new StoreError(code, message, details);
    }
    return { status: res.statusCode, headers: res.headers, body };
  }

  private static needlePath(ref: NeedleRef): string {
    return `/volumes/${ref.volumeId}/needles/${ref.needleId}?cookie=${ref.cookie}`;
  }

  /**
   * Stores a needle; with `replicas`, the node also forwards it to them and answers only
   * once `writeQuorum` copies are durable (ReplicaWriteFailed otherwise).
   */
  async put(
    ref: NeedleRef,
    data: Buffer,
    contentType?: string,
    opts: PutOptions = {},
  ): Promise<PutResult> {
    const headers: Record<string, string> = { [CRC_HEADER]: String(crc32c(data)) };
    if (contentType) headers['content-type'] = contentType;
    if (opts.replicas && opts.replicas.length > 0)
      headers[REPLICAS_HEADER] = opts.replicas.join(',');
    if (opts.writeQuorum !== undefined) headers[QUORUM_HEADER] = String(opts.writeQuorum);
    return this.putNeedle(ref, data, headers);
  }

  /** The plain PUT one replica forwards to another: CRC already known, whole call bounded. */
  async replicaPut(
    ref: NeedleRef,
    data: Buffer,
    opts: { contentType?: string; crc32c: number; timeoutMs?: number },
  ): Promise<PutResult> {
    const headers: Record<string, string> = { [CRC_HEADER]: String(opts.crc32c) };
    if (opts.contentType) headers['content-type'] = opts.contentType;
    return this.putNeedle(ref, data, headers, opts.timeoutMs);
  }

  /** A needle PUT: the token covers the body's CRC32C and where the needle goes next. */
  private async putNeedle(
    ref: NeedleRef,
    data: Buffer,
    headers: Record<string, string>,
    timeoutMs?: number,
  ): Promise<PutResult> {
    const res = await this.call('PUT', StoreClient.needlePath(ref), {
      body: data,
      headers,
      covered: NEEDLE_PUT_COVERED,
      timeoutMs,
    });
    return JSON.parse(res.body.toString()) as PutResult;
  }

  /** One page of a volume's live needles in ascending id order. */
  async listNeedles(
    volumeId: number,
    opts: { after?: bigint; limit?: number } = {},
  ): Promise<NeedleList> {
    const q = `after=${opts.after ?? 0n}&limit=${opts.limit ?? 1000}`;
    const res = await this.call('GET', `/volumes/${volumeId}/needles?${q}`);
    const j = JSON.parse(res.body.toString()) as {
      needles: Array<{ id: string; size: number }>;
      next?: string;
      readOnly: boolean;
    };
    const out: NeedleList = {
      needles: j.needles.map((n) => ({ id: BigInt(n.id), size: n.size })),
      readOnly: j.readOnly,
    };
    if (j.next !== undefined) out.next = BigInt(j.next);
    return out;
  }

  /** A needle's bytes and cookie without knowing the cookie (replica-to-replica copies). */
  async getRaw(volumeId: number, needleId: bigint, timeoutMs?: number): Promise<RawNeedle> {
    const res = await this.call('GET', `/volumes/${volumeId}/needles/${needleId}/raw`, {
      timeoutMs,
    });
    const sent = res.headers[CRC_HEADER];
    if (sent === undefined || String(sent) !== String(crc32c(res.body))) {
      throw new StoreError('NeedleCorrupt', `needle ${needleId}: damaged in transit`);
    }
    const ct = res.headers['content-type'];
    return {
      cookie: Number(res.headers['x-ks-cookie']),
      data: res.body,
      contentType: typeof ct === 'string' ? ct : undefined,
      compressed: res.headers['x-ks-compressed'] === '1',
    };
  }

  /**
   * Makes the node's copy of a volume match the one at `sourceUrl` (creating it if
   * missing); with `deletes`, also drops needles the source no longer has.
   */
  async syncVolume(
    volumeId: number,
    sourceUrl: string,
    opts: { deletes?: boolean; timeoutMs?: number } = {},
  ): Promise<SyncResult> {
    const q = `source=${encodeURIComponent(sourceUrl)}${opts.deletes ? '&deletes=1' : ''}`;
    const res = await this.call('POST', `/volumes/${volumeId}/sync?${q}`, {
      waitMs: opts.timeoutMs ?? 3600_000,
    });
    return JSON.parse(res.body.toString()) as SyncResult;
  }

  get(
    ref: NeedleRef,
    range?: { start: number; end: number },
    opts: GetOptions = {},
  ): Promise<GetResult> {
    if (range === undefined && opts.expectedSize !== undefined) {
      if (opts.expectedSize <= BATCH_NEEDLE_MAX) {
        return this.batcher.read({ ...ref, hint: opts.cache }, opts.expectedSize);
      }
    }
    return this.getOne(ref, range, opts.cache);
  }

  private async getOne(
    ref: NeedleRef,
    range: { start: number; end: number } | undefined,
    cache: GetOptions['cache'],
  ): Promise<GetResult> {
    const headers: Record<string, string> = range
      ? { range: `bytes=${range.start}-${range.end}` }
      : {};
    if (cache) headers[CACHE_HEADER] = cache;
    const res = await this.call('GET', StoreClient.needlePath(ref), { headers });
    const sent = res.headers[CRC_HEADER];
    if (sent !== undefined && String(sent) !== String(crc32c(res.body))) {
      throw new StoreError('NeedleCorrupt', `needle ${ref.needleId}: damaged in transit`);
    }
    return { data: res.body, size: Number(res.headers['x-ks-size']) };
  }

  async head(ref: NeedleRef): Promise<{ size: number }> {
    const res = await this.call('HEAD', StoreClient.needlePath(ref));
    return { size: Number(res.headers['x-ks-size']) };
  }

  async delete(ref: NeedleRef): Promise<void> {
    await this.call('DELETE', StoreClient.needlePath(ref));
  }

  /**
   * Places an extra copy of a hot needle on this node, which need not hold its volume
   * (PUT /extra). Idempotent: `created` false when these bytes were already there;
   * NeedleExists (409) when other bytes are.
   */
  async putExtra(
    ref: NeedleRef,
    data: Buffer,
    contentType?: string,
  ): Promise<{ created: boolean; size: number }> {
    const headers: Record<string, string> = { [CRC_HEADER]: String(crc32c(data)) };
    if (contentType) headers['content-type'] = contentType;
    const res = await this.call(
      'PUT',
      `/extra/${ref.volumeId}/${ref.needleId}?cookie=${ref.cookie}`,
      {
        body: data,
        headers,
        covered: EXTRA_PUT_COVERED,
      },
    );
    return JSON.parse(res.body.toString()) as { created: boolean; size: number };
  }

  /** Removes an extra copy (NoSuchNeedle when the node has none). */
  async deleteExtra(ref: Pick<NeedleRef, 'volumeId' | 'needleId'>): Promise<void> {
    await this.call('DELETE', `/extra/${ref.volumeId}/${ref.needleId}`);
  }

  async listExtra(): Promise<ExtraListing> {
    return fromWire(JSON.parse((await this.call('GET', '/extra')).body.toString()) as WireListing);
  }

  async cacheStatus(): Promise<StoreCacheStatus> {
    const j = JSON.parse((await this.call('GET', '/cache')).body.toString()) as {
      cache: NeedleCacheStats | null;
      extra: WireListing;
    };
    return { cache: j.cache, extra: fromWire(j.extra) };
  }

  /** With `ifMissing`, a volume that already exists counts as created (retries, re-runs). */
  /** Read-only for good on this node (deletes still apply); idempotent. */
  async seal(volumeId: number): Promise<void> {
    await this.call('POST', `/volumes/${volumeId}/seal`);
  }

  async createVolume(volumeId: number, opts: { ifMissing?: boolean } = {}): Promise<void> {
    try {
      await this.call('POST', `/volumes/${volumeId}`);
    } catch (e) {
      if (!(opts.ifMissing && e instanceof StoreError && e.code === 'VolumeExists')) throw e;
    }
  }

  async status(): Promise<StoreStatus> {
    return JSON.parse((await this.call('GET', '/status')).body.toString()) as StoreStatus;
  }

  /** Closes the connections. */
  async close(): Promise<void> {
    await this.pool.close();
  }
}
