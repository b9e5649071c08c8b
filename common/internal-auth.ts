// Authentication of internal traffic (gateway ↔ directory ↔ store). Every request carries
// `x-ks-auth: <unix seconds>.<hex HMAC-SHA256(key, ts \n METHOD \n path?query)>` where key
// is derived from the cluster secret. A token is bound to one method and path and expires
// after SKEW_SECONDS. Where the body is small and says what to do — Raft messages and
// snapshots, metadata calls, admin and heartbeat posts — it is in the MAC too (`body`), so
// a header seen on the wire cannot carry another body within its window. Needle bodies
// are not signed (streamed, up to 8 MiB; the needle CRC covers integrity), and the
// internal network is trusted for confidentiality.
import crypto from 'node:crypto';

export const AUTH_HEADER = 'x-ks-auth';
const SKEW_SECONDS = 300;

export class InternalAuth {
  private readonly key: Buffer;
  /** Static bearer token for Prometheus scrapes of /metrics (read-only data). */
  readonly metricsToken: string;

  constructor(secret: string) {
    if (secret.length < 16) throw new Error('cluster secret must be at least 16 characters');
    this.key = crypto.createHmac('sha256', secret).update('kubestorage-internal-v1').digest();
    this.metricsToken = crypto.createHmac('sha256', this.key).update('metrics').digest('hex');
  }

  sign(method: string, pathAndQuery: string, now = Date.now(), body?: string | Buffer): string {
    const ts = Math.floor(now / 1000);
    return `${ts}.${this.mac(ts, method, pathAndQuery, body)}`;
  }

  /** The token's form and time alone: a cheap check before reading a body to verify it with. */
  fresh(header: string | undefined, now = Date.now()): header is string {
    if (!header) return false;
    const dot = header.indexOf('.');
    if (dot <= 0 || header.length - dot - 1 !== 64) return false;
    const tsText = header.slice(0, dot);
    if (!/^\d{1,12}$/.test(tsText)) return false;
    return Math.abs(now / 1000 - Number(tsText)) <= SKEW_SECONDS;
  }

  verify(
    header: string | undefined,
    method: string,
    pathAndQuery: string,
    now = Date.now(),
    body?: string | Buffer,
  ): boolean {
    if (!this.fresh(header, now)) return false;
    const dot = header.indexOf('.');
    const ts = Number(header.slice(0, dot));
    const given = Buffer.from(header.slice(dot + 1), 'hex');
    if (given.length !== 32) return false;
    const want = Buffer.from(this.mac(ts, method, pathAndQuery, body), 'hex');
    return crypto.timingSafeEqual(given, want);
  }

  verifyMetricsBearer(authorization: string | undefined): boolean {
    if (!authorization?.startsWith('Bearer ')) return false;
    const given = Buffer.from(authorization.slice(7));
    const want = Buffer.from(this.metricsToken);
    return given.length === want.length && crypto.timingSafeEqual(given, want);
  }

  private mac(ts: number, method: string, pathAndQuery: string, body?: string | Buffer): string {
    const h = crypto
      .createHmac('sha256', this.key)
      .update(`${ts}\n${method.toUpperCase()}\n${pathAndQuery}`);
    // A path cannot hold a newline, so no path-only token equals one with a body.
    if (body !== undefined) h.update('\n').update(body);
    return h.digest('hex');
  }
}
