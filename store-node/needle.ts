// On-disk needle and superblock encoding. Byte layout: store-node/FORMAT.md.
import { crc32c } from '@node-rs/crc32';

export const SUPERBLOCK_SIZE = 64;
export const SUPERBLOCK_MAGIC = 0x3156534b; // "KSV1" little-endian
export const FORMAT_VERSION = 1;

export const NEEDLE_HEADER_SIZE = 32;
export const NEEDLE_MAGIC = 0x314e534b; // "KSN1" little-endian
export const NEEDLE_CRC_SIZE = 4;
/** Largest stored data length a needle may carry (u32 field, and offsets are /8 in u32). */
export const MAX_NEEDLE_DATA = 0xffff_ffff - 64;

export const FLAG_DELETED = 0x01;
export const FLAG_COMPRESSED = 0x02;

export enum Codec {
  None = 0,
  Zstd = 1,
}

export interface NeedleHeader {
  cookie: number;
  id: bigint;
  dataLength: number;
  originalLength: number;
  flags: number;
  codec: Codec;
}

export interface Superblock {
  volumeId: number;
  generation: number;
  createdMs: number;
}

/** Total bytes a needle occupies in the volume file, padding included. */
export function needleDiskSize(dataLength: number): number {
  return (NEEDLE_HEADER_SIZE + dataLength + NEEDLE_CRC_SIZE + 7) & ~7;
}

/** Same as needleDiskSize, safe past 2 GiB where the bitwise form overflows. */
export function needleDiskSizeLarge(dataLength: number): number {
  const raw = NEEDLE_HEADER_SIZE + dataLength + NEEDLE_CRC_SIZE;
  return Math.ceil(raw / 8) * 8;
}

export function encodeNeedle(h: NeedleHeader, data: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(needleDiskSizeLarge(data.length));
  encodeNeedleInto(buf, 0, h, data);
  return buf;
}

/** Writes a whole needle (padding included) at `at`; every byte of it is set. */
export function encodeNeedleInto(buf: Buffer, at: number, h: NeedleHeader, data: Uint8Array): void {
  writeNeedleHeader(buf, at, h);
  buf.set(data, at + NEEDLE_HEADER_SIZE);
  const crcAt = at + NEEDLE_HEADER_SIZE + data.length;
  buf.writeUInt32LE(crc32c(data as Buffer), crcAt);
  buf.fill(0, crcAt + NEEDLE_CRC_SIZE, at + needleDiskSizeLarge(data.length));
}

export function writeNeedleHeader(buf: Buffer, at: number, h: NeedleHeader): void {
  buf.writeUInt32LE(NEEDLE_MAGIC, at);
  buf.writeUInt32LE(h.cookie >>> 0, at + 4);
  buf.writeBigUInt64LE(h.id, at + 8);
  buf.writeUInt32LE(h.dataLength, at + 16);
  buf.writeUInt32LE(h.originalLength, at + 20);
  buf.writeUInt8(h.flags, at + 24);
  buf.writeUInt8(h.codec, at + 25);
  buf.writeUInt16LE(0, at + 26);
  buf.writeUInt32LE(crc32c(buf.subarray(at, at + 28)), at + 28);
}

export type HeaderProblem = 'short' | 'magic' | 'header-crc';

/** Parses a header, or says why the bytes are not one (torn write, garbage, corruption). */
export function readNeedleHeader(buf: Buffer, at: number): NeedleHeader | HeaderProblem {
  if (buf.length - at < NEEDLE_HEADER_SIZE) return 'short';
  if (buf.readUInt32LE(at) !== NEEDLE_MAGIC) return 'magic';
  if (buf.readUInt32LE(at + 28) !== crc32c(buf.subarray(at, at + 28))) return 'header-crc';
  return {
    cookie: buf.readUInt32LE(at + 4),
    id: buf.readBigUInt64LE(at + 8),
    dataLength: buf.readUInt32LE(at + 16),
    originalLength: buf.readUInt32LE(at + 20),
    flags: buf.readUInt8(at + 24),
    codec: buf.readUInt8(at + 25) as Codec,
  };
}

/** True when the stored data of a needle whose header starts at `at` matches its CRC. */
export function needleDataIntact(buf: Buffer, at: number, dataLength: number): boolean {
  const start = at + NEEDLE_HEADER_SIZE;
  const end = start + dataLength;
  if (end + NEEDLE_CRC_SIZE > buf.length) return false;
  return crc32c(buf.subarray(start, end)) === buf.readUInt32LE(end);
}

export function encodeSuperblock(sb: Superblock): Buffer {
  const buf = Buffer.alloc(SUPERBLOCK_SIZE);
  buf.writeUInt32LE(SUPERBLOCK_MAGIC, 0);
  buf.writeUInt16LE(FORMAT_VERSION, 4);
  buf.writeUInt32LE(sb.volumeId, 8);
  buf.writeUInt32LE(sb.generation, 12);
  buf.writeBigUInt64LE(BigInt(sb.createdMs), 16);
  buf.writeUInt32LE(crc32c(buf.subarray(0, 60)), 60);
  return buf;
}

export function decodeSuperblock(buf: Buffer): Superblock {
  if (buf.length < SUPERBLOCK_SIZE) throw new Error('superblock: short file');
  if (buf.readUInt32LE(0) !== SUPERBLOCK_MAGIC) throw new Error('superblock: bad magic');
  if (buf.readUInt32LE(60) !== crc32c(buf.subarray(0, 60))) throw new Error('superblock: bad crc');
  const version = buf.readUInt16LE(4);
  if (version !== FORMAT_VERSION) throw new Error(`superblock: unsupported version ${version}`);
  return {
    volumeId: buf.readUInt32LE(8),
    generation: buf.readUInt32LE(12),
    createdMs: Number(buf.readBigUInt64LE(16)),
  };
}
