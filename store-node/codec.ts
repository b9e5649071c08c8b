// Write-time compression: only when it pays. Small payloads, content types that are
// already compressed, and payloads zstd cannot shrink by at least MIN_SAVING are stored
// as they are, so reading them stays a pread with no CPU work. 20 % rather than the 12.5 %
// of ZFS or BlueStore: here CPU is the scarce resource (one event-loop thread per process,
// measured: zstd was 26 % of the write path for 4 KiB needles that shrank only 16 %),
// while text, JSON and logs shrink far more than 20 % and still get compressed.
// Uses zstd's raw contexts: the high-level zstd-napi helpers reset parameters and scan
// frame sizes on every call, which costs more than compressing a 4 KiB needle.
import { createRequire } from 'node:module';
import { Codec } from './needle.ts';

export type CompressionMode = 'auto' | 'off';

interface ZstdBinding {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  compressBound(n: number): number;
}
const zstd = createRequire(import.meta.url)('zstd-napi/binding') as ZstdBinding;

const MIN_SIZE = 512;
const MIN_SAVING = 0.2;
/** A 512-byte prefix above this ratio predicts < 20 % on the whole (measured on text, JSON, hex). */
const PROBE_MAX_RATIO = 0.85;
const ZSTD_LEVEL = 1;
/** Payloads past this size are first probed on a prefix, to skip noise cheaply. */
const PROBE_FROM = 2048;
const PROBE_SIZE = 512;

const cctx = new zstd.CCtx();
const dctx = new zstd.DCtx();
let scratch = Buffer.allocUnsafe(zstd.compressBound(64 * 1024));

const PRECOMPRESSED = [
  /^image\/(jpeg|jpg|png|gif|webp|avif|heic|heif|jxl)/,
  /^video\//,
  /^audio\/(mpeg|mp4|aac|ogg|opus|webm|flac)/,
  /^application\/(zip|gzip|x-gzip|zstd|x-zstd|x-7z-compressed|x-xz|x-bzip2|x-rar|vnd\.rar|pdf|x-brotli)/,
];

export function isPrecompressedType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const ct = contentType.toLowerCase();
  return PRECOMPRESSED.some((re) => re.test(ct));
}

export interface Encoded {
  stored: Buffer;
  codec: Codec;
}

function compressInto(data: Uint8Array): number {
  const bound = zstd.compressBound(data.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafe(bound);
  return cctx.compress(scratch, data, ZSTD_LEVEL);
}

export function maybeCompress(data: Buffer, mode: CompressionMode, contentType?: string): Encoded {
  const raw = { stored: data, codec: Codec.None };
  if (mode === 'off' || data.length < MIN_SIZE || isPrecompressedType(contentType)) return raw;
  if (data.length >= PROBE_FROM) {
    const probe = compressInto(data.subarray(0, PROBE_SIZE));
    if (probe > PROBE_SIZE * PROBE_MAX_RATIO) return raw;
  }
  const n = compressInto(data);
  if (n > data.length * (1 - MIN_SAVING)) return raw;
  return { stored: Buffer.from(scratch.subarray(0, n)), codec: Codec.Zstd };
}

export function decode(stored: Buffer, codec: Codec, originalLength: number): Buffer {
  switch (codec) {
    case Codec.None:
      return stored;
    case Codec.Zstd: {
      // The needle header records the original length: decode straight into it.
      const out = Buffer.allocUnsafe(originalLength);
      const n = dctx.decompress(out, stored);
      if (n !== originalLength) {
        throw new Error(`zstd: decoded ${n} bytes, header says ${originalLength}`);
      }
      return out;
    }
    default:
      throw new Error(`unknown codec ${codec as number}`);
  }
}
