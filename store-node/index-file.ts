// The append-only .idx file: a 16-byte header then 16-byte records (FORMAT.md).
// It is an accelerator, never the source of truth: the .dat file is. Records are only
// appended after the needles they describe are fsync'd, and a load validates them
// against the .dat, so a stale, short or torn .idx costs a rescan, never data.
import { crc32c } from '@node-rs/crc32';

export const IDX_HEADER_SIZE = 16;
export const IDX_RECORD_SIZE = 16;
export const IDX_MAGIC = 0x3149534b; // "KSI1" little-endian
export const TOMBSTONE_SIZE = 0xffff_ffff;

export interface IdxHeader {
  volumeId: number;
  generation: number;
}

export function encodeIdxHeader(h: IdxHeader): Buffer {
  const buf = Buffer.alloc(IDX_HEADER_SIZE);
  buf.writeUInt32LE(IDX_MAGIC, 0);
  buf.writeUInt32LE(h.volumeId, 4);
  buf.writeUInt32LE(h.generation, 8);
  buf.writeUInt32LE(crc32c(buf.subarray(0, 12)), 12);
  return buf;
}

export function decodeIdxHeader(buf: Buffer): IdxHeader | null {
  if (buf.length < IDX_HEADER_SIZE) return null;
  if (buf.readUInt32LE(0) !== IDX_MAGIC) return null;
  if (buf.readUInt32LE(12) !== crc32c(buf.subarray(0, 12))) return null;
  return { volumeId: buf.readUInt32LE(4), generation: buf.readUInt32LE(8) };
}

/** Writes records into `out` at record position `at`; the caller sizes `out`. */
export function putIdxRecord(
  out: Buffer,
  at: number,
  lo: number,
  hi: number,
  offset8: number,
  size: number,
): void {
  const b = at * IDX_RECORD_SIZE;
  out.writeUInt32LE(lo, b);
  out.writeUInt32LE(hi, b + 4);
  out.writeUInt32LE(offset8, b + 8);
  out.writeUInt32LE(size, b + 12);
}
