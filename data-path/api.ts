// The gateway's one seam to object bytes: everything under gateway/ types against DataPath,
// never a concrete class, and both wirings (embedded: one local store; cluster: replicated
// volumes) provide it (compose/gateway.ts). Its failures are DataErrors. The next issue plugs the object cache in
// exactly here, as a DataPath wrapping another one.
import type { ChunkRef } from '../directory/model/api.ts';

/**
 * How the data path fails, whichever wiring is behind it: what it refuses on its own
 * account, and the store nodes' failures (StoreError) mapped at this seam
 * (store-errors.ts), so the gateway never sees a store's error codes. It knows nothing of
 * S3: the gateway turns these into S3 errors (gateway/app.ts toS3Error), so data-path/
 * never imports gateway/.
 */
export type DataErrorCode =
  /** The body passed WriteOptions.maxSize. */
  | 'TooLarge'
  /** A needle came back short. */
  | 'ShortRead'
  /** A store is overloaded or its volume full: worth a retry later. */
  | 'Busy'
  /** Store nodes failing under us (a node just died, replicas unreachable). */
  | 'Unavailable'
  /** A needle is gone: freed by an overwrite or delete committed since the record was read. */
  | 'NeedleGone'
  /** Any other store failure. */
  | 'StoreFailed';

export class DataError extends Error {
  constructor(
    readonly code: DataErrorCode,
    message: string,
    /** The store's error this one stands for. */
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'DataError';
  }
}

export interface WriteOptions {
  contentType?: string;
  /** Bytes beyond this fail with DataError('TooLarge'). */
  maxSize: number;
  /** Sees every byte in order (hashing, checksums). */
  tap?: (chunk: Buffer) => void;
  /** Copies of each needle (bucket or request setting); the placement's default otherwise. */
  replicaCount?: number;
}

export interface DataPath {
  /**
   * Stores a body. On failure whatever was stored is freed; a crash before the caller's
   * metadata commit leaves orphan needles, never a visible partial object.
   */
  write(
    body: AsyncIterable<Buffer>,
    opts: WriteOptions,
  ): Promise<{ chunks: ChunkRef[]; size: number }>;
  /** The bytes of [start, end] (inclusive) of an object made of `chunks`. */
  read(chunks: ChunkRef[], start: number, end: number): AsyncIterable<Buffer>;
  /** Releases needles no committed record refers to any more (best effort). */
  free(chunks: ChunkRef[]): Promise<void>;
}
