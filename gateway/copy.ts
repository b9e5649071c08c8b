// CopyObject (and the copy-source parsing UploadPartCopy shares). Data is copied into
// new needles: needles are immutable and owned by exactly one record, which keeps
// deletes and compaction free of reference counting.

import crypto from 'node:crypto';
import type { Socket } from 'node:net';
import type { ObjectRecord } from '../directory/model/api.ts';
import { authorizeBucket, type BucketRequest } from './access.ts';
import { header, type S3Request } from './context.ts';
import { S3Error } from './error.ts';
import { checkConditions } from './get.ts';
import { validateKey } from './keys.ts';
import { commitObject } from './put.ts';
import { replicaCountFor } from './replicas.ts';
import { xmlResponse } from './response.ts';
import { objectAttributes } from './upload.ts';
import { isoDate } from './xml.ts';

export interface CopySource {
  bucket: string;
  key: string;
  obj: ObjectRecord;
}

export async function loadCopySource(req: S3Request): Promise<CopySource> {
  const raw = header(req, 'x-amz-copy-source') ?? '';
  let path = raw;
  const q = raw.indexOf('?');
  if (q >= 0) {
    const version = new URLSearchParams(raw.slice(q + 1)).get('versionId');
    if (version !== null && version !== 'null') {
      throw new S3Error('NoSuchVersion', 'The specified version does not exist.', { status: 404 });
    }
    path = raw.slice(0, q);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.replace(/^\//, ''));
  } catch {
    throw new S3Error('InvalidArgument', 'Invalid copy source encoding.', {
      extra: { ArgumentName: 'x-amz-copy-source' },
    });
  }
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) {
    throw new S3Error(
      'InvalidArgument',
      'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
      {
        extra: { ArgumentName: 'x-amz-copy-source', ArgumentValue: raw },
      },
    );
  }
  const bucket = decoded.slice(0, slash);
  const key = decoded.slice(slash + 1);
  await authorizeBucket(req, bucket, 'read');
  const obj = await req.services.meta.getObject(bucket, key);
  if (!obj)
    throw new S3Error('NoSuchKey', 'The specified key does not exist.', { extra: { Key: key } });
  checkConditions(req, obj, 'x-amz-copy-source-');
  return { bucket, key, obj };
}

/** Copies bytes [start, end] of a source object into new needles, hashing with MD5. */
export async function copyData(req: BucketRequest, src: ObjectRecord, start: number, end: number) {
  const md5 = crypto.createHash('md5');
  // The client is silent while the server copies (GiBs may take minutes): the idle timeout
  // (limits.ts) is for stalled clients, so it is off until the copy is done.
  const socket = req.incoming.socket as Socket | null;
  const idle = socket?.timeout ?? 0;
  if (idle > 0) socket?.setTimeout(0);
  try {
    const { chunks, size } = await req.services.data.write(
      end >= start ? req.services.data.read(src.chunks, start, end) : (async function* () {})(),
      {
        contentType: src.contentType,
        maxSize: req.services.config.maxObjectSize,
        tap: (b) => md5.update(b),
        replicaCount: replicaCountFor(req),
      },
    );
    return { chunks, size, md5: md5.digest('hex') };
  } finally {
    if (idle > 0 && socket && !socket.destroyed) socket.setTimeout(idle);
  }
}

export async function copyObject(req: BucketRequest): Promise<Response> {
  validateKey(req.key);
  const src = await loadCopySource(req);
  const directive = (header(req, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE') {
    throw new S3Error('InvalidArgument', 'Unknown metadata directive.', {
      extra: { ArgumentName: 'x-amz-metadata-directive' },
    });
  }
  if (src.bucket === req.bucket && src.key === req.key && directive === 'COPY') {
    throw new S3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  const attrs =
    directive === 'REPLACE'
      ? objectAttributes(req)
      : {
          contentType: src.obj.contentType,
          contentEncoding: src.obj.contentEncoding,
          contentDisposition: src.obj.contentDisposition,
          contentLanguage: src.obj.contentLanguage,
          cacheControl: src.obj.cacheControl,
          expires: src.obj.expires,
          userMeta: src.obj.userMeta,
        };
  const data = await copyData(req, src.obj, 0, src.obj.size - 1);
  const rec: ObjectRecord = {
    key: req.key,
    size: data.size,
    etag: data.md5,
    lastModified: Date.now(),
    ...attrs,
    checksums: undefined,
    chunks: data.chunks,
    owner: req.userId!,
  };
  await commitObject(req, rec);
  return xmlResponse('CopyObjectResult', {
    LastModified: isoDate(rec.lastModified),
    ETag: `"${rec.etag}"`,
  });
}
