// S3 request authentication: AWS Signature Version 4 (Authorization header and presigned
// query) and the legacy Version 2 that `aws s3 presign` and s3cmd can still produce.
// Framework-free: the gateway hands in the method, the raw path, the decoded query pairs
// and node's lowercased headers, plus a secret lookup; out comes who signed the request
// and how its body is to be read. The signers at the bottom are the verifier's mirror
// image, for tests and for the benchmark's load generator.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error } from './error.ts';

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

const ALGORITHM = 'AWS4-HMAC-SHA256';
const SERVICE = 's3';
const TERMINATOR = 'aws4_request';
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_PRESIGN_EXPIRES = 604_800; // one week, AWS's limit

export type Headers = Record<string, string | string[] | undefined>;

export interface AuthRequest {
  method: string;
  /** The request path exactly as received: percent-encoded, without the query. */
  rawPath: string;
  /** Decoded query pairs in received order (see parseQuery). */
  query: [string, string][];
  /**
   * Lowercased header names, as node gives them. Pass `req.headersDistinct` when possible:
   * node joins repeated headers with ", " where SigV4 canonicalises them with ",".
   */
  headers: Headers;
  now?: Date;
  /** Bucket taken from the Host header (virtual-hosted style); SigV2 signs it in the path. */
  virtualHostBucket?: string;
}

export interface Credentials {
  secretKey: string;
  userId: string;
}

export type SecretLookup = (accessKey: string) => Promise<Credentials | null>;

export type StreamingMode = 'none' | 'signed' | 'unsigned-trailer' | 'signed-trailer';

export interface AuthResult {
  accessKey: string;
  userId: string;
  secretKey: string;
  /** SigV4 only: the derived key, to verify aws-chunked chunk signatures. */
  signingKey?: Buffer;
  /** SigV4 only: the request signature, which chunk signatures chain from. */
  seedSignature?: string;
  /** The request timestamp as signed (ISO 8601 basic, yyyymmddThhmmssZ); '' if anonymous. */
  date: string;
  region: string;
  /** date/region/s3/aws4_request for SigV4, '' otherwise. */
  scope: string;
  /** The declared payload hash: 64 hex digits to check against the body, or a mode literal. */
  contentSha256: string;
  streaming: StreamingMode;
  anonymous: boolean;
  /** 4, 2, or 0 when anonymous. */
  version: 0 | 2 | 4;
  presigned: boolean;
}

export interface AuthOptions {
  /** Largest accepted clock difference; 15 minutes as on AWS. */
  maxSkewMs?: number;
}

/**
 * Authenticates one request. Anonymous requests (no Authorization header, no signature in
 * the query) come back with `anonymous: true`; whether to serve them is the caller's call.
 * Every failure is an S3Error with AWS's code.
 */
export async function authenticate(
  req: AuthRequest,
  lookupSecret: SecretLookup,
  opts: AuthOptions = {},
): Promise<AuthResult> {
  const now = req.now ?? new Date();
  const maxSkew = opts.maxSkewMs ?? MAX_SKEW_MS;
  const authorization = headerValue(req.headers, 'authorization')?.trim() ?? '';
  const v4Query = req.query.some(
    ([k]) => k === 'X-Amz-Algorithm' || k === 'X-Amz-Signature' || k === 'X-Amz-Credential',
  );
  const v2Query = req.query.some(([k]) => k === 'AWSAccessKeyId' || k === 'Signature');
  if ((authorization !== '' && (v4Query || v2Query)) || (v4Query && v2Query)) {
    throw new S3Error(
      'InvalidArgument',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
    );
  }
  if (authorization !== '') {
    if (authorization.startsWith(ALGORITHM)) {
      return verifyV4Header(req, authorization, lookupSecret, now, maxSkew);
    }
    if (authorization.startsWith('AWS ')) {
      return verifyV2(req, authorization, lookupSecret, now, maxSkew);
    }
    if (authorization.startsWith('AWS4-ECDSA-P256-SHA256')) {
      throw new S3Error('NotImplemented', 'Signature Version 4A is not supported.');
    }
    throw new S3Error('InvalidArgument', 'Unsupported Authorization Type', {
      extra: { ArgumentName: 'Authorization', ArgumentValue: authorization.slice(0, 64) },
    });
  }
  if (v4Query) return verifyV4Query(req, lookupSecret, now, maxSkew);
  if (v2Query) return verifyV2(req, null, lookupSecret, now, maxSkew);
  const declared = headerValue(req.headers, 'x-amz-content-sha256')?.trim();
  const contentSha256 = declared === undefined || declared === '' ? UNSIGNED_PAYLOAD : declared;
  const streaming = streamingMode(contentSha256);
  if (streaming === 'signed' || streaming === 'signed-trailer') {
    throw new S3Error('InvalidRequest', 'A signed streaming payload requires a signed request.');
  }
  return {
    accessKey: '',
    userId: '',
    secretKey: '',
    date: '',
    region: '',
    scope: '',
    contentSha256,
    streaming,
    anonymous: true,
    version: 0,
    presigned: false,
  };
}

/** Alias of authenticate. */
export const verifyRequest = authenticate;

// ---------------------------------------------------------------------------------------
// SigV4

interface Credential {
  accessKey: string;
  date: string;
  region: string;
  service: string;
}

export interface ParsedAuthorizationV4 extends Credential {
  signedHeaders: string[];
  /** The SignedHeaders value as sent: it is part of the canonical request verbatim. */
  signedHeadersRaw: string;
  signature: string;
}

/** Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` in any of the
 *  spacings SDKs send. Throws AuthorizationHeaderMalformed. */
export function parseAuthorizationV4(header: string): ParsedAuthorizationV4 {
  const malformed = (why: string) =>
    new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; ${why}`);
  const h = header.trim();
  if (!h.startsWith(ALGORITHM)) throw malformed(`the algorithm must be ${ALGORITHM}.`);
  const parts = new Map<string, string>();
  // SDKs separate components with ", " or ","; a few use bare spaces. Commas win when
  // present, so an (unusual) access key with a space in it still parses.
  const rest = h.slice(ALGORITHM.length).replace(/\s*=\s*/g, '=');
  const tokens = rest
    .split(rest.includes(',') ? ',' : /\s+/)
    .map((t) => t.trim())
    .filter((t) => t !== '');
  for (const token of tokens) {
    const eq = token.indexOf('=');
    const key = eq > 0 ? canonicalComponent(token.slice(0, eq)) : undefined;
    if (key === undefined) throw malformed(`the component "${token.slice(0, 40)}" is malformed.`);
    if (parts.has(key)) throw malformed(`the component ${key} appears twice.`);
    parts.set(key, token.slice(eq + 1));
  }
  const credential = parts.get('Credential');
  const signedHeadersRaw = parts.get('SignedHeaders');
  const signature = parts.get('Signature');
  if (credential === undefined) throw malformed('missing Credential.');
  if (signedHeadersRaw === undefined) throw malformed('missing SignedHeaders.');
  if (signature === undefined) throw malformed('missing Signature.');
  const cred = parseCredential(credential, 'AuthorizationHeaderMalformed');
  const signedHeaders = parseSignedHeaders(signedHeadersRaw, 'AuthorizationHeaderMalformed');
  return { ...cred, signedHeaders, signedHeadersRaw, signature };
}

function canonicalComponent(key: string): string | undefined {
  const k = key.toLowerCase();
  if (k === 'credential') return 'Credential';
  if (k === 'signedheaders') return 'SignedHeaders';
  if (k === 'signature') return 'Signature';
  return undefined;
}

function parseCredential(value: string, code: string): Credential {
  const parts = value.split('/');
  const bad = (why: string) =>
    new S3Error(code, `Error parsing the Credential "${value.slice(0, 200)}": ${why}`);
  if (parts.length < 5) throw bad('expected AccessKey/date/region/service/aws4_request.');
  const terminator = parts.pop()!;
  const service = parts.pop()!;
  const region = parts.pop()!;
  const date = parts.pop()!;
  const accessKey = parts.join('/');
  if (accessKey === '') throw bad('the access key is empty.');
  if (!/^\d{8}$/.test(date)) throw bad(`the date "${date}" is not yyyymmdd.`);
  if (region === '') throw bad('the region is empty.');
  if (service !== SERVICE) throw bad(`incorrect service "${service}"; this endpoint is "s3".`);
  if (terminator !== TERMINATOR) throw bad(`the terminator must be "${TERMINATOR}".`);
  return { accessKey, date, region, service };
}

const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

function parseSignedHeaders(value: string, code: string): string[] {
  const names = value.split(';').map((n) => n.toLowerCase());
  for (const n of names) {
    if (!HEADER_NAME.test(n)) {
      throw new S3Error(code, `SignedHeaders "${value.slice(0, 200)}" is malformed.`);
    }
  }
  if (!names.includes('host')) throw new S3Error(code, 'SignedHeaders must include host.');
  return names;
}

async function verifyV4Header(
  req: AuthRequest,
  authorization: string,
  lookupSecret: SecretLookup,
  now: Date,
  maxSkew: number,
): Promise<AuthResult> {
  const auth = parseAuthorizationV4(authorization);
  const amzDateHeader = headerValue(req.headers, 'x-amz-date')?.trim();
  let amzDate: string;
  let when: Date | null;
  if (amzDateHeader !== undefined) {
    amzDate = amzDateHeader;
    when = parseAmzDate(amzDate);
  } else {
    const httpDate = headerValue(req.headers, 'date');
    when = httpDate === undefined ? null : parseHttpDate(httpDate);
    amzDate = when === null ? '' : formatAmzDate(when);
  }
  if (when === null) {
    throw new S3Error(
      'AccessDenied',
      'AWS authentication requires a valid Date or x-amz-date header',
    );
  }
  if (auth.date !== amzDate.slice(0, 8)) {
    throw new S3Error(
      'AuthorizationHeaderMalformed',
      `The authorization header is malformed; Invalid credential date "${auth.date}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`,
    );
  }
  checkSkew(when, now, maxSkew);

  const declared = headerValue(req.headers, 'x-amz-content-sha256')?.trim();
  let payloadHash: string;
  if (declared !== undefined) payloadHash = declared;
  else if (hasNoBody(req.headers)) payloadHash = EMPTY_SHA256;
  else {
    throw new S3Error(
      'InvalidRequest',
      'Missing required header for this request: x-amz-content-sha256',
    );
  }
  const streaming = streamingMode(payloadHash);

  const covered = new Set(auth.signedHeaders);
  if (declared !== undefined) covered.add('x-amz-content-sha256');
  if (amzDateHeader !== undefined) covered.add('x-amz-date');
  checkAmzHeadersSigned(req.headers, covered);

  return finishV4(req, lookupSecret, {
    cred: auth,
    signedHeaders: auth.signedHeaders,
    signedHeadersRaw: auth.signedHeadersRaw,
    signature: auth.signature,
    amzDate,
    payloadHash,
    streaming,
    presigned: false,
    code: 'AuthorizationHeaderMalformed',
  });
}

async function verifyV4Query(
  req: AuthRequest,
  lookupSecret: SecretLookup,
  now: Date,
  maxSkew: number,
): Promise<AuthResult> {
  const code = 'AuthorizationQueryParametersError';
  const params = new Map<string, string>();
  for (const [k, v] of req.query) {
    if (!k.startsWith('X-Amz-')) continue;
    if (params.has(k)) throw new S3Error(code, `The query parameter ${k} appears twice.`);
    params.set(k, v);
  }
  const required = [
    'X-Amz-Algorithm',
    'X-Amz-Credential',
    'X-Amz-Signature',
    'X-Amz-Date',
    'X-Amz-SignedHeaders',
    'X-Amz-Expires',
  ];
  if (required.some((k) => !params.has(k))) {
    throw new S3Error(
      code,
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  }
  if (params.get('X-Amz-Algorithm') !== ALGORITHM) {
    throw new S3Error(code, `X-Amz-Algorithm only supports "${ALGORITHM}"`);
  }
  const cred = parseCredential(params.get('X-Amz-Credential')!, code);
  const amzDate = params.get('X-Amz-Date')!;
  const when = parseAmzDate(amzDate);
  if (when === null) {
    throw new S3Error(
      code,
      "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
    );
  }
  const expiresRaw = params.get('X-Amz-Expires')!;
  if (!/^\d{1,7}$/.test(expiresRaw)) {
    throw new S3Error(code, 'X-Amz-Expires should be a number');
  }
  const expires = Number(expiresRaw);
  if (expires < 1) throw new S3Error(code, 'X-Amz-Expires must be non-negative');
  if (expires > MAX_PRESIGN_EXPIRES) {
    throw new S3Error(code, 'X-Amz-Expires must be less than a week (in seconds) that is 604800');
  }
  if (cred.date !== amzDate.slice(0, 8)) {
    throw new S3Error(
      code,
      `Invalid credential date "${cred.date}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`,
    );
  }
  if (when.getTime() - now.getTime() > maxSkew) checkSkew(when, now, maxSkew);
  const expiresAt = when.getTime() + expires * 1000;
  if (now.getTime() > expiresAt) {
    throw new S3Error('AccessDenied', 'Request has expired', {
      extra: {
        'X-Amz-Expires': expiresRaw,
        Expires: new Date(expiresAt).toISOString(),
        ServerTime: now.toISOString(),
      },
    });
  }
  const signedHeadersRaw = params.get('X-Amz-SignedHeaders')!;
  const signedHeaders = parseSignedHeaders(signedHeadersRaw, code);

  // A presigned URL signs no body, unless the signer chose to pin one.
  const pinned = params.get('X-Amz-Content-Sha256');
  const declared = headerValue(req.headers, 'x-amz-content-sha256')?.trim();
  const payloadHash = pinned ?? declared ?? UNSIGNED_PAYLOAD;
  const streaming = streamingMode(payloadHash);
  const covered = new Set(signedHeaders);
  if (pinned === undefined && declared !== undefined) covered.add('x-amz-content-sha256');
  checkAmzHeadersSigned(req.headers, covered);

  return finishV4(req, lookupSecret, {
    cred,
    signedHeaders,
    signedHeadersRaw,
    signature: params.get('X-Amz-Signature')!,
    amzDate,
    payloadHash,
    streaming,
    presigned: true,
    code,
  });
}

interface V4Parts {
  cred: Credential;
  signedHeaders: string[];
  signedHeadersRaw: string;
  signature: string;
  amzDate: string;
  payloadHash: string;
  streaming: StreamingMode;
  presigned: boolean;
  code: string;
}

async function finishV4(
  req: AuthRequest,
  lookupSecret: SecretLookup,
  p: V4Parts,
): Promise<AuthResult> {
  const found = await lookupSecret(p.cred.accessKey);
  if (found === null) {
    throw new S3Error(
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
      { extra: { AWSAccessKeyId: p.cred.accessKey } },
    );
  }
  const canonicalRequest = buildCanonicalRequest(
    req.method,
    canonicalUri(req.rawPath),
    canonicalQueryString(req.query, p.presigned ? 'X-Amz-Signature' : undefined),
    canonicalHeaders(req.headers, p.signedHeaders),
    p.signedHeadersRaw,
    p.payloadHash,
  );
  const scope = `${p.cred.date}/${p.cred.region}/${SERVICE}/${TERMINATOR}`;
  const stringToSign = `${ALGORITHM}\n${p.amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
  const signingKey = deriveSigningKey(found.secretKey, p.cred.date, p.cred.region, SERVICE);
  const expected = hmac(signingKey, stringToSign);
  const provided = p.signature.toLowerCase();
  if (
    !/^[0-9a-f]{64}$/.test(provided) ||
    !timingSafeEqual(expected, Buffer.from(provided, 'hex'))
  ) {
    throw new S3Error('SignatureDoesNotMatch', '', {
      extra: {
        AWSAccessKeyId: p.cred.accessKey,
        StringToSign: stringToSign,
        SignatureProvided: p.signature,
        CanonicalRequest: canonicalRequest,
      },
    });
  }
  return {
    accessKey: p.cred.accessKey,
    userId: found.userId,
    secretKey: found.secretKey,
    signingKey,
    seedSignature: provided,
    date: p.amzDate,
    region: p.cred.region,
    scope,
    contentSha256: p.payloadHash,
    streaming: p.streaming,
    anonymous: false,
    version: 4,
    presigned: p.presigned,
  };
}

function checkSkew(when: Date, now: Date, maxSkew: number): void {
  if (Math.abs(when.getTime() - now.getTime()) <= maxSkew) return;
  throw new S3Error(
    'RequestTimeTooSkewed',
    'The difference between the request time and the current time is too large.',
    {
      extra: {
        RequestTime: when.toISOString(),
        ServerTime: now.toISOString(),
        MaxAllowedSkewMilliseconds: String(maxSkew),
      },
    },
  );
}

// S3 refuses x-amz-* headers outside the signature: otherwise anyone replaying a signed
// request could add x-amz-copy-source, x-amz-acl or metadata to it.
function checkAmzHeadersSigned(headers: Headers, covered: Set<string>): void {
  const unsigned = Object.keys(headers).filter(
    (n) => n.startsWith('x-amz-') && headers[n] !== undefined && !covered.has(n),
  );
  if (unsigned.length > 0) {
    throw new S3Error(
      'AccessDenied',
      'There were headers present in the request which were not signed',
      {
        extra: { HeadersNotSigned: unsigned.join(', ') },
      },
    );
  }
}

function hasNoBody(headers: Headers): boolean {
  const len = headerValue(headers, 'content-length')?.trim();
  return (
    headerValue(headers, 'transfer-encoding') === undefined && (len === undefined || len === '0')
  );
}

/** What the declared payload hash says about the body. */
export function streamingMode(contentSha256: string): StreamingMode {
  switch (contentSha256) {
    case STREAMING_SIGNED:
      return 'signed';
    case STREAMING_SIGNED_TRAILER:
      return 'signed-trailer';
    case STREAMING_UNSIGNED_TRAILER:
      return 'unsigned-trailer';
    case UNSIGNED_PAYLOAD:
      return 'none';
  }
  if (/^[0-9a-fA-F]{64}$/.test(contentSha256)) return 'none';
  if (contentSha256.startsWith('STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD')) {
    throw new S3Error('NotImplemented', 'Signature Version 4A is not supported.');
  }
  throw new S3Error(
    'InvalidArgument',
    'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.',
    { extra: { ArgumentName: 'x-amz-content-sha256', ArgumentValue: contentSha256.slice(0, 80) } },
  );
}

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
    const value = v === undefined ? '' : Array.isArray(v) ? v.map(trimAll).join(',') : trimAll(v);
    out += `${name}:${value}\n`;
  }
  return out;
}

// Only ASCII blanks: node hands header bytes over as latin1, so a UTF-8 byte 0xA0 arrives
// as U+00A0, which JavaScript's \s would wrongly fold into a space.
function trimAll(v: string): string {
  return v.replace(/^[ \t]+|[ \t]+$/g, '').replace(/[ \t]+/g, ' ');
}

/**
 * The canonical URI S3 signs: every segment decoded, then encoded with only the RFC 3986
 * unreserved set left bare — no double encoding, and no dot-segment removal (S3 keys may
 * contain "..").
 */
export function canonicalUri(rawPath: string): string {
  if (rawPath === '') return '/';
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

function percentDecode(s: string): string {
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
function wireBytes(s: string): Buffer {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range test is the point
  return /[^\u0000-\u00ff]/.test(s) ? Buffer.from(s, 'utf8') : Buffer.from(s, 'latin1');
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256')
    .update(typeof data === 'string' ? wireBytes(data) : data)
    .digest('hex');
}

function hmac(key: Uint8Array | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
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

/** yyyymmddThhmmssZ, validated as a real instant. */
export function parseAmzDate(s: string): Date | null {
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
  const date = new Date(t);
  return formatAmzDate(date) === s ? date : null;
}

export function formatAmzDate(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function parseHttpDate(s: string): Date | null {
  const iso = parseAmzDate(s.trim());
  if (iso !== null) return iso;
  const t = Date.parse(s);
  return Number.isFinite(t) ? new Date(t) : null;
}

function headerValue(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.map((x) => x.trim()).join(',') : v;
}

// ---------------------------------------------------------------------------------------
// SigV2 (HMAC-SHA1), header and query forms.

// The sub-resources SigV2 signs, as aws-cli (botocore) lists them.
const V2_SUBRESOURCES = new Set([
  'accelerate',
  'acl',
  'analytics',
  'cors',
  'defaultObjectAcl',
  'delete',
  'inventory',
  'lifecycle',
  'location',
  'logging',
  'metrics',
  'notification',
  'object-lock',
  'partNumber',
  'policy',
  'replication',
  'requestPayment',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'response-content-language',
  'response-content-type',
  'response-expires',
  'restore',
  'select',
  'select-type',
  'storageClass',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versionId',
  'versioning',
  'versions',
  'website',
]);

/** CanonicalizedResource of SigV2: [/bucket] + path + signed sub-resources. */
export function canonicalResourceV2(
  path: string,
  query: readonly [string, string][],
  virtualHostBucket?: string,
): string {
  const sub = query
    .filter(([k]) => V2_SUBRESOURCES.has(k))
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`));
  const base = virtualHostBucket === undefined ? path : `/${virtualHostBucket}${path}`;
  return sub.length === 0 ? base : `${base}?${sub.join('&')}`;
}

function canonicalAmzHeadersV2(headers: Headers, skip?: string): string {
  const names = Object.keys(headers)
    .filter((n) => n.startsWith('x-amz-') && n !== skip && headers[n] !== undefined)
    .sort();
  return names.map((n) => `${n}:${headerValue(headers, n)!.trim()}\n`).join('');
}

export function stringToSignV2(
  method: string,
  headers: Headers,
  dateOrExpires: string,
  resource: string,
  skipAmzHeader?: string,
): string {
  const md5 = headerValue(headers, 'content-md5')?.trim() ?? '';
  const type = headerValue(headers, 'content-type')?.trim() ?? '';
  return `${method}\n${md5}\n${type}\n${dateOrExpires}\n${canonicalAmzHeadersV2(headers, skipAmzHeader)}${resource}`;
}

function hmacSha1(key: string, data: string): Buffer {
  return createHmac('sha1', key).update(wireBytes(data)).digest();
}

async function verifyV2(
  req: AuthRequest,
  authorization: string | null,
  lookupSecret: SecretLookup,
  now: Date,
  maxSkew: number,
): Promise<AuthResult> {
  let accessKey: string;
  let signature: string;
  // (Date line, x-amz header left out of the canonical x-amz headers) pairs to try.
  let dateForms: [string, string | undefined][];
  let when: Date;
  if (authorization !== null) {
    const rest = authorization.slice(4).trim();
    const colon = rest.lastIndexOf(':');
    if (colon <= 0 || colon === rest.length - 1) {
      throw new S3Error(
        'InvalidArgument',
        'AWS authorization header is invalid.  Expected AwsAccessKeyId:signature',
      );
    }
    accessKey = rest.slice(0, colon);
    signature = rest.slice(colon + 1);
    const amzDate = headerValue(req.headers, 'x-amz-date')?.trim();
    const httpDate = headerValue(req.headers, 'date')?.trim();
    // With x-amz-date, the spec (and boto, s3cmd, minio) signs an empty Date line and the
    // header among the x-amz ones; AWS's own DELETE example signs its value as the Date
    // line instead. Both are accepted.
    dateForms =
      amzDate !== undefined
        ? [
            ['', undefined],
            [amzDate, 'x-amz-date'],
          ]
        : [[httpDate ?? '', undefined]];
    const parsed = parseHttpDate(amzDate ?? httpDate ?? '');
    // A date before the epoch is no valid date for S3 (AccessDenied, not a clock skew).
    if (parsed === null || parsed.getTime() < 0) {
      throw new S3Error(
        'AccessDenied',
        'AWS authentication requires a valid Date or x-amz-date header',
      );
    }
    when = parsed;
    checkSkew(when, now, maxSkew);
  } else {
    const get = (k: string) => {
      const vs = req.query.filter(([key]) => key === k);
      if (vs.length > 1) {
        throw new S3Error('AccessDenied', `The query parameter ${k} appears twice.`);
      }
      return vs[0]?.[1];
    };
    const ak = get('AWSAccessKeyId');
    const sig = get('Signature');
    const expires = get('Expires');
    if (ak === undefined || sig === undefined || expires === undefined || ak === '') {
      throw new S3Error(
        'AccessDenied',
        'Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters',
      );
    }
    if (!/^\d{1,12}$/.test(expires)) {
      throw new S3Error(
        'AccessDenied',
        `Invalid date (should be seconds since epoch): ${expires.slice(0, 40)}`,
      );
    }
    accessKey = ak;
    // A + left unescaped in the URL decodes to a space; base64 has no spaces.
    signature = sig.replace(/ /g, '+');
    dateForms = [[expires, undefined]];
    when = new Date(Number(expires) * 1000);
    if (now.getTime() > when.getTime()) {
      throw new S3Error('AccessDenied', 'Request has expired', {
        extra: { Expires: when.toISOString(), ServerTime: now.toISOString() },
      });
    }
  }

  const declared = headerValue(req.headers, 'x-amz-content-sha256')?.trim();
  const contentSha256 = declared === undefined || declared === '' ? UNSIGNED_PAYLOAD : declared;
  const streaming = streamingMode(contentSha256);
  if (streaming === 'signed' || streaming === 'signed-trailer') {
    throw new S3Error('InvalidRequest', 'A signed streaming payload requires Signature Version 4.');
  }

  const found = await lookupSecret(accessKey);
  if (found === null) {
    throw new S3Error(
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
      { extra: { AWSAccessKeyId: accessKey } },
    );
  }
  const provided = Buffer.from(signature, 'base64');
  // Clients sign the path they send; some encode fewer characters than RFC 3986, so the
  // raw path is tried first and the canonical encoding second.
  const paths = [req.rawPath || '/'];
  const normal = canonicalUri(req.rawPath);
  if (normal !== paths[0]) paths.push(normal);
  // botocore's SigV2 signer signs a bucket-only path with a trailing slash ("/bucket/")
  // while sending "/bucket".
  if (req.virtualHostBucket === undefined && /^\/[^/]+$/.test(paths[0]!)) {
    paths.push(`${paths[0]}/`);
  }
  let stringToSign = '';
  for (const path of paths) {
    const resource = canonicalResourceV2(path, req.query, req.virtualHostBucket);
    for (const [dateLine, skip] of dateForms) {
      const sts = stringToSignV2(req.method, req.headers, dateLine, resource, skip);
      stringToSign ||= sts;
      const expected = hmacSha1(found.secretKey, sts);
      if (provided.length === expected.length && timingSafeEqual(provided, expected)) {
        return {
          accessKey,
          userId: found.userId,
          secretKey: found.secretKey,
          date: formatAmzDate(when),
          region: '',
          scope: '',
          contentSha256,
          streaming,
          anonymous: false,
          version: 2,
          presigned: authorization === null,
        };
      }
    }
  }
  throw new S3Error('SignatureDoesNotMatch', '', {
    extra: { AWSAccessKeyId: accessKey, StringToSign: stringToSign, SignatureProvided: signature },
  });
}

// ---------------------------------------------------------------------------------------
// Signers (clients' side): tests, tools and the benchmark's load generator.

// Headers clients leave out of the signature (hop-by-hop, or rewritten by proxies).
const UNSIGNABLE = new Set([
  'authorization',
  'connection',
  'expect',
  'keep-alive',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'x-amzn-trace-id',
]);

export interface SignV4Input {
  method: string;
  /** The path as it will be sent (percent-encoded; see uriEncode(key, true)). */
  rawPath: string;
  query?: [string, string][];
  /** Must include host. Names are lowercased. */
  headers: Record<string, string>;
  accessKey: string;
  secretKey: string;
  region?: string;
  date?: Date;
  /** x-amz-content-sha256; defaults to UNSIGNED-PAYLOAD. */
  payloadHash?: string;
}

export interface SignedV4 {
  /** The input headers plus x-amz-date, x-amz-content-sha256 and authorization. */
  headers: Record<string, string>;
  signature: string;
  signingKey: Buffer;
  amzDate: string;
  scope: string;
  canonicalRequest: string;
}

/** Signs a request with SigV4 in the Authorization header, signing every header given. */
export function signRequest(input: SignV4Input): SignedV4 {
  const region = input.region ?? 'us-east-1';
  const amzDate = formatAmzDate(input.date ?? new Date());
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers)) headers[k.toLowerCase()] = v;
  if (headers.host === undefined) throw new Error('signRequest: a host header is required');
  headers['x-amz-date'] = amzDate;
  headers['x-amz-content-sha256'] = input.payloadHash ?? UNSIGNED_PAYLOAD;
  const signed = Object.keys(headers)
    .filter((n) => !UNSIGNABLE.has(n))
    .sort();
  const signedRaw = signed.join(';');
  const canonicalRequest = buildCanonicalRequest(
    input.method,
    canonicalUri(input.rawPath),
    canonicalQueryString(input.query ?? []),
    canonicalHeaders(headers, signed),
    signedRaw,
    headers['x-amz-content-sha256'],
  );
  const date = amzDate.slice(0, 8);
  const scope = `${date}/${region}/${SERVICE}/${TERMINATOR}`;
  const signingKey = deriveSigningKey(input.secretKey, date, region);
  const signature = hmac(
    signingKey,
    `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`,
  ).toString('hex');
  headers.authorization = `${ALGORITHM} Credential=${input.accessKey}/${scope}, SignedHeaders=${signedRaw}, Signature=${signature}`;
  return { headers, signature, signingKey, amzDate, scope, canonicalRequest };
}

export interface PresignV4Input {
  method: string;
  rawPath: string;
  query?: [string, string][];
  /** Headers the URL's user must send; host at least. */
  headers: Record<string, string>;
  accessKey: string;
  secretKey: string;
  region?: string;
  date?: Date;
  /** Seconds, 1..604800. */
  expiresIn: number;
}

/** A SigV4 presigned request target: `rawPath?query` with the signature appended. */
export function presignUrl(input: PresignV4Input): string {
  const region = input.region ?? 'us-east-1';
  const amzDate = formatAmzDate(input.date ?? new Date());
  const date = amzDate.slice(0, 8);
  const scope = `${date}/${region}/${SERVICE}/${TERMINATOR}`;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers)) headers[k.toLowerCase()] = v;
  if (headers.host === undefined) throw new Error('presignUrl: a host header is required');
  const signed = Object.keys(headers)
    .filter((n) => !UNSIGNABLE.has(n))
    .sort();
  const query: [string, string][] = [
    ...(input.query ?? []),
    ['X-Amz-Algorithm', ALGORITHM],
    ['X-Amz-Credential', `${input.accessKey}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(input.expiresIn)],
    ['X-Amz-SignedHeaders', signed.join(';')],
  ];
  const qs = canonicalQueryString(query);
  const canonicalRequest = buildCanonicalRequest(
    input.method,
    canonicalUri(input.rawPath),
    qs,
    canonicalHeaders(headers, signed),
    signed.join(';'),
    UNSIGNED_PAYLOAD,
  );
  const signature = hmac(
    deriveSigningKey(input.secretKey, date, region),
    `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`,
  ).toString('hex');
  return `${input.rawPath}?${qs}&X-Amz-Signature=${signature}`;
}

export interface SignV2Input {
  method: string;
  rawPath: string;
  query?: [string, string][];
  headers: Record<string, string>;
  accessKey: string;
  secretKey: string;
  date?: Date;
  virtualHostBucket?: string;
}

/** SigV2 header signing (adds date and authorization). */
export function signRequestV2(input: SignV2Input): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers)) headers[k.toLowerCase()] = v;
  if (headers['x-amz-date'] === undefined && headers.date === undefined) {
    headers.date = (input.date ?? new Date()).toUTCString();
  }
  const dateLine = headers['x-amz-date'] !== undefined ? '' : headers.date!;
  const resource = canonicalResourceV2(input.rawPath, input.query ?? [], input.virtualHostBucket);
  const sig = hmacSha1(input.secretKey, stringToSignV2(input.method, headers, dateLine, resource));
  headers.authorization = `AWS ${input.accessKey}:${sig.toString('base64')}`;
  return headers;
}

/** A SigV2 presigned request target; `expires` is in epoch seconds. */
export function presignUrlV2(input: Omit<SignV2Input, 'date'> & { expires: number }): string {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers)) headers[k.toLowerCase()] = v;
  const resource = canonicalResourceV2(input.rawPath, input.query ?? [], input.virtualHostBucket);
  const sts = stringToSignV2(input.method, headers, String(input.expires), resource);
  const sig = hmacSha1(input.secretKey, sts).toString('base64');
  const query: [string, string][] = [
    ...(input.query ?? []),
    ['AWSAccessKeyId', input.accessKey],
    ['Expires', String(input.expires)],
    ['Signature', sig],
  ];
  return `${input.rawPath}?${query.map(([k, v]) => (v === '' ? uriEncode(k) : `${uriEncode(k)}=${uriEncode(v)}`)).join('&')}`;
}
