// Generates a large, valid volume set directly with the engine's own encoders, so that
// Store.open can be timed on millions of needles without pushing them through the write
// path. Needles carry 1–8 bytes derived from their index, so any of them can be re-derived
// and checked after the load.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { encodeIdxHeader, IDX_RECORD_SIZE, putIdxRecord } from '../../store-node/index-file.ts';
import { encodeNeedle, encodeSuperblock, SUPERBLOCK_SIZE } from '../../store-node/needle.ts';
import { idParts } from '../../store-node/needle-map.ts';
import { mix32 } from './prng.ts';
import { fmtInt, progress } from './stats.ts';

const CHUNK = 8 * 1024 * 1024;
/** Same limit as the engine's default VolumeOptions.maxSize. */
const MAX_VOLUME_BYTES = 1024 ** 3;

/** The needle with global index i (0-based): id, cookie and data are pure functions of i. */
export function indexNeedle(
  i: number,
  seed: number,
  scratch: Buffer,
): { id: bigint; cookie: number; data: Buffer } {
  const h = mix32(i ^ mix32(seed));
  const len = 1 + (h & 7);
  let x = h;
  for (let k = 0; k < len; k++) {
    x = mix32(x + k + 1);
    scratch[k] = x & 0xff;
  }
  return { id: BigInt(i + 1), cookie: mix32(h ^ 0xa5a5a5a5), data: scratch.subarray(0, len) };
}

export interface GeneratedSet {
  needles: number;
  /** Volume id → [first global index, end index). */
  volumes: Map<number, [number, number]>;
  datBytes: number;
  idxBytes: number;
  seconds: number;
  capped: boolean;
}

/** Buffered appender to one file with synchronous writes (generation is CPU-bound anyway). */
class Appender {
  private buf = Buffer.allocUnsafe(CHUNK);
  private n = 0;
  private pos = 0;
  readonly fd: number;

  constructor(file: string) {
    this.fd = fs.openSync(file, 'wx');
  }

  /** Room for `len` more bytes in the chunk, flushing first when needed. */
  reserve(len: number): Buffer {
    if (this.n + len > this.buf.length) this.flush();
    return this.buf;
  }

  get at(): number {
    return this.n;
  }

  advance(len: number): void {
    this.n += len;
  }

  append(b: Buffer): void {
    this.reserve(b.length).set(b, this.n);
    this.n += b.length;
  }

  flush(): void {
    let off = 0;
    while (off < this.n) off += fs.writeSync(this.fd, this.buf, off, this.n - off, this.pos + off);
    this.pos += this.n;
    this.n = 0;
  }

  /** Flushes, makes the file durable and closes it; returns its size. */
  finish(): number {
    this.flush();
    fs.fdatasyncSync(this.fd);
    fs.closeSync(this.fd);
    return this.pos;
  }
}

/**
 * Writes `needles` needles into `volumes` volumes (more if a .dat would pass 1 GiB) under
 * `dir`: superblock + contiguous needles in each .dat, header + one record per needle in
 * each .idx, all fsync'd, exactly as the engine leaves a cleanly closed volume.
 */
export function generateIndexSet(opts: {
  dir: string;
  needles: number;
  volumes: number;
  seed: number;
  capSeconds: number;
}): GeneratedSet {
  const { dir, needles, seed } = opts;
  fs.mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const deadline = t0 + opts.capSeconds * 1000;
  const perVolume = Math.ceil(needles / Math.max(1, opts.volumes));
  const scratch = Buffer.allocUnsafe(8);
  const volumes = new Map<number, [number, number]>();
  let datBytes = 0;
  let idxBytes = 0;
  let lastReport = t0;
  let capped = false;
  let i = 0;
  let vid = 0;
  while (i < needles && !capped) {
    vid++;
    const first = i;
    const base = path.join(dir, String(vid));
    const dat = new Appender(`${base}.dat`);
    const idx = new Appender(`${base}.idx`);
    dat.append(encodeSuperblock({ volumeId: vid, generation: 0, createdMs: Date.now() }));
    idx.append(encodeIdxHeader({ volumeId: vid, generation: 0 }));
    let pos = SUPERBLOCK_SIZE;
    const stop = Math.min(needles, first + perVolume);
    for (; i < stop; i++) {
      const { id, cookie, data } = indexNeedle(i, seed, scratch);
      const buf = encodeNeedle(
        { cookie, id, dataLength: data.length, originalLength: data.length, flags: 0, codec: 0 },
        data,
      );
      if (pos + buf.length > MAX_VOLUME_BYTES) break;
      const [lo, hi] = idParts(id);
      const out = idx.reserve(IDX_RECORD_SIZE);
      putIdxRecord(out, idx.at / IDX_RECORD_SIZE, lo, hi, pos / 8, data.length);
      idx.advance(IDX_RECORD_SIZE);
      dat.append(buf);
      pos += buf.length;
      if ((i & 0xffff) === 0) {
        const now = performance.now();
        if (now >= deadline) {
          capped = true;
          i++;
          break;
        }
        if (now - lastReport >= 5000) {
          lastReport = now;
          const s = (now - t0) / 1000;
          progress(`[generate] ${fmtInt(i)}/${fmtInt(needles)} needles, ${fmtInt(i / s)}/s`);
        }
      }
    }
    datBytes += dat.finish();
    idxBytes += idx.finish();
    volumes.set(vid, [first, i]);
  }
  const dfd = fs.openSync(dir, 'r');
  fs.fsyncSync(dfd);
  fs.closeSync(dfd);
  return {
    needles: i,
    volumes,
    datBytes,
    idxBytes,
    seconds: (performance.now() - t0) / 1000,
    capped,
  };
}
