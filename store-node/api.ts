// The interface the rest of the system uses to reach a store node, with two wirings:
// LocalNeedleStore (in-process, embedded server and tests) and StoreClient (HTTP).
import type { Store, StoreStatus } from './store.ts';

/** CRC32C (decimal) of a needle body on the wire: sent with PUTs, returned with GETs. */
export const CRC_HEADER = 'x-ks-crc32c';

export interface NeedleRef {
  volumeId: number;
  needleId: bigint;
  cookie: number;
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
  get(ref: NeedleRef, range?: { start: number; end: number }): Promise<GetResult>;
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

  async get(ref: NeedleRef, range?: { start: number; end: number }): Promise<GetResult> {
    const r = await this.store.read(ref.volumeId, ref.needleId, ref.cookie, range);
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
