// Virtual-host-style addressing: <bucket>.<domain> in the Host header names the bucket.
import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';
import { signRequest } from './auth/sigv4.ts';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer(tempDir('ks-vhost-'), { domain: 's3.test' });
});
afterAll(async () => {
  await srv?.close();
});

function send(
  method: string,
  host: string,
  rawPath: string,
  body = '',
): Promise<{ status: number; text: string }> {
  const port = Number(new URL(srv.endpoint).port);
  const payloadHash = crypto.createHash('sha256').update(body).digest('hex');
  const signed = signRequest({
    method,
    rawPath,
    headers: { host: `${host}:${port}` },
    accessKey: srv.accessKey,
    secretKey: srv.secretKey,
    payloadHash,
  });
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: rawPath, headers: signed.headers },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('virtual-host style', () => {
  it('addresses the bucket from the Host header, path style still works', async () => {
    expect((await send('PUT', 'photos.s3.test', '/')).status).toBe(200);
    expect((await send('PUT', 'photos.s3.test', '/cats/tom.jpg', 'meow')).status).toBe(200);
    const get = await send('GET', 'photos.s3.test', '/cats/tom.jpg');
    expect(get).toEqual({ status: 200, text: 'meow' });
    const viaPath = await send('GET', '127.0.0.1', '/photos/cats/tom.jpg');
    expect(viaPath).toEqual({ status: 200, text: 'meow' });
    const list = await send('GET', 'photos.s3.test', '/');
    expect(list.text).toContain('<Key>cats/tom.jpg</Key>');
    expect((await send('GET', 'other.s3.test', '/cats/tom.jpg')).status).toBe(404);
  });
});
