// Metadata records for directory tests: small, valid, and distinct per key.
import type { ObjectRecord, PartRecord, UploadRecord } from '../../directory/model/api.ts';

/** An object of one 1-byte chunk owned by alice; `extra` overrides any field. */
export function testObject(
  key: string,
  etag = `e-${key}`,
  extra: Partial<ObjectRecord> = {},
): ObjectRecord {
  return {
    key,
    size: 1,
    etag,
    lastModified: 1_700_000_000_000,
    userMeta: {},
    chunks: [{ volumeId: 1, needleId: '1', cookie: 7, size: 1 }],
    owner: 'alice',
    ...extra,
  };
}

/** Part `n` of an upload: 5 bytes in one chunk on volume 2. */
export function testPart(n: number, needle: string, etag = `p${n}`): PartRecord {
  return {
    partNumber: n,
    etag,
    size: 5,
    lastModified: 1,
    chunks: [{ volumeId: 2, needleId: needle, cookie: 1, size: 5 }],
  };
}

/** A multipart upload by alice; `object` is what the completed object will carry. */
export function testUpload(
  bucket: string,
  key: string,
  uploadId: string,
  object: UploadRecord['object'] = { userMeta: {}, owner: 'alice' },
): UploadRecord {
  return { uploadId, bucket, key, initiated: 1, owner: 'alice', object };
}
