// The needle identity and the wire constants the store's modules share; a leaf module, so
// that api.ts (which names Store) and the store's own parts need not import each other.

/**
 * CRC32C (decimal) of a needle body on the wire: required on PUTs (the token covers it),
 * returned with GETs.
 */
export const CRC_HEADER = 'x-ks-crc32c';

export interface NeedleRef {
  volumeId: number;
  needleId: bigint;
  cookie: number;
}

/** A reader's word to the store level (x-ks-cache): keep this needle, or drop your copy. */
export type CacheHint = 'fill' | 'drop';
