// What one gateway process lets clients hold: bodies being received at once, and how long a
// connection may take over its headers, its whole request, or a silence.
//
// The cap on object bodies being received at once, per gateway process. A request holds at
// most one chunk of its body in memory (data-path/object-data.ts cuts bodies into needles
// of gateway.chunkSize; aws-chunked streams through, gateway/auth/chunked.ts), so the
// bodies held in memory stay under maxConcurrentUploads × chunkSize. One upload past the
// cap is answered 503 SlowDown before a byte of its body is read: S3 clients back off and
// retry it, and a flood of stalled uploads cannot pin memory.
import type { ServerOptions } from 'node:http';
import { DEFAULT_CONFIG } from '../common/config.ts';
import { S3Error } from './error.ts';

const DEFAULTS = DEFAULT_CONFIG.gateway;

/** The gateway settings read here (part of GatewayConfig); unset: the default config's. */
export interface LimitSettings {
  /** Object bodies received at once. */
  maxConcurrentUploads?: number;
  /** The HTTP server's timeouts (see serverLimits). */
  headersTimeoutMs?: number;
  idleTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export class UploadLimit {
  private active = 0;

  /** `max` ≤ 0: no cap. */
  constructor(readonly max: number) {}

  /** Uploads receiving their body now. */
  get inUse(): number {
    return this.active;
  }

  /** All slots taken: the next acquire() would throw. */
  get full(): boolean {
    return this.max > 0 && this.active >= this.max;
  }

  /** Takes a slot, or throws SlowDown when all are taken; pair with exactly one release(). */
  acquire(): void {
    if (this.max > 0 && this.active >= this.max) {
      throw new S3Error('SlowDown', 'Please reduce your request rate.');
    }
    this.active++;
  }

  release(): void {
    this.active--;
  }
}

/** The cap a gateway with this configuration applies. */
export function uploadLimitFor(config: LimitSettings): UploadLimit {
  return new UploadLimit(config.maxConcurrentUploads ?? DEFAULTS.maxConcurrentUploads);
}

/**
 * The node http.Server options bounding how long a client may hold a connection, and the
 * idle timeout to set as `server.timeout`. Node itself enforces them, without timers of
 * ours: the headers and whole-request timeouts (each answered 408, then the connection is
 * closed) by one sweep over the connections every `connectionsCheckingInterval`; the idle
 * timeout by the socket timer node keeps anyway (it destroys a socket that moved no byte
 * that long, so an upload stalled mid-body fails and frees its slot and its needles).
 */
export function serverLimits(config: LimitSettings): {
  options: Pick<ServerOptions, 'headersTimeout' | 'requestTimeout' | 'connectionsCheckingInterval'>;
  idleTimeoutMs: number;
} {
  const request = config.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
  let headers = config.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs;
  // Node refuses a headers timeout past the request timeout; the request's bounds both.
  if (request > 0 && (headers <= 0 || headers > request)) headers = request;
  const shortest = Math.min(...[headers, request].filter((t) => t > 0), 120_000);
  return {
    options: {
      headersTimeout: headers,
      requestTimeout: request,
      // The sweep's period is how late a timeout may fire: a quarter of the shortest.
      connectionsCheckingInterval: Math.max(10, Math.min(30_000, Math.ceil(shortest / 4))),
    },
    idleTimeoutMs: config.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
  };
}
