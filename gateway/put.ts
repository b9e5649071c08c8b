// PutObject: data first (fsync'd needles), then the metadata commit; the replaced
// object's needles are freed only after the new record is committed.
import { MetadataError, type ObjectRecord } from '../directory/model/api.ts';
import { type BucketRequest, guardOf } from './access.ts';
import { header } from './context.ts';
import { S3Error } from './error.ts';
import { validateKey } from './keys.ts';
import { empty } from './response.ts';
import { checksumHeaders, objectAttributes, receiveBody } from './upload.ts';

/** S3 names the header whose condition failed in the error's Condition element. */
export function preconditionFailed(condition: 'If-Match' | 'If-None-Match'): S3Error {
  return new S3Error(
    'PreconditionFailed',
    'At least one of the pre-conditions you specified did not hold',
    {
      extra: { Condition: condition },
    },
  );
}

/**
 * True when the metadata store answered "no" (the record was certainly not committed).
 * A timeout, a dropped connection or a 5xx may come after a synced commit: freeing the
 * new needles then would leave a visible object pointing at deleted data, so those are
 * left as orphans instead.
 */
export function definitelyRejected(e: unknown): boolean {
  return e instanceof MetadataError && e.code !== 'Unavailable';
}

/** Commits a record, frees what it replaced; frees the new data if the commit was refused. */
export async function commitObject(
  req: BucketRequest,
  rec: ObjectRecord,
  cond?: { ifNoneMatch?: boolean; ifMatch?: string },
): Promise<void> {
  let previous: ObjectRecord | null;
  try {
    previous = await req.services.meta.putObject(req.bucket, rec, { ...cond, ...guardOf(req) });
  } catch (e) {
    if (definitelyRejected(e)) await req.services.data.free(rec.chunks);
    if (e instanceof MetadataError && e.code === 'PreconditionFailed') {
      // The directory checks If-None-Match: * first, and with both headers the object
      // existed a moment ago (If-Match found it): that one is the likelier to have failed.
      throw preconditionFailed(cond?.ifNoneMatch ? 'If-None-Match' : 'If-Match');
    }
    throw e;
  }
  if (previous) await req.services.data.free(previous.chunks);
}

export async function putObject(req: BucketRequest): Promise<Response> {
  validateKey(req.key);
  const attrs = objectAttributes(req);
  const ifNoneMatch = header(req, 'if-none-match');
  const ifMatch = header(req, 'if-match');
  const anyEtag = ifNoneMatch?.trim() === '*';
  // Fail before storing any data when the outcome is already known.
  if (ifNoneMatch !== undefined || ifMatch !== undefined) {
    const current = await req.services.meta.getObject(req.bucket, req.key);
    if (ifMatch !== undefined && !current) {
      throw new S3Error('NoSuchKey', 'The specified key does not exist.', {
        extra: { Key: req.key },
      });
    }
    if (current && ifNoneMatch !== undefined) {
      // `*`: any current object; an ETag list: one that matches (checked here only, as
      // the metadata commit is atomic for `*` and If-Match).
      const tags = ifNoneMatch
        .split(',')
        .map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''));
      if (anyEtag || tags.includes(current.etag)) throw preconditionFailed('If-None-Match');
    }
  }
  const body = await receiveBody(req, attrs.contentType);
  const rec: ObjectRecord = {
    key: req.key,
    size: body.size,
    etag: body.md5,
    lastModified: Date.now(),
    ...attrs,
    checksums: Object.keys(body.checksums).length > 0 ? body.checksums : undefined,
    chunks: body.chunks,
    owner: req.userId!,
  };
  await commitObject(req, rec, { ifNoneMatch: anyEtag, ifMatch });
  return empty(200, { etag: `"${body.md5}"`, ...checksumHeaders(body.checksums) });
}
