// Object keys: any UTF-8 up to 1024 bytes. Keys are only ever metadata (LevelDB keys),
// never file names, so `../`, `%`, `+` and unicode need no special casing here.
import { S3Error } from './error.ts';

export const MAX_KEY_BYTES = 1024;

export function validateKey(key: string): void {
  if (key.length === 0) throw new S3Error('InvalidArgument', 'Object key must not be empty.');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new S3Error('KeyTooLongError', 'Your key is too long', {
      extra: { Size: String(Buffer.byteLength(key)), MaxSizeAllowed: String(MAX_KEY_BYTES) },
    });
  }
  // Lone surrogates cannot be stored as UTF-8 and would not round-trip.
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(key)) {
    throw new S3Error('InvalidArgument', 'Object key is not valid UTF-8.');
  }
  if (key.includes('\u0000'))
    throw new S3Error('InvalidArgument', 'Object key must not contain NUL.');
}
