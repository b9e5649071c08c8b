// Write-time compression: only when it pays. Small payloads, content types that are
// already compressed, and payloads zstd cannot shrink by at least MIN_SAVING are stored
// as they are, so the read path of such needles stays a single pread with no CPU work.
import { compress, decompress } from 'zstd-napi';
import { Codec } from './needle.ts';

export type CompressionMode = 'auto' | 'off';

const MIN_SIZE = 512;
const MIN_SAVING = 0.1;
const ZSTD_LEVEL = 1;

const PRECOMPRESSED = [
  /^image\/(jpeg|jpg|png|gif|webp|avif|heic|heif|jxl)/,
  /^video\//,
  /^audio\/(mpeg|mp4|aac|ogg|opus|webm|flac)/,
  /^application\/(zip|gzip|x-gzip|zstd|x-zstd|x-7z-compressed|x-xz|x-bzip2|x-rar|vnd\.rar|pdf|x-brotli|octet-stream\+zstd)/,
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

export function maybeCompress(data: Buffer, mode: CompressionMode, contentType?: string): Encoded {
  if (mode === 'off' || data.length < MIN_SIZE || isPrecompressedType(contentType)) {
    return { stored: data, codec: Codec.None };
  }
  const c = compress(data, { compressionLevel: ZSTD_LEVEL });
  if (c.length > data.length * (1 - MIN_SAVING)) return { stored: data, codec: Codec.None };
  return { stored: c, codec: Codec.Zstd };
}

export function decode(stored: Buffer, codec: Codec, originalLength: number): Buffer {
  switch (codec) {
    case Codec.None:
      return stored;
    case Codec.Zstd: {
      const out = decompress(stored);
      if (out.length !== originalLength) {
        throw new Error(`zstd: decoded ${out.length} bytes, header says ${originalLength}`);
      }
      return out;
    }
    default:
      throw new Error(`unknown codec ${codec as number}`);
  }
}
