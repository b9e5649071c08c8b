// HTTP wiring of NeedleStore: what a gateway or the directory uses to reach a store node.
// An undici Pool keeps connections alive (several times the requests per second of the
// global fetch on loopback).

import { crc32c } from '@node-rs/crc32';
import { Pool } from 'undici';
import { AUTH_HEADER, type InternalAuth } from '../common/internal-auth.ts';
import {
  CRC_HEADER,
  type GetResult,
  type NeedleRef,
  type NeedleStore,
  type PutResult,
} from './api.ts';
import { StoreError, type StoreErrorCode } from './errors.ts';
import type { StoreStatus } from './store.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export class StoreClient implements NeedleStore {
  private readonly pool: Pool;

  constructor(
    baseUrl: string,
    private readonly auth: InternalAuth,
    timeoutMs = 30_000,
    /** Most connections kept to the node. */
    connections = 256,
  ) {
    this.pool = new Pool(new URL(baseUrl).origin, {
      connections,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connectTimeout: Math.min(timeoutMs, 10_000),
      keepAliveTimeout: 60_000,
    });
  }

  private async call(
    method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE',
    pathAndQuery: string,
    init: { body?: Buffer; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const res = await this.pool.request({
      method,
      path: pathAndQuery,
      headers: { [AUTH_HEADER]: this.auth.sign(method, pathAndQuery), ...init.headers },
      body: init.body,
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode >= 400) {
      let code: StoreErrorCode = 'InternalError';
      let message = `HTTP ${res.statusCode}`;
      try {
        const j = JSON.parse(body.toString()) as { error: StoreErrorCode; message: string };
        code = j.error;
        message = j.message;
      } catch {
        if (res.statusCode === 404) code = 'NoSuchNeedle';
        else if (res.statusCode === 403) code = 'Forbidden';
      }
      throw new StoreError(code, message);
    }
    return { status: res.statusCode, headers: res.headers, body };
  }

  private static needlePath(ref: NeedleRef): string {
    return `/volumes/${ref.volumeId}/needles/${ref.needleId}?cookie=${ref.cookie}`;
  }

  async put(ref: NeedleRef, data: Buffer, contentType?: string): Promise<PutResult> {
    const headers: Record<string, string> = { [CRC_HEADER]: String(crc32c(data)) };
    if (contentType) headers['content-type'] = contentType;
    const res = await this.call('PUT', StoreClient.needlePath(ref), { body: data, headers });
    return JSON.parse(res.body.toString()) as PutResult;
  }

  async get(ref: NeedleRef, range?: { start: number; end: number }): Promise<GetResult> {
    const headers: Record<string, string> = range
      ? { range: `bytes=${range.start}-${range.end}` }
      : {};
    const res = await this.call('GET', StoreClient.needlePath(ref), { headers });
    const sent = res.headers[CRC_HEADER];
    if (sent !== undefined && String(sent) !== String(crc32c(res.body))) {
      throw new StoreError('NeedleCorrupt', `needle ${ref.needleId}: damaged in transit`);
    }
    return { data: res.body, size: Number(res.headers['x-ks-size']) };
  }

  async head(ref: NeedleRef): Promise<{ size: number }> {
    const res = await this.call('HEAD', StoreClient.needlePath(ref));
    return { size: Number(res.headers['x-ks-size']) };
  }

  async delete(ref: NeedleRef): Promise<void> {
    await this.call('DELETE', StoreClient.needlePath(ref));
  }

  async createVolume(volumeId: number): Promise<void> {
    await this.call('POST', `/volumes/${volumeId}`);
  }

  async status(): Promise<StoreStatus> {
    return JSON.parse((await this.call('GET', '/status')).body.toString()) as StoreStatus;
  }

  /** Closes the connections. */
  async close(): Promise<void> {
    await this.pool.close();
  }
}
