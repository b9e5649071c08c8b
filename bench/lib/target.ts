// One benchmark target: an S3 endpoint (SigV4, cached signing key) or a plain HTTP file
// server (PUT/GET URL/bucket/key, no auth: nginx WebDAV), over keep-alive undici connections.
import { Pool } from 'undici';
import { signRequest } from '../../gateway/auth/sign.ts';
import { UNSIGNED_PAYLOAD } from '../../gateway/auth/sigv4-canonical.ts';

export type Mode = 's3' | 'http';

export interface TargetOptions {
  endpoint: string;
  mode: Mode;
  connections: number;
  accessKey?: string;
  secretKey?: string;
  region?: string;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export function isLoopback(endpoint: string): boolean {
  const h = new URL(endpoint).hostname;
  return LOOPBACK.has(h) || /^127\./.test(h);
}

export class Target {
  readonly pool: Pool;
  private readonly host: string;
  private readonly prefix: string;

  constructor(private readonly o: TargetOptions) {
    const u = new URL(o.endpoint);
    this.host = u.host;
    this.prefix = u.pathname.replace(/\/+$/, '');
    if (o.mode === 's3' && !(o.accessKey && o.secretKey)) {
      throw new Error('s3 mode needs --access-key and --secret-key');
    }
    this.pool = new Pool(u.origin, {
      connections: o.connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      connectTimeout: 30_000,
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
  }

  private headers(method: string, rawPath: string, body?: Buffer): Record<string, string> {
    const headers: Record<string, string> = { host: this.host };
    if (body) headers['content-length'] = String(body.length);
    if (this.o.mode === 'http') return headers;
    return signRequest({
      method,
      rawPath,
      headers,
      accessKey: this.o.accessKey!,
      secretKey: this.o.secretKey!,
      region: this.o.region,
      payloadHash: UNSIGNED_PAYLOAD,
    }).headers;
  }

  /** Sends the request; resolves to the body length; throws on a status ≥ 300. */
  async request(method: 'GET' | 'PUT', key: string, body?: Buffer): Promise<number> {
    const rawPath = `${this.prefix}/${key}`;
    const res = await this.pool.request({
      method,
      path: rawPath,
      headers: this.headers(method, rawPath, body),
      body,
    });
    if (res.statusCode >= 300) {
      const text = (await res.body.text()).slice(0, 200);
      throw new Error(`${method} ${rawPath}: HTTP ${res.statusCode} ${text}`);
    }
    let n = 0;
    for await (const c of res.body) n += (c as Buffer).length;
    return n;
  }

  /** Creates the bucket (S3); for plain HTTP the first PUT creates directories. */
  async createBucket(bucket: string): Promise<void> {
    if (this.o.mode === 'http') return;
    try {
      const rawPath = `${this.prefix}/${bucket}`;
      const res = await this.pool.request({
        method: 'PUT',
        path: rawPath,
        headers: this.headers('PUT', rawPath),
      });
      const text = await res.body.text();
      if (res.statusCode >= 300 && !/BucketAlreadyOwnedByYou/.test(text)) {
        throw new Error(`create bucket: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
      }
    } catch (e) {
      throw new Error(`create bucket ${bucket}: ${(e as Error).message}`);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
