// What every S3 handler receives: the parsed request, who sent it, and the services.

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Logger } from '../common/log.ts';
import type { DataPath } from '../data-path/api.ts';
import type { MetadataStore } from '../directory/model/api.ts';
import type { GuardedWrite } from '../directory/model/methods.ts';
import { S3Error } from './error.ts';
import type { LimitSettings, UploadLimit } from './limits.ts';

/** The gateway's settings, with the limits on what clients may hold (limits.ts). */
export interface GatewayConfig extends LimitSettings {
  region: string;
  /** Virtual-host style: requests to <bucket>.<domain> address that bucket. */
  domain?: string;
  /** Largest single PUT / part (S3: 5 GiB). */
  maxObjectSize: number;
}

export interface Services {
  meta: MetadataStore;
  /** Object bytes, behind the seam the object cache plugs into (data-path/api.ts). */
  data: DataPath;
  config: GatewayConfig;
  log: Logger;
  /** The cap on bodies received at once; createApp makes one per gateway (limits.ts). */
  uploads?: UploadLimit;
  /** Prometheus text for GET /_ks/metrics (the cache levels, issue 14). */
  metrics?: () => Promise<string>;
}

/**
 * Writes into a bucket: a handler makes them only through a BucketRequest (access.ts).
 * The guarded ones are declared in directory/model/methods.ts; putObjectStored (the
 * store-then-commit write the gateway itself wraps) is kept from handlers as well.
 */
export type BucketWrite = GuardedWrite | 'putObjectStored';

/**
 * The services as a handler sees them: the metadata store without its bucket writes, which
 * a bucket handler gets back in a form that requires the commit-time owner guard.
 */
export interface HandlerServices extends Omit<Services, 'meta'> {
  meta: Omit<MetadataStore, BucketWrite>;
}

export interface S3Request {
  services: HandlerServices;
  requestId: string;
  method: string;
  /** Decoded bucket and key ('' when absent). */
  bucket: string;
  key: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The raw node request: its body is read by the handler (after auth decides how). */
  incoming: IncomingMessage;
  /** The authenticated user id, or null for an anonymous request. */
  userId: string | null;
  /**
   * Decoded request body (aws-chunked already removed). Signed chunks are checked at their
   * end, so the bytes are authenticated only once the body has been read without an error.
   */
  body: () => AsyncIterable<Buffer>;
  /** Verifies trailing checksums after the body was consumed (streaming uploads). */
  trailers: () => Promise<Record<string, string>>;
  /** SHA-256 the client declared for the payload, when it is a real hash. */
  declaredSha256: string | null;
}

/** What a service-level handler sees (router access 'none'): no bucket or key to act on. */
export type ServiceRequest = Omit<S3Request, 'bucket' | 'key'>;

export function header(req: S3Request, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** Reads the whole (small) body, e.g. an XML document, with a hard size cap. */
export async function readSmallBody(req: S3Request, max = 1024 * 1024): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const p of req.body()) {
    n += p.length;
    if (n > max) throw new S3Error('EntityTooLarge', `Request body exceeds ${max} bytes.`);
    parts.push(p);
  }
  return Buffer.concat(parts, n);
}

/** A non-negative integer query parameter, capped at `max` (S3 clamps, not rejects). */
export function intParam(req: S3Request, name: string, def: number, max: number): number {
  const raw = req.query.get(name);
  if (raw === null) return def;
  if (!/^\d+$/.test(raw)) {
    throw new S3Error(
      'InvalidArgument',
      `Provided ${name} not an integer or within integer range`,
      {
        extra: { ArgumentName: name, ArgumentValue: raw },
      },
    );
  }
  return Math.min(Number(raw), max);
}
