// S3 request authentication: AWS Signature Version 4 (Authorization header and presigned
// query) and the legacy Version 2 that `aws s3 presign` and s3cmd can still produce.
// Framework-free: the gateway hands in the method, the raw path, the decoded query pairs
// and node's lowercased headers, plus a secret lookup; out comes who signed the request
// and how its body is to be read. The signers at the bottom are the verifier's mirror
// image, for tests and for the benchmark's load generator.
import { timingSafeEqual } from 'node:crypto';
import { S3Error, type S3ErrorCode } from '../error.ts';
import {
  type AuthRequest,
  type AuthResult,
  checkSkew,
  type SecretLookup,
  type StreamingMode,
  streamingMode,
} from './auth-request.ts';
import { verifyV2 } from './sigv2.ts';
import {
  ALGORITHM,
  buildCanonicalRequest,
  canonicalHeaders,
  canonicalQueryString,
  canonicalUri,
  deriveSigningKey,
  EMPTY_SHA256,
  formatAmzDate,
  type Headers,
  headerValue,
  hmac,
  parseAmzDate,
  parseHttpDate,
  SERVICE,
  sha256Hex,
  TERMINATOR,
  UNSIGNED_PAYLOAD,
} from './sigv4-canonical.ts';

const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_PRESIGN_EXPIRES = 604_800; // one week, AWS's limit

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

// A client sends the same header up to its signature for a whole day: what was parsed of
// that prefix is kept (a few, by prefix) and only the signature is new.
const AUTH_PREFIX_CACHE_SIZE = 256;
const SIGNATURE_TOKEN = /^[0-9A-Za-z]+$/;
type ParsedPrefix = Omit<ParsedAuthorizationV4, 'signature'>;
const authPrefixCache = new Map<string, ParsedPrefix>();
// The most recent one, checked first: a string comparison, no slicing or hashing.
let lastPrefix = '';
let lastParsed: ParsedPrefix | undefined;

function withSignature(p: ParsedPrefix, signature: string): ParsedAuthorizationV4 {
  return {
    accessKey: p.accessKey,
    date: p.date,
    region: p.region,
    service: p.service,
    signedHeaders: p.signedHeaders,
    signedHeadersRaw: p.signedHeadersRaw,
    signature,
  };
}

/** Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` in any of the
 *  spacings SDKs send. Throws AuthorizationHeaderMalformed. */
export function parseAuthorizationV4(header: string): ParsedAuthorizationV4 {
  // The cache holds only prefixes whose full parse ended with `Signature=<token>` taken
  // verbatim: any other alphanumeric signature after them parses the same way.
  if (
    lastParsed !== undefined &&
    header.length > lastPrefix.length + 10 &&
    header.startsWith(lastPrefix) &&
    header.startsWith('Signature=', lastPrefix.length)
  ) {
    const signature = header.slice(lastPrefix.length + 10);
    if (SIGNATURE_TOKEN.test(signature)) return withSignature(lastParsed, signature);
  }
  const at = header.lastIndexOf('Signature=');
  if (at > 0) {
    const signature = header.slice(at + 10);
    if (SIGNATURE_TOKEN.test(signature)) {
      const prefix = header.slice(0, at);
      const hit = authPrefixCache.get(prefix);
      if (hit !== undefined) {
        lastPrefix = prefix;
        lastParsed = hit;
        return withSignature(hit, signature);
      }
      const parsed = parseAuthorizationV4Full(header);
      if (parsed.signature === signature) {
        if (authPrefixCache.size >= AUTH_PREFIX_CACHE_SIZE) authPrefixCache.clear();
        const { signature: _, ...rest } = parsed;
        authPrefixCache.set(prefix, rest);
        lastPrefix = prefix;
        lastParsed = rest;
      }
      return parsed;
    }
  }
  return parseAuthorizationV4Full(header);
}

function parseAuthorizationV4Full(header: string): ParsedAuthorizationV4 {
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

function parseCredential(value: string, code: S3ErrorCode): Credential {
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

function parseSignedHeaders(value: string, code: S3ErrorCode): string[] {
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
  code: S3ErrorCode;
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

// S3 refuses x-amz-* headers outside the signature: otherwise anyone replaying a signed
// request could add x-amz-copy-source, x-amz-acl or metadata to it.
function checkAmzHeadersSigned(headers: Headers, covered: Set<string>): void {
  let unsigned: string[] | undefined;
  for (const n in headers) {
    if (n.startsWith('x-amz-') && headers[n] !== undefined && !covered.has(n)) {
      (unsigned ??= []).push(n);
    }
  }
  if (unsigned !== undefined) {
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

export * from './auth-request.ts';
export * from './sign.ts';
export * from './sigv2.ts';
export * from './sigv4-canonical.ts';
