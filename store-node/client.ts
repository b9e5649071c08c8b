// HTTP wiring of NeedleStore: what a gateway or the directory uses to reach a store node.
import { AUTH_HEADER, type InternalAuth } from '../common/internal-auth.ts';
import type { GetResult, NeedleRef, NeedleStore, PutResult } from './api.ts';
import { StoreError, type StoreErrorCode } from './errors.ts';
import type { StoreStatus } from './store.ts';

export class StoreClient implements NeedleStore {
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly auth: InternalAuth,
    private readonly timeoutMs = 30_000,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  private async call(
    method: string,
    pathAndQuery: string,
    init: { body?: Buffer; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const res = await fetch(this.base + pathAndQuery, {
      method,
      headers: { [AUTH_HEADER]: this.auth.sign(method, pathAndQuery), ...init.headers },
      body: init.body,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (res.status >= 400) {
      const text = method === 'HEAD' ? '' : await res.text();
      let code: StoreErrorCode = 'InternalError';
      let message = `HTTP ${res.status}`;
      try {
        const j = JSON.parse(text) as { error: StoreErrorCode; message: string };
        code = j.error;
        message = j.message;
      } catch {
        if (res.status === 404) code = 'NoSuchNeedle';
      }
      throw new StoreError(code, message);
    }
    return res;
  }

  private static needlePath(ref: NeedleRef): string {
    return `/volumes/${ref.volumeId}/needles/${ref.needleId}?cookie=${ref.cookie}`;
  }

  async put(ref: NeedleRef, data: Buffer, contentType?: string): Promise<PutResult> {
    const headers: Record<string, string> = contentType ? { 'content-type': contentType } : {};
    const res = await this.call('PUT', StoreClient.needlePath(ref), { body: data, headers });
    return (await res.json()) as PutResult;
  }

  async get(ref: NeedleRef, range?: { start: number; end: number }): Promise<GetResult> {
    const headers: Record<string, string> = range
      ? { range: `bytes=${range.start}-${range.end}` }
      : {};
    const res = await this.call('GET', StoreClient.needlePath(ref), { headers });
    return {
      data: Buffer.from(await res.arrayBuffer()),
      size: Number(res.headers.get('x-ks-size')),
    };
  }

  async head(ref: NeedleRef): Promise<{ size: number }> {
    const res = await this.call('HEAD', StoreClient.needlePath(ref));
    return { size: Number(res.headers.get('x-ks-size')) };
  }

  async delete(ref: NeedleRef): Promise<void> {
    await this.call('DELETE', StoreClient.needlePath(ref));
  }

  async createVolume(volumeId: number): Promise<void> {
    await (await this.call('POST', `/volumes/${volumeId}`)).arrayBuffer();
  }

  async status(): Promise<StoreStatus> {
    return (await (await this.call('GET', '/status')).json()) as StoreStatus;
  }
}
