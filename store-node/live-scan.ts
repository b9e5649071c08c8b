// Sequential passes over a volume's live needles (compaction, scrub): take a snapshot of
// the map sorted by offset, then read it in large chunks so the disk sees streaming reads
// instead of one random pread per needle.
import * as fsx from '../common/fsx.ts';
import { TOMBSTONE_SIZE } from './index-file.ts';
import { needleDiskSizeLarge } from './needle.ts';
import type { NeedleMap } from './needle-map.ts';

export interface LiveSnapshot {
  count: number;
  lo: Uint32Array;
  hi: Uint32Array;
  off8: Uint32Array;
  size: Uint32Array;
  /** Indexes into the arrays above, in increasing offset order. */
  order: Uint32Array;
}

export function snapshotByOffset(map: NeedleMap): LiveSnapshot {
  const count = map.size;
  const lo = new Uint32Array(count);
  const hi = new Uint32Array(count);
  const off8 = new Uint32Array(count);
  const size = new Uint32Array(count);
  let i = 0;
  map.forEach((l, h, o, s) => {
    lo[i] = l;
    hi[i] = h;
    off8[i] = o;
    size[i] = s;
    i++;
  });
  const order = new Uint32Array(count);
  for (let k = 0; k < count; k++) order[k] = k;
  order.sort((a, b) => off8[a]! - off8[b]!);
  return { count, lo, hi, off8, size, order };
}

const CHUNK = 8 * 1024 * 1024;

/**
 * Calls `visit` with each live needle's on-disk bytes (header to padding) in offset order.
 * The bytes are only valid during the call.
 */
export async function forEachLiveNeedle(
  fd: number,
  snap: LiveSnapshot,
  visit: (i: number, bytes: Buffer, readLength: number) => void | Promise<void>,
): Promise<void> {
  let buf = Buffer.allocUnsafe(CHUNK);
  let k = 0;
  while (k < snap.count) {
    const first = snap.order[k]!;
    const start = snap.off8[first]! * 8;
    let end = start + diskSize(snap.size[first]!);
    let last = k + 1;
    while (last < snap.count) {
      const j = snap.order[last]!;
      const e = snap.off8[j]! * 8 + diskSize(snap.size[j]!);
      if (e - start > CHUNK) break;
      end = e;
      last++;
    }
    if (end - start > buf.length) buf = Buffer.allocUnsafe(end - start);
    const n = await fsx.pread(fd, buf.subarray(0, end - start), start);
    for (; k < last; k++) {
      const i = snap.order[k]!;
      const at = snap.off8[i]! * 8 - start;
      const len = diskSize(snap.size[i]!);
      await visit(i, buf.subarray(at, at + len), Math.max(0, Math.min(len, n - at)));
    }
  }
}

function diskSize(size: number): number {
  return needleDiskSizeLarge(size === TOMBSTONE_SIZE ? 0 : size);
}
