// Online compaction: copy live needles into <vid>.cpd/.cpx while reads and writes go on
// against the old files, then pause the writer only to copy the short tail written
// meanwhile, fsync, and swap. Renaming .cpd over .dat is the commit point:
//   crash before it  → load finds .cpd and drops both new files (old pair intact);
//   crash after it   → load finds .cpx without .cpd and renames it over .idx.
// Tombstones in the tail are copied too: they may delete needles already copied.
import fs from 'node:fs/promises';
import * as fsx from '../common/fsx.ts';
import { StoreError } from './errors.ts';
import { encodeIdxHeader, IDX_HEADER_SIZE, putIdxRecord, TOMBSTONE_SIZE } from './index-file.ts';
import { forEachLiveNeedle, snapshotByOffset } from './live-scan.ts';
import {
  decodeSuperblock,
  encodeSuperblock,
  FLAG_DELETED,
  needleDiskSizeLarge,
  readNeedleHeader,
  SUPERBLOCK_SIZE,
} from './needle.ts';
import { idParts, NeedleMap } from './needle-map.ts';
import type { Volume } from './volume.ts';
import { volumePaths } from './volume-load.ts';

export interface CompactResult {
  volumeId: number;
  beforeBytes: number;
  afterBytes: number;
  needles: number;
  ms: number;
}

const FLUSH_BYTES = 8 * 1024 * 1024;

/** Buffers needle bytes and their .idx records for the new files. */
class Writer {
  pos = SUPERBLOCK_SIZE;
  idxPos = IDX_HEADER_SIZE;
  liveBytes = 0;
  private bufs: Buffer[] = [];
  private pending = 0;
  private idx = Buffer.allocUnsafe(64 * 1024 * 16);
  private idxN = 0;

  constructor(
    readonly dfd: number,
    readonly xfd: number,
    readonly map: NeedleMap,
  ) {}

  async add(bytes: Buffer, lo: number, hi: number, size: number): Promise<void> {
    const off8 = (this.pos + this.pending) / 8;
    if (size === TOMBSTONE_SIZE) {
      const prev = this.map.delete(lo, hi);
      if (prev >= 0) this.liveBytes -= needleDiskSizeLarge(prev);
    } else {
      const prev = this.map.set(lo, hi, off8, size);
      if (prev >= 0) this.liveBytes -= needleDiskSizeLarge(prev);
      this.liveBytes += bytes.length;
    }
    // Copy: the caller's buffer is reused for the next chunk.
    this.bufs.push(Buffer.from(bytes));
    this.pending += bytes.length;
    putIdxRecord(this.idx, this.idxN++, lo, hi, off8, size);
    if (this.pending >= FLUSH_BYTES || this.idxN * 16 === this.idx.length) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending > 0) {
      await fsx.pwritev(this.dfd, this.bufs, this.pos);
      this.pos += this.pending;
      this.bufs = [];
      this.pending = 0;
    }
    if (this.idxN > 0) {
      const rec = this.idx.subarray(0, this.idxN * 16);
      await fsx.pwritev(this.xfd, [rec], this.idxPos);
      this.idxPos += rec.length;
      this.idx = Buffer.allocUnsafe(this.idx.length);
      this.idxN = 0;
    }
  }
}

export async function compactVolume(v: Volume): Promise<CompactResult> {
  if (v.compacting) throw new StoreError('Busy', `volume ${v.id} is already compacting`);
  v.compacting = true;
  let done!: () => void;
  v.compactionDone = new Promise<void>((r) => {
    done = r;
  });
  const t0 = performance.now();
  const crash = v.opts.crashPoint ?? (() => {});
  const p = volumePaths(v.dir, v.id);
  const old = v.acquire();
  const beforeBytes = v.end;
  let dfd = -1;
  let xfd = -1;
  let committed = false;
  try {
    const sbBuf = Buffer.alloc(SUPERBLOCK_SIZE);
    await fsx.pread(old.fd, sbBuf, 0);
    const sb = decodeSuperblock(sbBuf);
    const generation = sb.generation + 1;
    // Snapshot and end are read in the same tick: the writer updates both together.
    const snap = snapshotByOffset(old.map);
    const snapEnd = v.end;

    dfd = await fsx.open(p.cpd, 'w+');
    xfd = await fsx.open(p.cpx, 'w');
    await fsx.pwritev(dfd, [encodeSuperblock({ ...sb, generation })], 0);
    await fsx.pwritev(xfd, [encodeIdxHeader({ volumeId: v.id, generation })], 0);
    crash('compact:started');

    const w = new Writer(dfd, xfd, new NeedleMap(snap.count));
    // Copied raw even if corrupt: dropping a needle here would turn a scrub finding
    // into silent loss; the copy keeps it readable-as-corrupt for repair.
    await forEachLiveNeedle(old.fd, snap, (i, bytes, readLength) => {
      // A short read would copy stale buffer bytes in place of a live needle.
      if (readLength < bytes.length) throw new Error(`compaction: short read at needle ${i}`);
      return w.add(bytes, snap.lo[i]!, snap.hi[i]!, snap.size[i]!);
    });
    await w.flush();
    crash('compact:copied');

    // Catch up with writes made during the copy without pausing, so the paused step
    // below only copies what arrived in the last round.
    let copiedTo = snapEnd;
    for (let round = 0; round < 3 && v.end - copiedTo > 1024 * 1024; round++) {
      const upTo = v.end;
      await copyTail(old.fd, copiedTo, upTo, w);
      copiedTo = upTo;
    }
    await v.pauseWriter();
    try {
      await copyTail(old.fd, copiedTo, v.end, w);
      await w.flush();
      crash('compact:tail-copied');
      await fsx.fdatasync(dfd);
      await fsx.fsync(xfd);
      crash('compact:synced');
      await fs.rename(p.cpd, p.dat);
      // From here on the new file is the volume: swap before anything else can throw,
      // or writes would go on into the old, now unlinked, inode.
      committed = true;
      const oldIdxFd = v.idxFd;
      v.g = { number: generation, fd: dfd, map: w.map, refs: 0, retired: false };
      old.retired = true;
      v.end = w.pos;
      v.idxFd = xfd;
      v.idxEnd = w.idxPos;
      v.liveBytes = w.liveBytes;
      dfd = -1;
      xfd = -1;
      await fsx.fsyncDir(v.dir);
      crash('compact:renamed-dat');
      await fsx.close(oldIdxFd);
      // The open .idx fd follows the rename; a crash before it is settled at load.
      await fs.rename(p.cpx, p.idx);
      await fsx.fsyncDir(v.dir);
      crash('compact:renamed-idx');
    } finally {
      v.resumeWriter();
    }
    return {
      volumeId: v.id,
      beforeBytes,
      afterBytes: v.end,
      needles: v.g.map.size,
      ms: performance.now() - t0,
    };
  } finally {
    if (dfd >= 0) await fsx.close(dfd).catch(() => {});
    if (xfd >= 0) await fsx.close(xfd).catch(() => {});
    if (!committed) {
      // .cpx first: a lone .cpx would read as a committed compaction at the next load.
      await fs.rm(p.cpx, { force: true });
      await fs.rm(p.cpd, { force: true });
    }
    v.release(old);
    v.compacting = false;
    v.compactionDone = null;
    done();
  }
}

/** Re-appends needles written during the copy (already durable and CRC-checked). */
async function copyTail(fd: number, from: number, to: number, w: Writer): Promise<void> {
  if (to <= from) return;
  await w.flush();
  const buf = Buffer.allocUnsafe(to - from);
  const n = await fsx.pread(fd, buf, from);
  if (n !== buf.length) throw new Error(`compaction: short tail read ${n}/${buf.length}`);
  let at = 0;
  while (at < buf.length) {
    const h = readNeedleHeader(buf, at);
    if (typeof h === 'string') throw new Error(`compaction: bad needle in tail at ${from + at}`);
    const disk = needleDiskSizeLarge(h.dataLength);
    const [lo, hi] = idParts(h.id);
    const size = h.flags & FLAG_DELETED ? TOMBSTONE_SIZE : h.dataLength;
    await w.add(buf.subarray(at, at + disk), lo, hi, size);
    at += disk;
  }
}
