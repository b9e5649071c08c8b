// The load's S3 client: SigV4 over keep-alive pools, one per gateway, with the AWS SDK's
// standard-mode retry policy, so failures are counted as an application would see them.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { signRequest } from '../../../gateway/auth/sign.ts';
import { UNSIGNED_PAYLOAD } from '../../../gateway/auth/sigv4-canonical.ts';
import { Prng } from '../../lib/prng.ts';

/**
 * The AWS SDK's standard-mode delay before retry `retry` (1-based): full jitter over
 * 100 ms × 2^retry (the JS SDK v3's DEFAULT_RETRY_DELAY_BASE and formula), so ≤ 200 ms
 * before the 2nd attempt and ≤ 400 ms before the 3rd.
 */
export function backoffMs(retry: number, rand01: number): number {
  return Math.floor(Math.min(20_000, rand01 * 2 ** retry * 100));
}

/** Status codes the SDK's standard mode retries (5xx and throttling). */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 429;
}

export interface Outcome {
  ok: boolean;
  attempts: number;
  ms: number;
  /** Why the last attempt failed. */
  error?: string;
  /** True when a GET answered 200 with other bytes than were written. */
  corrupt?: boolean;
}

export class FaultClient {
  private readonly pools: Pool[];
  private readonly hosts: string[];
  private readonly rng: Prng;

  constructor(
    readonly gateways: readonly string[],
    private readonly keys: { accessKey: string; secretKey: string },
    private readonly o: {
      connections: number;
      attempts: number;
      attemptTimeoutMs: number;
      seed: number;
    },
  ) {
    this.hosts = gateways.map((g) => new URL(g).host);
    this.pools = gateways.map(
      (g) =>
        new Pool(new URL(g).origin, {
          connections: o.connections,
          pipelining: 1,
          keepAliveTimeout: 30_000,
          connectTimeout: o.attemptTimeoutMs,
          headersTimeout: o.attemptTimeoutMs,
          bodyTimeout: o.attemptTimeoutMs,
        }),
    );
    this.rng = new Prng(o.seed ^ 0xbac0ff);
  }

  private async attempt(
    gw: number,
    method: 'GET' | 'PUT',
    rawPath: string,
    body: Buffer | undefined,
  ): Promise<{ status: number; body?: Buffer; text?: string }> {
    const headers: Record<string, string> = { host: this.hosts[gw]! };
    if (body) headers['content-length'] = String(body.length);
    const signed = signRequest({
      method,
      rawPath,
      headers,
      accessKey: this.keys.accessKey,
      secretKey: this.keys.secretKey,
      payloadHash: UNSIGNED_PAYLOAD,
    }).headers;
    const res = await this.pools[gw]!.request({
      method,
      path: rawPath,
      headers: signed,
      body,
      signal: AbortSignal.timeout(this.o.attemptTimeoutMs),
    });
    if (res.statusCode !== 200) {
      return { status: res.statusCode, text: (await res.body.text()).slice(0, 200) };
    }
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    return { status: 200, body: Buffer.concat(chunks) };
  }

  /**
   * One S3 call with retries on 5xx, 429 and transport errors. A GET passes only with
   * exactly `expect`'s bytes; other answers (404, 403, wrong bytes) are final, as in the SDK.
   */
  async call(
    gw: number,
    method: 'GET' | 'PUT',
    key: string,
    data: { body?: Buffer; expect?: Buffer },
  ): Promise<Outcome> {
    const t0 = performance.now();
    const rawPath = `/${key}`;
    let error = '';
    for (let a = 1; a <= this.o.attempts; a++) {
      if (a > 1) await sleep(backoffMs(a - 1, this.rng.u32() / 0x1_0000_0000));
      try {
        const r = await this.attempt(gw, method, rawPath, data.body);
        if (r.status === 200) {
          const ms = performance.now() - t0;
          if (method === 'GET' && data.expect && !data.expect.equals(r.body!)) {
            return { ok: false, attempts: a, ms, corrupt: true, error: `GET ${key}: wrong bytes` };
          }
          return { ok: true, attempts: a, ms };
        }
        error = `${method} ${key}: HTTP ${r.status} ${r.text ?? ''}`;
        if (!retryableStatus(r.status)) {
          return { ok: false, attempts: a, ms: performance.now() - t0, error };
        }
      } catch (e) {
        error = `${method} ${key}: ${(e as Error)?.message ?? String(e)}`;
      }
    }
    return { ok: false, attempts: this.o.attempts, ms: performance.now() - t0, error };
  }

  async createBucket(bucket: string): Promise<void> {
    for (let gw = 0; gw < this.pools.length; gw++) {
      const headers = signRequest({
        method: 'PUT',
        rawPath: `/${bucket}`,
        headers: { host: this.hosts[gw]! },
        accessKey: this.keys.accessKey,
        secretKey: this.keys.secretKey,
        payloadHash: UNSIGNED_PAYLOAD,
      }).headers;
      const res = await this.pools[gw]!.request({ method: 'PUT', path: `/${bucket}`, headers });
      const text = await res.body.text();
      if (res.statusCode !== 200 && !/BucketAlreadyOwnedByYou/.test(text)) {
        throw new Error(`create bucket ${bucket}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.close()));
  }
}
