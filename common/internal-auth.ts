// Authentication of internal traffic (gateway ↔ directory ↔ store). Every request carries
// `x-ks-auth: <unix seconds>.<hex HMAC-SHA256(key, canonical)>` where key is derived from
// the cluster secret and canonical is
//
//   ts \n METHOD \n path?query \n Content-Length \n x-ks-content-sha256 [\n covered header]…
//
// A token is bound to one method, path and body length, and expires after SKEW_SECONDS.
// Everything it covers is in the request head, so a server verifies it in full before it
// reads a byte of body: nobody without the secret gets a body buffered (issue 12 item 1).
// Where the body is small and says what to do — Raft messages and snapshots, metadata
// calls, admin and heartbeat posts — its SHA-256 travels in x-ks-content-sha256 and the
// server compares it once the body is in. Needle bodies (streamed, up to the needle limit)
// are covered through their CRC32C and replica list, which the store routes list as
// covered headers; needles are write-once, so a replayed token cannot replace one. The
// internal network is trusted for confidentiality.
import crypto from 'node:crypto';

export const AUTH_HEADER = 'x-ks-auth';
/** Hex SHA-256 of a signed body; the token covers it, the server checks the body against it. */
export const DIGEST_HEADER = 'x-ks-content-sha256';
const SKEW_SECONDS = 300;

/** What a token covers besides method and path, as the request head carries it. */
export interface Covered {
  /** Content-Length; absent counts as 0 (undici sends 0 on a POST without a body). */
  contentLength?: number | string | undefined;
  /** The x-ks-content-sha256 header, when the body is signed. */
  digest?: string | undefined;
  /** Values of further headers a route puts under the token, in the route's order. */
  headers?: ReadonlyArray<string | undefined>;
}

export const sha256Hex = (body: string | Buffer): string =>
  crypto.createHash('sha256').update(body).digest('hex');

export class InternalAuth {
  private readonly key: Buffer;
  /** Static bearer token for Prometheus scrapes of /metrics (read-only data). */
  readonly metricsToken: string;

  constructor(secret: string) {
    if (secret.length < 16) throw new Error('cluster secret must be at least 16 characters');
    this.key = crypto.createHmac('sha256', secret).update('kubestorage-internal-v1').digest();
    this.metricsToken = crypto.createHmac('sha256', this.key).update('metrics').digest('hex');
  }

  /** A key for another purpose derived from the cluster secret (never the MAC key itself). */
  derive(purpose: string): Buffer {
    return crypto.createHmac('sha256', this.key).update(`derive:${purpose}`).digest();
  }

  sign(method: string, pathAndQuery: string, now = Date.now(), c: Covered = {}): string {
    const ts = Math.floor(now / 1000);
    return `${ts}.${this.mac(ts, method, pathAndQuery, c)}`;
  }

  /**
   * The headers of a request whose body the token covers: the token over the body's
   * length and digest, and the digest. Send the body with exactly this Content-Length.
   */
  signBody(
    method: string,
    pathAndQuery: string,
    body: string | Buffer,
    now = Date.now(),
  ): Record<string, string> {
    const digest = sha256Hex(body);
    const contentLength = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    return {
      [AUTH_HEADER]: this.sign(method, pathAndQuery, now, { contentLength, digest }),
      [DIGEST_HEADER]: digest,
    };
  }

  verify(
    header: string | undefined,
    method: string,
    pathAndQuery: string,
    now = Date.now(),
    c: Covered = {},
  ): boolean {
    if (!header) return false;
    const dot = header.indexOf('.');
    if (dot <= 0 || header.length - dot - 1 !== 64) return false;
    const tsText = header.slice(0, dot);
    if (!/^\d{1,12}$/.test(tsText)) return false;
    const ts = Number(tsText);
    if (Math.abs(now / 1000 - ts) > SKEW_SECONDS) return false;
    const given = Buffer.from(header.slice(dot + 1), 'hex');
    if (given.length !== 32) return false;
    const want = Buffer.from(this.mac(ts, method, pathAndQuery, c), 'hex');
    return crypto.timingSafeEqual(given, want);
  }

  verifyMetricsBearer(authorization: string | undefined): boolean {
    if (!authorization?.startsWith('Bearer ')) return false;
    const given = Buffer.from(authorization.slice(7));
    const want = Buffer.from(this.metricsToken);
    return given.length === want.length && crypto.timingSafeEqual(given, want);
  }

  private mac(ts: number, method: string, pathAndQuery: string, c: Covered): string {
    // Header values and paths cannot hold a newline, so the fields cannot run into each other.
    let s = `${ts}\n${method.toUpperCase()}\n${pathAndQuery}\n${String(c.contentLength ?? 0)}\n${c.digest ?? ''}`;
    for (const h of c.headers ?? []) s += `\n${h ?? ''}`;
    return crypto.createHmac('sha256', this.key).update(s).digest('hex');
  }
}
