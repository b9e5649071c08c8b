// One error type for the S3 surface: it carries the S3 code, the HTTP status and the
// extra fields AWS puts in its <Error> document, so handlers throw and one place renders.
import type { MetadataError } from '../directory/model/api.ts';

/** Every error code the gateway sends, with its HTTP status. */
const STATUS = {
  AccessDenied: 403,
  AccessForbidden: 403,
  SignatureDoesNotMatch: 403,
  InvalidAccessKeyId: 403,
  RequestTimeTooSkewed: 403,
  InvalidObjectState: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  MissingSecurityHeader: 400,
  BadRequest: 400,
  InvalidArgument: 400,
  InvalidRequest: 400,
  InvalidURI: 400,
  BadDigest: 400,
  InvalidDigest: 400,
  XAmzContentSHA256Mismatch: 400,
  IncompleteBody: 400,
  MalformedXML: 400,
  MetadataTooLarge: 400,
  InvalidBucketName: 400,
  InvalidLocationConstraint: 400,
  KeyTooLongError: 400,
  EntityTooSmall: 400,
  EntityTooLarge: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  ExpiredToken: 400,
  RequestTimeout: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NoSuchVersion: 404,
  MethodNotAllowed: 405,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  MissingContentLength: 411,
  PreconditionFailed: 412,
  NotModified: 304,
  InvalidRange: 416,
  InternalError: 500,
  NotImplemented: 501,
  ServiceUnavailable: 503,
  SlowDown: 503,
  // The admin API's own codes (admin.ts).
  NoSuchUser: 404,
  UserAlreadyExists: 409,
  UserHasBuckets: 409,
  KeyAlreadyExists: 409,
} as const satisfies Record<string, number>;

export type S3ErrorCode = keyof typeof STATUS;

// aws-cli crashes on an empty <Message/>, so every code has a fallback text (AWS's wording).
const DEFAULT_MESSAGE: Record<S3ErrorCode, string> = {
  AccessDenied: 'Access Denied',
  AccessForbidden: 'CORSResponse: This CORS request is not allowed.',
  SignatureDoesNotMatch:
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  InvalidAccessKeyId: 'The AWS Access Key Id you provided does not exist in our records.',
  RequestTimeTooSkewed:
    'The difference between the request time and the current time is too large.',
  InvalidObjectState: 'The operation is not valid for the current state of the object.',
  AuthorizationHeaderMalformed: 'The authorization header is malformed.',
  AuthorizationQueryParametersError: 'Error parsing the X-Amz-Credential parameter.',
  MissingSecurityHeader: 'Your request is missing a required header.',
  BadRequest: 'Bad Request',
  InvalidArgument: 'Invalid Argument',
  InvalidRequest: 'Invalid Request',
  InvalidURI: 'Could not parse the specified URI.',
  BadDigest: 'The Content-MD5 you specified did not match what we received.',
  InvalidDigest: 'The Content-MD5 you specified is not valid.',
  XAmzContentSHA256Mismatch:
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
  IncompleteBody:
    'You did not provide the number of bytes specified by the Content-Length HTTP header.',
  MalformedXML:
    'The XML you provided was not well-formed or did not validate against our published schema.',
  MetadataTooLarge: 'Your metadata headers exceed the maximum allowed metadata size.',
  InvalidBucketName: 'The specified bucket is not valid.',
  InvalidLocationConstraint: 'The specified location-constraint is not valid.',
  KeyTooLongError: 'Your key is too long.',
  EntityTooSmall: 'Your proposed upload is smaller than the minimum allowed object size.',
  EntityTooLarge: 'Your proposed upload exceeds the maximum allowed object size.',
  InvalidPart:
    "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.",
  InvalidPartOrder:
    'The list of parts was not in ascending order. Parts list must be specified in order by part number.',
  ExpiredToken: 'The provided token has expired.',
  RequestTimeout:
    'Your socket connection to the server was not read from or written to within the timeout period.',
  NoSuchBucket: 'The specified bucket does not exist',
  NoSuchKey: 'The specified key does not exist.',
  NoSuchUpload:
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  NoSuchVersion: 'The specified version does not exist.',
  MethodNotAllowed: 'The specified method is not allowed against this resource.',
  BucketAlreadyExists:
    'The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.',
  BucketAlreadyOwnedByYou:
    'Your previous request to create the named bucket succeeded and you already own it.',
  BucketNotEmpty: 'The bucket you tried to delete is not empty',
  MissingContentLength: 'You must provide the Content-Length HTTP header.',
  PreconditionFailed: 'At least one of the pre-conditions you specified did not hold',
  NotModified: 'Not Modified',
  InvalidRange: 'The requested range is not satisfiable',
  InternalError: 'We encountered an internal error. Please try again.',
  NotImplemented: 'A header you provided implies functionality that is not implemented.',
  ServiceUnavailable: 'Please reduce your request rate.',
  SlowDown: 'Please reduce your request rate.',
  NoSuchUser: 'The specified user does not exist.',
  UserAlreadyExists: 'The specified user already exists.',
  UserHasBuckets: 'The user still owns buckets.',
  KeyAlreadyExists: 'The access key already exists.',
};

/** HTTP status of a known S3 error code; unknown codes are server faults until proven otherwise. */
export function s3Status(code: string): number {
  return Object.hasOwn(STATUS, code) ? STATUS[code as S3ErrorCode] : 500;
}

/**
 * What each directory refusal is on the S3 surface. A table over MetadataError's closed
 * list, so a new directory code does not compile until it is given an S3 meaning.
 */
const FROM_METADATA: Record<MetadataError['code'], S3ErrorCode> = {
  BucketAlreadyExists: 'BucketAlreadyExists',
  BucketAlreadyOwnedByYou: 'BucketAlreadyOwnedByYou',
  BucketNotEmpty: 'BucketNotEmpty',
  NoSuchBucket: 'NoSuchBucket',
  NoSuchUpload: 'NoSuchUpload',
  InvalidPart: 'InvalidPart',
  PreconditionFailed: 'PreconditionFailed',
  // The bucket changed owner after this gateway's (cached) access check passed.
  BucketOwnerChanged: 'AccessDenied',
  NoSuchUser: 'NoSuchUser',
  UserExists: 'UserAlreadyExists',
  KeyExists: 'KeyAlreadyExists',
  Unavailable: 'ServiceUnavailable',
};

/**
 * A directory refusal as the S3 error it stands for. The code may come off the wire from a
 * directory of another build: one this build does not know is a server fault, not a 409.
 */
export function fromMetadataError(e: MetadataError): S3Error {
  const code: S3ErrorCode | undefined = Object.hasOwn(FROM_METADATA, e.code)
    ? FROM_METADATA[e.code]
    : undefined;
  if (code === undefined) return new S3Error('InternalError', DEFAULT_MESSAGE.InternalError);
  // The directory's message names its internals (keys, upload ids): AWS's wording instead.
  return new S3Error(code, DEFAULT_MESSAGE[code]);
}

export interface S3ErrorOptions {
  status?: number;
  resource?: string;
  /** Extra <Name>value</Name> fields, e.g. Key, BucketName, StringToSign. */
  extra?: Record<string, string>;
  /** Extra response headers, e.g. content-range on InvalidRange. */
  headers?: Record<string, string>;
}

export class S3Error extends Error {
  readonly code: S3ErrorCode;
  readonly status: number;
  /** Settable: the gateway fills in the request's resource when the thrower did not. */
  resource: string | undefined;
  readonly extra: Record<string, string>;
  readonly headers: Record<string, string>;

  constructor(code: S3ErrorCode, message: string, opts: S3ErrorOptions = {}) {
    const text = message.trim() === '' ? (DEFAULT_MESSAGE[code] ?? code) : message;
    super(text);
    this.name = 'S3Error';
    this.code = code;
    this.status = opts.status ?? s3Status(code);
    this.resource = opts.resource;
    this.extra = opts.extra ?? {};
    this.headers = opts.headers ?? {};
  }

  /** The S3 <Error> document. Callers send no body for 304 and HEAD, as S3 does. */
  toXML(requestId: string, hostId?: string): string {
    let xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEscape(this.code)}</Code><Message>${xmlEscape(this.message)}</Message>`;
    for (const [name, value] of Object.entries(this.extra)) {
      // A field name is markup, not data: refuse to emit anything that is not an XML name.
      if (!XML_NAME.test(name)) continue;
      xml += `<${name}>${xmlEscape(value)}</${name}>`;
    }
    if (this.resource !== undefined) xml += `<Resource>${xmlEscape(this.resource)}</Resource>`;
    xml += `<RequestId>${xmlEscape(requestId)}</RequestId>`;
    if (hostId !== undefined) xml += `<HostId>${xmlEscape(hostId)}</HostId>`;
    return `${xml}</Error>`;
  }
}

const XML_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

// Characters XML 1.0 cannot carry even as references (C0 controls but tab/LF/CR, lone
// surrogates, U+FFFE/U+FFFF); object keys may contain them, so they become U+FFFD.
function xmlChars(s: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let bad: boolean;
    if (c < 0x20) bad = c !== 0x09 && c !== 0x0a && c !== 0x0d;
    else if (c < 0xd800) bad = false;
    else if (c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++; // a valid pair
        bad = false;
      } else bad = true;
    } else bad = c <= 0xdfff || c === 0xfffe || c === 0xffff;
    if (bad) {
      out += `${s.slice(from, i)}\uFFFD`;
      from = i + 1;
    }
  }
  return from === 0 ? s : out + s.slice(from);
}

const XML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\r': '&#13;',
};

export function xmlEscape(s: string): string {
  return xmlChars(s).replace(/[&<>"'\r]/g, (c) => XML_ESCAPES[c]!);
}
