// Receiving an object body (PutObject, UploadPart): stream it into needles while hashing,
// then verify every digest the client declared — Content-MD5, x-amz-content-sha256,
// x-amz-checksum-* in headers or in the aws-chunked trailer. Any mismatch frees the
// needles before the error is returned, so a bad upload never becomes visible. While its
// body is read an upload holds one of the gateway's upload slots (limits.ts): past the cap
// it is refused with SlowDown before a byte is read, and the slot is given back however
// the body ends (complete, refused, client gone or timed out).
import type { ChunkRef, ObjectRecord } from '../directory/model/api.ts';
import type { BucketRequest } from './access.ts';
import {
  BodyDigests,
  type ChecksumAlgorithm,
  declaredChecksum,
  parseChecksumAlgorithm,
  verifyChecksum,
  verifyContentMd5,
  verifyContentSha256,
} from './checksum.ts';
import { header, type S3Request } from './context.ts';
import { S3Error } from './error.ts';
import { replicaCountFor } from './replicas.ts';

export interface Received {
  chunks: ChunkRef[];
  size: number;
  md5: string;
  /** base64 values keyed by lower-case algorithm (crc32, sha256, …). */
  checksums: Record<string, string>;
}

const MAX_USER_META = 2048;

function trailerAlgorithm(req: S3Request): ChecksumAlgorithm | null {
  const t = header(req, 'x-amz-trailer')?.trim();
  if (!t) return null;
  const alg = parseChecksumAlgorithm(t);
  if (!alg)
    throw new S3Error(
      'InvalidRequest',
      `The value specified in the x-amz-trailer header is not supported: ${t}`,
    );
  return alg;
}

export async function receiveBody(req: BucketRequest, contentType?: string): Promise<Received> {
  if (
    header(req, 'content-length') === undefined &&
    header(req, 'transfer-encoding') === undefined &&
    header(req, 'x-amz-decoded-content-length') === undefined
  ) {
    throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.');
  }
  // Syntax of every declared digest is checked before a byte is stored.
  const md5Header = header(req, 'content-md5');
  if (md5Header !== undefined && Buffer.from(md5Header.trim(), 'base64').length !== 16) {
    throw new S3Error('InvalidDigest', 'The Content-MD5 you specified is not valid.');
  }
  const declared = declaredChecksum(req.headers);
  const trailer = trailerAlgorithm(req);
  const sdk = header(req, 'x-amz-sdk-checksum-algorithm');
  const sdkAlg = sdk ? parseChecksumAlgorithm(sdk) : undefined;
  if (sdk && !sdkAlg)
    throw new S3Error('InvalidRequest', `Checksum algorithm ${sdk} is not supported.`);
  const algs = new Set<ChecksumAlgorithm>();
  if (declared) algs.add(declared.algorithm);
  if (trailer) algs.add(trailer);
  if (sdkAlg) algs.add(sdkAlg);
  const digests = new BodyDigests({
    md5: true,
    sha256: req.declaredSha256 !== null,
    checksums: algs,
  });
  const replicaCount = replicaCountFor(req);
  // A slot for as long as the body is being read (SlowDown, before reading it, if none).
  const uploads = req.services.uploads;
  uploads?.acquire();
  let written: Awaited<ReturnType<typeof req.services.data.write>>;
  try {
    written = await req.services.data.write(req.body(), {
      contentType,
      maxSize: req.services.config.maxObjectSize,
      tap: (b) => digests.update(b),
      replicaCount,
    });
  } catch (e) {
    // The client went away (aborted, or closed for idling by the server): not a storage
    // failure. The data path freed what it had written.
    if (e !== null && e === req.incoming.errored) {
      throw new S3Error('IncompleteBody', 'The connection closed before the body was complete.');
    }
    throw e;
  } finally {
    uploads?.release();
  }
  const { chunks, size } = written;
  try {
    const got = digests.finish();
    if (md5Header !== undefined) verifyContentMd5(md5Header, got.md5!);
    if (req.declaredSha256 !== null) verifyContentSha256(req.declaredSha256, got.sha256!);
    if (declared)
      verifyChecksum(declared.algorithm, declared.value, got.checksums[declared.algorithm]!);
    if (trailer) {
      const trailers = await req.trailers();
      const name = `x-amz-checksum-${trailer.toLowerCase()}`;
      const want = trailers[name];
      if (want === undefined)
        throw new S3Error('IncompleteBody', `The trailer ${name} was announced but not sent.`);
      verifyChecksum(trailer, want, got.checksums[trailer]!);
    }
    const checksums: Record<string, string> = {};
    for (const [alg, v] of Object.entries(got.checksums)) checksums[alg.toLowerCase()] = v!;
    return { chunks, size, md5: got.md5!.toString('hex'), checksums };
  } catch (e) {
    await req.services.data.free(chunks);
    throw e;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A header value as text. Node hands header bytes over as latin1; clients such as botocore
 * send non-ASCII metadata as UTF-8, so bytes that form valid UTF-8 are decoded as such.
 */
export function headerText(raw: string): string {
  if (!/[\x80-\xff]/.test(raw)) return raw;
  try {
    return utf8.decode(Buffer.from(raw, 'latin1'));
  } catch {
    return raw;
  }
}

/**
 * Text for a response header: latin1 when it fits (what HTTP clients decode header bytes
 * as), else its UTF-8 bytes.
 */
export function headerBytes(text: string): string {
  return /[\u0100-\uffff]/.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

/** Stored attributes of an object from request headers (PutObject, Create/Copy REPLACE). */
export function objectAttributes(
  req: S3Request,
): Pick<
  ObjectRecord,
  | 'contentType'
  | 'contentEncoding'
  | 'contentDisposition'
  | 'contentLanguage'
  | 'cacheControl'
  | 'expires'
  | 'userMeta'
> {
  const userMeta: Record<string, string> = {};
  let metaBytes = 0;
  for (const [name, v] of Object.entries(req.headers)) {
    if (!name.startsWith('x-amz-meta-') || v === undefined) continue;
    const value = headerText(Array.isArray(v) ? v.join(',') : v);
    const k = name.slice('x-amz-meta-'.length);
    userMeta[k] = value;
    metaBytes += Buffer.byteLength(k) + Buffer.byteLength(value);
  }
  if (metaBytes > MAX_USER_META) {
    throw new S3Error(
      'MetadataTooLarge',
      'Your metadata headers exceed the maximum allowed metadata size.',
      {
        status: 400,
        extra: { Size: String(metaBytes), MaxSizeAllowed: String(MAX_USER_META) },
      },
    );
  }
  // aws-chunked is a transfer detail of this request, not an encoding of the object.
  const enc = header(req, 'content-encoding')
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s && s.toLowerCase() !== 'aws-chunked')
    .join(', ');
  return {
    contentType: header(req, 'content-type'),
    contentEncoding: enc || undefined,
    contentDisposition: header(req, 'content-disposition'),
    contentLanguage: header(req, 'content-language'),
    cacheControl: header(req, 'cache-control'),
    expires: header(req, 'expires'),
    userMeta,
  };
}

export function checksumHeaders(
  checksums: Record<string, string>,
  only?: Iterable<string>,
): Record<string, string> {
  const h: Record<string, string> = {};
  const pick = only ? new Set(only) : null;
  for (const [algo, v] of Object.entries(checksums))
    if (!pick || pick.has(algo)) h[`x-amz-checksum-${algo}`] = v;
  return h;
}
