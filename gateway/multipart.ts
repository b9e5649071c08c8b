// Multipart uploads. Parts are stored as needles like any object data; completing an
// upload writes one object record that refers to the parts' needles in order — no data
// is copied. Parts not named in the completion are freed.
import crypto from 'node:crypto';
import {
  MetadataError,
  type ObjectRecord,
  type PartRecord,
  type UploadRecord,
} from '../directory/model/api.ts';
import { type BucketRequest, guardOf } from './access.ts';
import { owner } from './bucket.ts';
import { BodyDigests, parseChecksumAlgorithm } from './checksum.ts';
import { header, intParam, readSmallBody, type S3Request } from './context.ts';
import { copyData, loadCopySource } from './copy.ts';
import { S3Error } from './error.ts';
import { CHECKSUM_NAMES } from './get.ts';
import { validateKey } from './keys.ts';
import { definitelyRejected } from './put.ts';
import { empty, xmlResponse } from './response.ts';
import { checksumHeaders, objectAttributes, receiveBody } from './upload.ts';
import { isoDate, parseXmlBody, type XmlNode } from './xml.ts';

export const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_PARTS = 10_000;

function noSuchUpload(req: S3Request): S3Error {
  return new S3Error(
    'NoSuchUpload',
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    {
      extra: { UploadId: req.query.get('uploadId') ?? '' },
    },
  );
}

async function loadUpload(req: BucketRequest): Promise<UploadRecord> {
  const u = await req.services.meta.getUpload(req.bucket, req.key, req.query.get('uploadId') ?? '');
  if (!u) throw noSuchUpload(req);
  return u;
}

/** The partNumber parameter; S3 rejects a bad one before it looks at the bucket. */
export function partNumber(req: S3Request): number {
  const raw = req.query.get('partNumber') ?? '';
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > MAX_PARTS) {
    throw new S3Error(
      'InvalidArgument',
      'Part number must be an integer between 1 and 10000, inclusive',
      {
        extra: { ArgumentName: 'partNumber', ArgumentValue: raw },
      },
    );
  }
  return n;
}

function mapMeta(req: S3Request, e: unknown): never {
  if (e instanceof MetadataError && e.code === 'NoSuchUpload') throw noSuchUpload(req);
  if (e instanceof MetadataError && e.code === 'InvalidPart') {
    throw new S3Error(
      'InvalidPart',
      "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
    );
  }
  throw e;
}

export async function createUpload(req: BucketRequest): Promise<Response> {
  validateKey(req.key);
  const { userMeta, ...rest } = objectAttributes(req);
  const algHeader = header(req, 'x-amz-checksum-algorithm');
  const alg = algHeader ? parseChecksumAlgorithm(algHeader) : undefined;
  if (algHeader && !alg) {
    throw new S3Error('InvalidRequest', `Checksum algorithm ${algHeader} is not supported.`);
  }
  // Time-ordered ids: uploads of one key then list in initiation order.
  const uploadId = `${Date.now().toString(36).padStart(9, '0')}${crypto.randomBytes(12).toString('hex')}`;
  await req.services.meta.createUpload(
    {
      uploadId,
      bucket: req.bucket,
      key: req.key,
      initiated: Date.now(),
      owner: req.userId!,
      // The checksum algorithm is remembered as an empty entry: the object's composite
      // checksum is filled in on completion.
      object: {
        ...rest,
        userMeta,
        owner: req.userId!,
        checksums: alg ? { [alg.toLowerCase()]: '' } : undefined,
      },
    },
    guardOf(req),
  );
  return xmlResponse(
    'InitiateMultipartUploadResult',
    { Bucket: req.bucket, Key: req.key, UploadId: uploadId },
    200,
    alg ? { 'x-amz-checksum-algorithm': alg } : {},
  );
}

async function storePart(req: BucketRequest, part: PartRecord): Promise<void> {
  let replaced: PartRecord | null;
  try {
    replaced = await req.services.meta.putPart(
      req.bucket,
      req.key,
      req.query.get('uploadId')!,
      part,
      guardOf(req),
    );
  } catch (e) {
    if (definitelyRejected(e)) await req.services.data.free(part.chunks);
    mapMeta(req, e);
  }
  if (replaced) await req.services.data.free(replaced.chunks);
}

export async function uploadPart(req: BucketRequest): Promise<Response> {
  const n = partNumber(req);
  const upload = await loadUpload(req);
  const body = await receiveBody(req, upload.object.contentType);
  await storePart(req, {
    partNumber: n,
    etag: body.md5,
    size: body.size,
    lastModified: Date.now(),
    chunks: body.chunks,
    checksums: Object.keys(body.checksums).length > 0 ? body.checksums : undefined,
  });
  return empty(200, { etag: `"${body.md5}"`, ...checksumHeaders(body.checksums) });
}

export async function uploadPartCopy(req: BucketRequest): Promise<Response> {
  const n = partNumber(req);
  await loadUpload(req);
  const src = await loadCopySource(req);
  let start = 0;
  let end = src.obj.size - 1;
  const range = header(req, 'x-amz-copy-source-range');
  if (range !== undefined) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(range.trim());
    if (!m || Number(m[2]) < Number(m[1])) {
      throw new S3Error(
        'InvalidArgument',
        'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy',
        { extra: { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: range } },
      );
    }
    if (Number(m[2]) >= src.obj.size) {
      throw new S3Error('InvalidRange', 'The requested range is not satisfiable', {
        extra: { ActualObjectSize: String(src.obj.size) },
      });
    }
    start = Number(m[1]);
    end = Number(m[2]);
  }
  const data = await copyData(req, src.obj, start, end);
  const now = Date.now();
  await storePart(req, {
    partNumber: n,
    etag: data.md5,
    size: data.size,
    lastModified: now,
    chunks: data.chunks,
  });
  return xmlResponse('CopyPartResult', { LastModified: isoDate(now), ETag: `"${data.md5}"` });
}

interface Requested {
  n: number;
  etag: string;
}

function parseCompletion(xml: string): Requested[] {
  const doc = parseXmlBody(xml, 'CompleteMultipartUpload');
  const parts = doc.Part;
  if (!Array.isArray(parts) || parts.length === 0) {
    throw new S3Error(
      'MalformedXML',
      'The XML you provided was not well-formed or did not validate against our published schema.',
    );
  }
  return parts.map((p: Record<string, unknown>) => {
    const n = Number(p.PartNumber);
    if (!Number.isInteger(n) || n < 1 || n > MAX_PARTS || typeof p.ETag !== 'string') {
      throw new S3Error('MalformedXML', 'Each Part needs a PartNumber (1–10000) and an ETag.');
    }
    return { n, etag: p.ETag.replace(/^"+|"+$/g, '').replace(/^&quot;|&quot;$/g, '') };
  });
}

function multipartEtag(etags: string[]): string {
  const md5 = crypto.createHash('md5');
  for (const e of etags) md5.update(Buffer.from(e, 'hex'));
  return `${md5.digest('hex')}-${etags.length}`;
}

function completeResult(
  req: S3Request,
  etag: string,
  checksums?: Record<string, string>,
): Response {
  const body: XmlNode = {
    Location: `/${req.bucket}/${encodeURIComponent(req.key)}`,
    Bucket: req.bucket,
    Key: req.key,
    ETag: `"${etag}"`,
  };
  for (const [name, v] of Object.entries(checksums ?? {})) {
    const element = CHECKSUM_NAMES[name];
    if (element) body[element] = v;
  }
  return xmlResponse('CompleteMultipartUploadResult', body);
}

export async function completeUpload(req: BucketRequest): Promise<Response> {
  const upload = await req.services.meta.getUpload(
    req.bucket,
    req.key,
    req.query.get('uploadId') ?? '',
  );
  const requested = parseCompletion((await readSmallBody(req, 4 * 1024 * 1024)).toString('utf8'));
  if (!upload) {
    // A retried completion (the first one succeeded) answers as the first did, as S3 does.
    const current = await req.services.meta.getObject(req.bucket, req.key);
    const etag = multipartEtag(requested.map((r) => r.etag));
    if (current?.etag === etag && requested.every((r) => /^[0-9a-f]{32}$/.test(r.etag))) {
      return completeResult(req, etag);
    }
    throw noSuchUpload(req);
  }
  for (let i = 1; i < requested.length; i++) {
    if (requested[i]!.n <= requested[i - 1]!.n) {
      throw new S3Error(
        'InvalidPartOrder',
        'The list of parts was not in ascending order. The parts list must be specified in order by part number.',
      );
    }
  }
  const stored = new Map<number, PartRecord>();
  for (let marker = 0; ; ) {
    const page = await req.services.meta.listParts(req.bucket, req.key, upload.uploadId, {
      marker,
      max: 1000,
    });
    for (const p of page.parts) stored.set(p.partNumber, p);
    if (!page.isTruncated || page.parts.length === 0) break;
    marker = page.parts[page.parts.length - 1]!.partNumber;
  }
  const used: PartRecord[] = [];
  for (const [i, r] of requested.entries()) {
    const p = stored.get(r.n);
    if (!p || p.etag !== r.etag) mapMeta(req, new MetadataError('InvalidPart', `part ${r.n}`));
    if (i < requested.length - 1 && p.size < MIN_PART_SIZE) {
      throw new S3Error(
        'EntityTooSmall',
        'Your proposed upload is smaller than the minimum allowed object size.',
        {
          extra: {
            PartNumber: String(r.n),
            ProposedSize: String(p.size),
            MinSizeAllowed: String(MIN_PART_SIZE),
          },
        },
      );
    }
    used.push(p);
  }
  const etag = multipartEtag(used.map((p) => p.etag));
  const checksums = compositeChecksum(upload, used);
  // A composite checksum sent with the completion must match ours. (FULL_OBJECT
  // checksums, a checksum of the whole byte stream, are not verified here.)
  const fullObject = header(req, 'x-amz-checksum-type')?.trim().toUpperCase() === 'FULL_OBJECT';
  for (const name of fullObject ? [] : Object.keys(CHECKSUM_NAMES)) {
    const declared = header(req, `x-amz-checksum-${name}`);
    if (declared !== undefined && checksums?.[name] !== declared.trim()) {
      throw new S3Error(
        'BadDigest',
        `The ${name.toUpperCase()} you specified did not match the calculated checksum.`,
      );
    }
  }
  const rec: ObjectRecord = {
    key: req.key,
    size: used.reduce((a, p) => a + p.size, 0),
    etag,
    lastModified: Date.now(),
    ...upload.object,
    checksums,
    chunks: used.flatMap((p) => p.chunks),
    partSizes: used.map((p) => p.size),
    owner: upload.owner,
  };
  let result: { previous: ObjectRecord | null; unused: PartRecord[] };
  try {
    result = await req.services.meta.completeUpload(
      req.bucket,
      req.key,
      upload.uploadId,
      rec,
      used.map((p) => p.partNumber),
      guardOf(req),
    );
  } catch (e) {
    mapMeta(req, e);
  }
  if (result.previous) await req.services.data.free(result.previous.chunks);
  for (const p of result.unused) await req.services.data.free(p.chunks);
  return completeResult(req, etag, checksums);
}

/** S3's composite checksum: the checksum of the parts' checksums, `-<parts>`. */
function compositeChecksum(
  upload: UploadRecord,
  used: PartRecord[],
): Record<string, string> | undefined {
  const name = Object.keys(upload.object.checksums ?? {})[0];
  const alg = name ? parseChecksumAlgorithm(name) : undefined;
  if (!name || !alg || !used.every((p) => p.checksums?.[name])) return undefined;
  const digests = new BodyDigests({ md5: false, sha256: false, checksums: new Set([alg]) });
  for (const p of used) digests.update(Buffer.from(p.checksums![name]!, 'base64'));
  return { [name]: `${digests.finish().checksums[alg]}-${used.length}` };
}

export async function abortUpload(req: BucketRequest): Promise<Response> {
  await loadUpload(req);
  let parts: PartRecord[];
  try {
    parts = await req.services.meta.abortUpload(
      req.bucket,
      req.key,
      req.query.get('uploadId')!,
      guardOf(req),
    );
  } catch (e) {
    mapMeta(req, e);
  }
  for (const p of parts) await req.services.data.free(p.chunks);
  return empty(204);
}

export async function listParts(req: BucketRequest): Promise<Response> {
  const upload = await loadUpload(req);
  const max = intParam(req, 'max-parts', 1000, 1000);
  const marker = intParam(req, 'part-number-marker', 0, MAX_PARTS);
  const page = await req.services.meta.listParts(req.bucket, req.key, upload.uploadId, {
    marker,
    max,
  });
  const last = page.parts[page.parts.length - 1];
  return xmlResponse('ListPartsResult', {
    Bucket: req.bucket,
    Key: req.key,
    UploadId: upload.uploadId,
    Initiator: owner(upload.owner),
    Owner: owner(upload.owner),
    StorageClass: 'STANDARD',
    PartNumberMarker: marker,
    NextPartNumberMarker: last ? last.partNumber : marker,
    MaxParts: max,
    IsTruncated: page.isTruncated,
    Part: page.parts.map((p) => ({
      PartNumber: p.partNumber,
      LastModified: isoDate(p.lastModified),
      ETag: `"${p.etag}"`,
      Size: p.size,
    })),
  });
}

export async function listUploads(req: BucketRequest): Promise<Response> {
  const max = intParam(req, 'max-uploads', 1000, 1000);
  const delimiter = req.query.get('delimiter') ?? '';
  const r = await req.services.meta.listUploads(req.bucket, {
    prefix: req.query.get('prefix') ?? '',
    delimiter: delimiter || undefined,
    keyMarker: req.query.get('key-marker') ?? undefined,
    uploadIdMarker: req.query.get('upload-id-marker') ?? undefined,
    maxUploads: max,
  });
  return xmlResponse('ListMultipartUploadsResult', {
    Bucket: req.bucket,
    KeyMarker: req.query.get('key-marker') ?? '',
    UploadIdMarker: req.query.get('upload-id-marker') ?? '',
    NextKeyMarker: r.nextKeyMarker ?? '',
    NextUploadIdMarker: r.nextUploadIdMarker ?? '',
    Prefix: req.query.get('prefix') ?? '',
    Delimiter: delimiter || undefined,
    MaxUploads: max,
    IsTruncated: r.isTruncated,
    Upload: r.uploads.map((u) => ({
      Key: u.key,
      UploadId: u.uploadId,
      Initiator: owner(u.owner),
      Owner: owner(u.owner),
      StorageClass: 'STANDARD',
      Initiated: isoDate(u.initiated),
    })),
    CommonPrefixes: r.commonPrefixes.map((p) => ({ Prefix: p })),
  });
}
