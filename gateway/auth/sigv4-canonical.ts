// SigV4 building blocks shared by the verifier and the signers: canonical request parts,
// RFC 3986 encoding, query parsing, signing-key derivation (cached) and date formats.
import { createHash, createHmac, hash } from 'node:crypto';

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const SERVICE = 's3';
export const TERMINATOR = 'aws4_request';
export type Headers = Record<string, string | string[] | undefined>;

export function buildCanonicalRequest(
  method: string,
  uri: string,
  query: string,
  headers: string,
  signedHeaders: string,
  payloadHash: string,
): string {
  return `${method}\n${uri}\n${query}\n${headers}\n${signedHeaders}\n${payloadHash}`;
}

/** `name:value\n` for each signed header, in the order the signer listed them. */
export function canonicalHeaders(headers: Headers, signed: readonly string[]): string {
  let out = '';
  for (const name of signed) {
    const v = headers[name];
    const value =
      v === undefined
        ? ''
        : Array.isArray(v)
          ? v.length === 1
            ? trimAll(v[0]!)
            : v.map(trimAll).join(',')
          : trimAll(v);
    out += `${name}:${value}\n`;
  }
  return out;
}

// Only ASCII blanks: node hands header bytes over as latin1, so a UTF-8 byte 0xA0 arrives
// as U+00A0, which JavaScript's \s would wrongly fold into a space.
export function trimAll(v: string): string {
  // Most values have nothing to fold: no tab, no double space, no space at either end.
  if (
    v.charCodeAt(0) !== 0x20 &&
    v.charCodeAt(v.length - 1) !== 0x20 &&
    !v.includes('\t') &&
    !v.includes('  ')
  ) {
    return v;
  }
  return v.replace(/^[ \t]+|[ \t]+$/g, '').replace(/[ \t]+/g, ' ');
}

/**
 * The canonical URI S3 signs: every segment decoded, then encoded with only the RFC 3986
 * unreserved set left bare — no double encoding, and no dot-segment removal (S3 keys may
 * contain "..").
 */
export function canonicalUri(rawPath: string): string {
  if (rawPath === '') return '/';
  if (isCanonicalPath(rawPath)) return rawPath;
  return rawPath
    .split('/')
    .map((seg) => encodeBytes(percentDecodeBytes(seg)))
    .join('/');
}

/** Sorted `key=value` pairs, both RFC 3986 encoded (space as %20). */
export function canonicalQueryString(query: readonly [string, string][], exclude?: string): string {
  const pairs: [string, string][] = [];
  for (const [k, v] of query) {
    if (k === exclude) continue;
    pairs.push([uriEncode(k), uriEncode(v)]);
  }
  pairs.sort((a, b) =>
    a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0,
  );
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

/**
 * Splits a raw query string into decoded pairs, `+` as space (as S3 and URLSearchParams
 * do). Never throws: malformed escapes stay literal, invalid UTF-8 becomes U+FFFD.
 */
export function parseQuery(raw: string): [string, string][] {
  const out: [string, string][] = [];
  const q = raw.startsWith('?') ? raw.slice(1) : raw;
  if (q === '') return out;
  for (const part of q.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : part.slice(eq + 1);
    out.push([percentDecode(k), percentDecode(v)]);
  }
  return out;
}

export function percentDecode(s: string): string {
  const plain = s.includes('+') ? s.replace(/\+/g, ' ') : s;
  if (!plain.includes('%')) return plain;
  return plain.replace(/(?:%[0-9A-Fa-f]{2})+/g, (m) =>
    Buffer.from(m.replace(/%/g, ''), 'hex').toString('utf8'),
  );
}

// Bytes of one path segment: %XX escapes decoded, a malformed % kept as itself, and any
// non-ASCII character (never from node, which rejects such request lines) taken as UTF-8.
function percentDecodeBytes(s: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (
      c === 0x25 &&
      i + 2 < s.length &&
      isHex(s.charCodeAt(i + 1)) &&
      isHex(s.charCodeAt(i + 2))
    ) {
      bytes.push(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      const cp = s.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of Buffer.from(String.fromCodePoint(isLoneSurrogate(cp) ? 0xfffd : cp))) {
        bytes.push(b);
      }
    }
  }
  return Buffer.from(bytes);
}

/** Only unreserved characters and slashes: the path is its own canonical form. */
function isCanonicalPath(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (UNRESERVED[c] !== 1 && c !== 0x2f)) return false;
  }
  return true;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function isLoneSurrogate(cp: number): boolean {
  return cp >= 0xd800 && cp <= 0xdfff;
}

const UNRESERVED = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') {
  UNRESERVED[c.charCodeAt(0)] = 1;
}
const HEX = '0123456789ABCDEF';

function encodeBytes(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    out += b < 128 && UNRESERVED[b] ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}

/** RFC 3986 encoding of a string's UTF-8 bytes; `/` kept when `keepSlash` (object keys). */
export function uriEncode(s: string, keepSlash = false): string {
  // Lone surrogates have no UTF-8 form: Buffer.from writes U+FFFD for them.
  if (!keepSlash) return encodeBytes(Buffer.from(s, 'utf8'));
  return s
    .split('/')
    .map((seg) => encodeBytes(Buffer.from(seg, 'utf8')))
    .join('/');
}

// The canonical request is hashed as the bytes that were on the wire. Node decodes header
// bytes as latin1, so a latin1-range string is re-encoded as latin1; a string with wider
// characters did not come off the wire (a test, or our own signer) and is taken as UTF-8.
export function wireBytes(s: string): Buffer {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range test is the point
  return /[^\u0000-\u00ff]/.test(s) ? Buffer.from(s, 'utf8') : Buffer.from(s, 'latin1');
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the range test is the point
const NON_ASCII = /[^\u0000-\u007f]/;

export function sha256Hex(data: string | Uint8Array): string {
  // ASCII (the usual canonical request) is the same bytes in every encoding: one-shot hash.
  if (typeof data === 'string' && !NON_ASCII.test(data)) return hash('sha256', data, 'hex');
  return createHash('sha256')
    .update(typeof data === 'string' ? wireBytes(data) : data)
    .digest('hex');
}

// HMAC-SHA256 by its definition (RFC 2104) over two one-shot hashes: for the short strings
// signed here, createHmac's object setup costs more than the hashing. The key's two padded
// blocks (ipad then opad, 128 bytes) are kept per key object: the cached signing keys.
const hmacPads = new WeakMap<Uint8Array, Buffer>();

function padsOf(key: Uint8Array): Buffer {
  let p = hmacPads.get(key);
  if (p === undefined) {
    p = Buffer.alloc(128);
    p.fill(0x36, 0, 64);
    p.fill(0x5c, 64, 128);
    for (let i = 0; i < key.length; i++) {
      p[i]! ^= key[i]!;
      p[64 + i]! ^= key[i]!;
    }
    hmacPads.set(key, p);
  }
  return p;
}

export function hmac(key: Uint8Array | string, data: string): Buffer {
  if (typeof key === 'string' || key.length > 64) {
    return createHmac('sha256', key).update(data, 'utf8').digest();
  }
  const pads = padsOf(key);
  const inner = Buffer.allocUnsafe(64 + Buffer.byteLength(data, 'utf8'));
  pads.copy(inner, 0, 0, 64);
  inner.write(data, 64, 'utf8');
  const outer = Buffer.allocUnsafe(96);
  pads.copy(outer, 0, 64, 128);
  hash('sha256', inner, 'buffer').copy(outer, 64);
  return hash('sha256', outer, 'buffer');
}

// Deriving a key costs four HMACs; a client reuses one per day and region, so keep a few.
const KEY_CACHE_SIZE = 512;
const keyCache = new Map<string, Buffer>();

/** kSigning = HMAC chain over date, region, service and "aws4_request", cached (LRU). */
export function deriveSigningKey(
  secretKey: string,
  date: string,
  region: string,
  service = SERVICE,
): Buffer {
  const last = lastKey;
  if (
    last !== undefined &&
    last.secretKey === secretKey &&
    last.date === date &&
    last.region === region &&
    last.service === service
  ) {
    return last.key;
  }
  const key = deriveSigningKeyCached(secretKey, date, region, service);
  lastKey = { secretKey, date, region, service, key };
  return key;
}

// The last key derived or found, checked first (no string building, no LRU reshuffle).
let lastKey:
  | { secretKey: string; date: string; region: string; service: string; key: Buffer }
  | undefined;

function deriveSigningKeyCached(
  secretKey: string,
  date: string,
  region: string,
  service: string,
): Buffer {
  const id = `${date}\n${region}\n${service}\n${secretKey}`;
  const hit = keyCache.get(id);
  if (hit !== undefined) {
    keyCache.delete(id);
    keyCache.set(id, hit);
    return hit;
  }
  const kDate = hmac(`AWS4${secretKey}`, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  const key = hmac(kService, TERMINATOR);
  keyCache.set(id, key);
  if (keyCache.size > KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!);
  return key;
}

/** How many derived keys are cached (for tests). */
export function signingKeyCacheSize(): number {
  return keyCache.size;
}

// Requests signed in the same second carry the same x-amz-date: remember recent parses.
const AMZ_DATE_CACHE_SIZE = 256;
const amzDateCache = new Map<string, number | null>();

/** yyyymmddThhmmssZ, validated as a real instant. */
export function parseAmzDate(s: string): Date | null {
  if (s.length !== 16) return null; // yyyymmddThhmmssZ; also keeps junk out of the cache
  let t = amzDateCache.get(s);
  if (t === undefined) {
    t = parseAmzDateUncached(s);
    if (amzDateCache.size >= AMZ_DATE_CACHE_SIZE) amzDateCache.clear();
    amzDateCache.set(s, t);
  }
  return t === null ? null : new Date(t);
}

function parseAmzDateUncached(s: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  return formatAmzDate(new Date(t)) === s ? t : null;
}

export function formatAmzDate(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

export function parseHttpDate(s: string): Date | null {
  const iso = parseAmzDate(s.trim());
  if (iso !== null) return iso;
  const t = Date.parse(s);
  return Number.isFinite(t) ? new Date(t) : null;
}

export function headerValue(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) return v;
  return v.length === 1 ? v[0]!.trim() : v.map((x) => x.trim()).join(',');
}
