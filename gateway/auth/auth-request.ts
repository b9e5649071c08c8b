// What SigV4 and SigV2 verification share: the request as the verifiers see it, their
// result, and the checks both apply (clock skew, payload mode). Its own file so that
// sigv2.ts and sigv4.ts depend on it and not on each other.
import { S3Error } from '../error.ts';
import {
  type Headers,
  STREAMING_SIGNED,
  STREAMING_SIGNED_TRAILER,
  STREAMING_UNSIGNED_TRAILER,
  UNSIGNED_PAYLOAD,
} from './sigv4-canonical.ts';

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

export function checkSkew(when: Date, now: Date, maxSkew: number): void {
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
