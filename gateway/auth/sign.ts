import { canonicalResourceV2, hmacSha1, stringToSignV2 } from './sigv2.ts';
import {
  ALGORITHM,
  buildCanonicalRequest,
  canonicalHeaders,
  canonicalQueryString,
  canonicalUri,
  deriveSigningKey,
  formatAmzDate,
  hmac,
  SERVICE,
  sha256Hex,
  TERMINATOR,
  UNSIGNED_PAYLOAD,
  uriEncode,
} from './sigv4-canonical.ts';

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

/** Presigning takes what signing takes, except the payload hash (always UNSIGNED-PAYLOAD). */
export type PresignV4Input = Omit<SignV4Input, 'payloadHash'> & {
  /** Seconds, 1..604800. */
  expiresIn: number;
};

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
