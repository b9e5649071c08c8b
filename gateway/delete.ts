// DeleteObject and DeleteObjects. The metadata delete commits first (the object is gone
// at once); its needles are tombstoned afterwards, and compaction reclaims the space.
import crypto from 'node:crypto';
import { MetadataError } from '../directory/model/api.ts';
import { type BucketRequest, guardOf } from './access.ts';
import { header, readSmallBody } from './context.ts';
import { fromMetadataError, S3Error } from './error.ts';
import { validateKey } from './keys.ts';
import { empty, xmlResponse } from './response.ts';
import { parseXmlBody, type XmlNode } from './xml.ts';

export async function deleteObject(req: BucketRequest): Promise<Response> {
  const old = await req.services.meta.deleteObject(req.bucket, req.key, guardOf(req));
  if (old) await req.services.data.free(old.chunks);
  return empty(204);
}

const MAX_DELETE_KEYS = 1000;

export async function deleteObjects(req: BucketRequest): Promise<Response> {
  const body = await readSmallBody(req, 2 * 1024 * 1024);
  const md5 = header(req, 'content-md5');
  if (md5 !== undefined && crypto.createHash('md5').update(body).digest('base64') !== md5) {
    throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
  }
  const doc = parseXmlBody(body.toString('utf8'), 'Delete');
  const quiet = String(doc.Quiet ?? '').toLowerCase() === 'true';
  const objects = (doc.Object ?? []) as { Key?: unknown }[];
  if (!Array.isArray(objects) || objects.length === 0 || objects.length > MAX_DELETE_KEYS) {
    throw new S3Error(
      'MalformedXML',
      'The XML you provided was not well-formed or did not validate against our published schema.',
    );
  }
  const guard = guardOf(req);
  const deleted: XmlNode[] = [];
  const errors: XmlNode[] = [];
  for (const o of objects) {
    const key =
      typeof o.Key === 'string' ? o.Key : typeof o.Key === 'number' ? String(o.Key) : null;
    if (key === null) throw new S3Error('MalformedXML', 'Every Object needs a Key.');
    try {
      validateKey(key);
      const old = await req.services.meta.deleteObject(req.bucket, key, guard);
      if (old) await req.services.data.free(old.chunks);
      if (!quiet) deleted.push({ Key: key });
    } catch (e) {
      const err =
        e instanceof S3Error
          ? e
          : e instanceof MetadataError
            ? fromMetadataError(e)
            : new S3Error('InternalError', (e as Error).message);
      errors.push({ Key: key, Code: err.code, Message: err.message });
    }
  }
  return xmlResponse('DeleteResult', { Deleted: deleted, Error: errors });
}
