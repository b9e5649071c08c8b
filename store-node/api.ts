// The interface the rest of the system uses to reach a store node, with two wirings:
// LocalNeedleStore (in-process, embedded server and tests) and StoreClient (HTTP).
import { type CacheHint, CRC_HEADER, type NeedleRef } from './needle-ref.ts';
import type { Store, StoreStatus } from './store.ts';

export { type CacheHint, CRC_HEADER, type NeedleRef };
/** A needle PUT's other replicas (`URL,URL`): the receiving store forwards the needle there. */
export const REPLICAS_HEADER = 'x-ks-replicas';
/** Copies (the receiving store included) that must be durable before a replicated PUT answers. */
export const QUORUM_HEADER = 'x-ks-write-quorum';

/**
 * The headers a needle PUT's x-ks-auth token covers besides method, path and Content-Length,
 * in signing order (issue 12 item 2). The body is covered through its CRC32C, which the
 * store checks once the body is in; where the needle goes next (replicas, quorum) and how
 * it is stored (content type, which decides compression) cannot be changed under a
 * captured token either. Needles are write-once (Volume.write), so a replay cannot replace
 * one with other bytes that happen to share the CRC.
 */
export const NEEDLE_PUT_COVERED: readonly string[] = [
  CRC_HEADER,
  'content-type',
  REPLICAS_HEADER,
  QUORUM_HEADER,
];

/**
 * The directory's word on a hot object, sent with a needle GET (cache/README.md): `fill` =
 * keep it in the store's cache after reading it, `drop` = it went up to the gateways, drop
 * the store's copy. A hint only: it is not covered by the token.
 */
export const CACHE_HEADER = 'x-ks-cache';

/**
 * What an extra-replica PUT's token covers (PUT /extra/<vid>/<nid>): as for a needle, the
 * CRC binds it to the bytes, and the content type is kept with the copy.
 */
export const EXTRA_PUT_COVERED: readonly string[] = [CRC_HEADER, 'content-type'];

export interface GetOptions {
  /** Admission hint for the store's needle cache (x-ks-cache). */
  cache?: CacheHint;
  /**
   * The needle's size as the caller's record says: a whole-needle read of a known small
   * size may share one request with others to the same store (batch-read.ts).
   */
  expectedSize?: number;
}

export interface PutResult {
  size: number;
  storedSize: number;
  compressed: boolean;
}

export interface GetResult {
  data: Buffer;
  /** Whole object size (data may be a range of it). */
  size: number;
}

/** What one volume sync did (POST /volumes/<id>/sync, store-node/sync.ts). */
export interface SyncResult {
  copied: number;
  deleted: number;
  bytes: number;
  ms: number;
}

export interface NeedleStore {
  put(ref: NeedleRef, data: Buffer, contentType?: string): Promise<PutResult>;
  get(
    ref: NeedleRef,
    range?: { start: number; end: number },
    opts?: GetOptions,
  ): Promise<GetResult>;
  head(ref: NeedleRef): Promise<{ size: number }>;
  delete(ref: NeedleRef): Promise<void>;
  createVolume(volumeId: number): Promise<void>;
  status(): Promise<StoreStatus>;
}

export class LocalNeedleStore implements NeedleStore {
  constructor(readonly store: Store) {}

  async put(ref: NeedleRef, data: Buffer, contentType?: string): Promise<PutResult> {
    const w = await this.store.write(ref.volumeId, ref.needleId, ref.cookie, data, contentType);
    return { size: data.length, storedSize: w.storedLength, compressed: w.compressed };
  }

  async get(
    ref: NeedleRef,
    range?: { start: number; end: number },
    opts: GetOptions = {},
  ): Promise<GetResult> {
    const r = await this.store.read(ref.volumeId, ref.needleId, ref.cookie, range, opts);
    return { data: r.data, size: r.size };
  }

  head(ref: NeedleRef): Promise<{ size: number }> {
    return this.store.head(ref.volumeId, ref.needleId, ref.cookie);
  }

  delete(ref: NeedleRef): Promise<void> {
    return this.store.delete(ref.volumeId, ref.needleId, ref.cookie);
  }

  async createVolume(volumeId: number): Promise<void> {
    await this.store.createVolume(volumeId);
  }

  status(): Promise<StoreStatus> {
    return this.store.status();
  }
}
