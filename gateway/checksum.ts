// Body digests computed while the body streams past: the MD5 ETag, the SHA-256 a signed
// payload declares, and the x-amz-checksum-* values of S3's flexible checksums (CRC32,
// CRC32C, CRC64NVME, SHA1, SHA256), which S3 carries as base64 of the big-endian digest.
import { createHash, type Hash, timingSafeEqual } from 'node:crypto';
import { crc32, crc32c } from '@node-rs/crc32';
import { S3Error } from './error.ts';

export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME' | 'SHA1' | 'SHA256';
export type DigestAlgorithm = ChecksumAlgorithm | 'MD5';

export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = [
  'CRC32',
  'CRC32C',
  'CRC64NVME',
  'SHA1',
  'SHA256',
];

const DIGEST_BYTES: Record<DigestAlgorithm, number> = {
  CRC32: 4,
  CRC32C: 4,
  CRC64NVME: 8,
  SHA1: 20,
  SHA256: 32,
  MD5: 16,
};

/** `x-amz-checksum-crc32` etc.: the header (or trailer) name carrying an algorithm's value. */
export function checksumHeaderName(alg: ChecksumAlgorithm): string {
  return `x-amz-checksum-${alg.toLowerCase()}`;
}

/** The algorithm a header/trailer name or x-amz-sdk-checksum-algorithm value names, if any. */
export function parseChecksumAlgorithm(name: string): ChecksumAlgorithm | undefined {
  const n = name
    .trim()
    .toUpperCase()
    .replace(/^X-AMZ-CHECKSUM-/, '');
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(n)
    ? (n as ChecksumAlgorithm)
    : undefined;
}

export interface Hasher {
  update(chunk: Uint8Array): void;
  /** The raw digest (big-endian for CRCs). Call once. */
  digest(): Buffer;
}

class NodeHasher implements Hasher {
  private readonly h: Hash;
  constructor(alg: string) {
    this.h = createHash(alg);
  }
  update(chunk: Uint8Array): void {
    this.h.update(chunk);
  }
  digest(): Buffer {
    return this.h.digest();
  }
}

class Crc32Hasher implements Hasher {
  private crc = 0;
  constructor(private readonly fn: typeof crc32) {}
  update(chunk: Uint8Array): void {
    // @node-rs/crc32 takes the running value as its initial state: incremental for free.
    this.crc = this.fn(chunk, this.crc);
  }
  digest(): Buffer {
    const out = Buffer.allocUnsafe(4);
    out.writeUInt32BE(this.crc >>> 0);
    return out;
  }
}

// CRC-64/NVME (reflected, poly 0xAD93D23594C93659, init and xorout all ones). No native
// binding is installed, so this is a byte-wise table over two 32-bit halves: fast enough
// for the small objects this store is for, and only computed when a client asks for it.
const CRC64_LO = new Uint32Array(256);
const CRC64_HI = new Uint32Array(256);
{
  const polyHi = 0x9a6c9329; // the reflected polynomial 0x9A6C9329AC4BC9B5 as hi:lo
  const polyLo = 0xac4bc9b5;
  for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let b = 0; b < 8; b++) {
      const lsb = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi >>>= 1;
      if (lsb) {
        lo = (lo ^ polyLo) >>> 0;
        hi = (hi ^ polyHi) >>> 0;
      }
    }
    CRC64_LO[i] = lo;
    CRC64_HI[i] = hi;
  }
}

class Crc64NvmeHasher implements Hasher {
  private lo = 0xffffffff;
  private hi = 0xffffffff;
  update(chunk: Uint8Array): void {
    let lo = this.lo;
    let hi = this.hi;
    for (let i = 0; i < chunk.length; i++) {
      const idx = (lo ^ chunk[i]!) & 0xff;
      lo = (((lo >>> 8) | (hi << 24)) ^ CRC64_LO[idx]!) >>> 0;
      hi = ((hi >>> 8) ^ CRC64_HI[idx]!) >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
  }
  digest(): Buffer {
    const out = Buffer.allocUnsafe(8);
    out.writeUInt32BE((this.hi ^ 0xffffffff) >>> 0, 0);
    out.writeUInt32BE((this.lo ^ 0xffffffff) >>> 0, 4);
    return out;
  }
}

export function createHasher(alg: DigestAlgorithm): Hasher {
  switch (alg) {
    case 'MD5':
      return new NodeHasher('md5');
    case 'SHA1':
      return new NodeHasher('sha1');
    case 'SHA256':
      return new NodeHasher('sha256');
    case 'CRC32':
      return new Crc32Hasher(crc32);
    case 'CRC32C':
      return new Crc32Hasher(crc32c);
    case 'CRC64NVME':
      return new Crc64NvmeHasher();
  }
}

/** One-shot digest, mostly for tests and small bodies. */
export function digestOf(alg: DigestAlgorithm, data: Uint8Array | string): Buffer {
  const h = createHasher(alg);
  h.update(typeof data === 'string' ? Buffer.from(data) : data);
  return h.digest();
}

export interface BodyDigestOptions {
  md5?: boolean;
  sha256?: boolean;
  checksums?: Iterable<ChecksumAlgorithm>;
}

export interface BodyDigestResult {
  size: number;
  md5?: Buffer;
  sha256?: Buffer;
  /** base64 digests, as they appear in x-amz-checksum-* headers. */
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
}

/**
 * Every digest a PUT needs, fed once per chunk. SHA256 requested both as the payload hash
 * and as a flexible checksum is computed once.
 */
export class BodyDigests {
  private readonly hashers = new Map<DigestAlgorithm, Hasher>();
  private size = 0;
  private finished = false;

  constructor(private readonly opts: BodyDigestOptions) {
    if (opts.md5) this.hashers.set('MD5', createHasher('MD5'));
    if (opts.sha256) this.hashers.set('SHA256', createHasher('SHA256'));
    for (const alg of opts.checksums ?? []) {
      if (!this.hashers.has(alg)) this.hashers.set(alg, createHasher(alg));
    }
  }

  update(chunk: Uint8Array): void {
    if (this.finished) throw new Error('BodyDigests.update after finish');
    this.size += chunk.length;
    for (const h of this.hashers.values()) h.update(chunk);
  }

  finish(): BodyDigestResult {
    if (this.finished) throw new Error('BodyDigests.finish called twice');
    this.finished = true;
    const raw = new Map<DigestAlgorithm, Buffer>();
    for (const [alg, h] of this.hashers) raw.set(alg, h.digest());
    const result: BodyDigestResult = { size: this.size, checksums: {} };
    if (this.opts.md5) result.md5 = raw.get('MD5')!;
    if (this.opts.sha256) result.sha256 = raw.get('SHA256')!;
    for (const alg of this.opts.checksums ?? []) {
      result.checksums[alg] = raw.get(alg)!.toString('base64');
    }
    return result;
  }
}

/** Hashes an async stream of chunks, passing nothing through; for tests and small bodies. */
export async function digestStream(
  source: AsyncIterable<Uint8Array>,
  opts: BodyDigestOptions,
): Promise<BodyDigestResult> {
  const d = new BodyDigests(opts);
  for await (const chunk of source) d.update(chunk);
  return d.finish();
}

/** The ETag of a single-part object: the quoted hex MD5. */
export function etagOf(md5: Buffer): string {
  return `"${md5.toString('hex')}"`;
}

// Strict base64: the exact length for the digest, canonical padding, no whitespace.
function decodeBase64Exact(value: string, bytes: number): Buffer | null {
  const v = value.trim();
  if (v.length !== Math.ceil(bytes / 3) * 4 || !/^[A-Za-z0-9+/]+={0,2}$/.test(v)) return null;
  const buf = Buffer.from(v, 'base64');
  if (buf.length !== bytes || buf.toString('base64') !== v) return null;
  return buf;
}

/** Content-MD5: malformed → InvalidDigest, mismatch → BadDigest, as S3 does. */
export function verifyContentMd5(headerBase64: string, md5: Buffer): void {
  const expected = decodeBase64Exact(headerBase64, 16);
  if (expected === null) {
    throw new S3Error('InvalidDigest', 'The Content-MD5 you specified is not valid.');
  }
  if (!timingSafeEqual(expected, md5)) {
    throw new S3Error(
      'BadDigest',
      'The Content-MD5 you specified did not match what we received.',
      {
        extra: { ExpectedDigest: headerBase64.trim(), CalculatedDigest: md5.toString('base64') },
      },
    );
  }
}

/** Checks a declared checksum's syntax before the body is read (InvalidRequest if bad). */
export function validateChecksumValue(alg: ChecksumAlgorithm, valueBase64: string): Buffer {
  const buf = decodeBase64Exact(valueBase64, DIGEST_BYTES[alg]);
  if (buf === null) {
    throw new S3Error('InvalidRequest', `Value for ${checksumHeaderName(alg)} header is invalid.`);
  }
  return buf;
}

/** A declared x-amz-checksum-* value (header or trailer) against the computed one. */
export function verifyChecksum(
  alg: ChecksumAlgorithm,
  declaredBase64: string,
  computed: Buffer | string,
): void {
  const declared = validateChecksumValue(alg, declaredBase64);
  const actual = typeof computed === 'string' ? Buffer.from(computed, 'base64') : computed;
  if (actual.length !== declared.length || !timingSafeEqual(actual, declared)) {
    throw new S3Error(
      'BadDigest',
      `The ${checksumHeaderName(alg)} you specified did not match the calculated checksum.`,
    );
  }
}

/** The x-amz-content-sha256 of a non-streaming signed payload against the body's SHA-256. */
export function verifyContentSha256(declaredHex: string, sha256: Buffer): void {
  const computed = sha256.toString('hex');
  if (declaredHex.toLowerCase() !== computed) {
    throw new S3Error(
      'XAmzContentSHA256Mismatch',
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
      {
        extra: { ClientComputedContentSHA256: declaredHex, S3ComputedContentSHA256: computed },
      },
    );
  }
}

// x-amz-checksum-* headers that configure checksums rather than carry a value.
const NOT_A_VALUE = new Set([
  'x-amz-checksum-type',
  'x-amz-checksum-algorithm',
  'x-amz-checksum-mode',
]);

/**
 * The one flexible checksum a request declares in its headers, if any. S3 allows only one;
 * the value's syntax is checked here so a bad header fails before the body is read.
 */
export function declaredChecksum(
  headers: Record<string, string | string[] | undefined>,
): { algorithm: ChecksumAlgorithm; value: string } | undefined {
  let found: { algorithm: ChecksumAlgorithm; value: string } | undefined;
  for (const [name, raw] of Object.entries(headers)) {
    if (!name.startsWith('x-amz-checksum-') || raw === undefined) continue;
    if (NOT_A_VALUE.has(name)) continue;
    const algorithm = parseChecksumAlgorithm(name);
    if (algorithm === undefined) {
      throw new S3Error('InvalidRequest', `Unsupported checksum header ${name}.`);
    }
    if (found !== undefined || Array.isArray(raw)) {
      throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header');
    }
    validateChecksumValue(algorithm, raw);
    found = { algorithm, value: raw.trim() };
  }
  return found;
}
