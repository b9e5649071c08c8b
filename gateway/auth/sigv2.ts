// AWS Signature Version 2 (HMAC-SHA1): header and presigned-query verification, for the
// clients that still produce it (aws-cli v1 `s3 presign`, s3cmd --signature-v2).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error } from '../error.ts';
import {
  type AuthRequest,
  type AuthResult,
  checkSkew,
  type SecretLookup,
  streamingMode,
} from './auth-request.ts';
import {
  canonicalUri,
  formatAmzDate,
  type Headers,
  headerValue,
  parseHttpDate,
  UNSIGNED_PAYLOAD,
  wireBytes,
} from './sigv4-canonical.ts';

// ---------------------------------------------------------------------------------------
// SigV2 (HMAC-SHA1), header and query forms.

const MAX_PRESIGN_EXPIRES_MS = 604_800_000;

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

export function hmacSha1(key: string, data: string): Buffer {
  return createHmac('sha1', key).update(wireBytes(data)).digest();
}

export async function verifyV2(
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
    // SigV2 URLs carry no issue time: bound how far ahead they may expire, as SigV4's
    // X-Amz-Expires is (a week), so a leaked URL does not work for years.
    if (when.getTime() - now.getTime() > MAX_PRESIGN_EXPIRES_MS) {
      throw new S3Error(
        'AuthorizationQueryParametersError',
        'Expires must be less than a week (604800 seconds) from now.',
        { extra: { Expires: when.toISOString(), ServerTime: now.toISOString() } },
      );
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
