// Scrub: re-verify every live needle's header and CRC against the disk. Corrupt needle
// ids are reported; Store.scrub then asks its repair hook (the cluster layer) for copies.

import { forEachLiveNeedle, snapshotByOffset } from './live-scan.ts';
import { FLAG_DELETED, needleDataIntact, readNeedleHeader } from './needle.ts';
import { idFromParts } from './needle-map.ts';
import type { Volume } from './volume.ts';

export interface ScrubResult {
  volumeId: number;
  checked: number;
  bytes: number;
  corrupt: bigint[];
  /** Corrupt needles rewritten from another replica (a subset of `corrupt`). */
  repaired: bigint[];
  ms: number;
}

export async function scrubVolume(v: Volume): Promise<ScrubResult> {
  const t0 = performance.now();
  const g = v.acquire();
  const corrupt: bigint[] = [];
  let bytes = 0;
  try {
    const snap = snapshotByOffset(g.map);
    await forEachLiveNeedle(g.fd, snap, (i, buf, readLength) => {
      bytes += readLength;
      const id = idFromParts(snap.lo[i]!, snap.hi[i]!);
      const body = buf.subarray(0, readLength);
      const h = readNeedleHeader(body, 0);
      const ok =
        typeof h !== 'string' &&
        h.id === id &&
        h.dataLength === snap.size[i] &&
        (h.flags & FLAG_DELETED) === 0 &&
        needleDataIntact(body, 0, h.dataLength);
      if (!ok) corrupt.push(id);
    });
    const ms = performance.now() - t0;
    return { volumeId: v.id, checked: snap.count, bytes, corrupt, repaired: [], ms };
  } finally {
    v.release(g);
  }
}
