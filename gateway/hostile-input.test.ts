// Input a hostile but authenticated (or merely well-informed) client can send, from the
// hardening review (issue 12, items 4-6): each case was accepted before.

import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';
import { presignUrlV2, signRequest } from './auth/sign.ts';

let srv: TestServer;
let host: string;
beforeAll(async () => {
  srv = await startTestServer(tempDir('ks-hostile-'));
  host = new URL(srv.endpoint).host;
  expect((await send('PUT', '/hostile', '')).status).toBe(200);
});
afterAll(async () => {
  await srv?.close();
});

interface Answer {
  status: number;
  text: string;
  headers: http.IncomingHttpHeaders;
}

function send(
  method: string,
  rawPath: string,
  body: string,
  opts: { payloadHash?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const signed = signRequest({
    method,
    rawPath,
    headers: { host, ...opts.headers },
    accessKey: srv.accessKey,
    secretKey: srv.secretKey,
    payloadHash: opts.payloadHash ?? createHash('sha256').update(body).digest('hex'),
  });
  return request(method, rawPath, body, signed.headers);
}

function request(
  method: string,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const u = new URL(srv.endpoint);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('hostile input', () => {
  it('checks the body against an upper-case x-amz-content-sha256 (it was not checked)', async () => {
    const signedFor = createHash('sha256').update('the body that was signed').digest('hex');
    const bad = await send('PUT', '/hostile/upper', 'another body', {
      payloadHash: signedFor.toUpperCase(),
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('<Code>XAmzContentSHA256Mismatch</Code>');
    expect((await send('GET', '/hostile/upper', '')).status).toBe(404);
    const body = 'upper-case hex of the right hash';
    const hash = createHash('sha256').update(body).digest('hex').toUpperCase();
    expect((await send('PUT', '/hostile/upper', body, { payloadHash: hash })).status).toBe(200);
    expect((await send('GET', '/hostile/upper', '')).text).toBe(body);
  });

  it('refuses a SigV2 presigned URL that expires more than a week ahead', async () => {
    const url = (secondsAhead: number) =>
      presignUrlV2({
        method: 'GET',
        rawPath: '/hostile/upper',
        headers: {},
        accessKey: srv.accessKey,
        secretKey: srv.secretKey,
        expires: Math.floor(Date.now() / 1000) + secondsAhead,
      });
    expect((await request('GET', url(3600), '')).status).toBe(200);
    expect((await request('GET', url(6 * 86_400), '')).status).toBe(200);
    const year3000 = await request(
      'GET',
      url(Math.floor(Date.UTC(3000, 0) / 1000 - Date.now() / 1000)),
      '',
    );
    expect(year3000.status).toBe(400);
    expect(year3000.text).toContain('<Code>AuthorizationQueryParametersError</Code>');
    expect((await request('GET', url(8 * 86_400), '')).status).toBe(400);
  });

  it('accepts only a region name as CreateBucket LocationConstraint', async () => {
    const config = (c: string) =>
      `<CreateBucketConfiguration><LocationConstraint>${c}</LocationConstraint></CreateBucketConfiguration>`;
    for (const bad of ['eu-west-1&#13;&#10;x-injected: 1', 'a'.repeat(70), 'eu west', '-eu']) {
      const r = await send('PUT', '/hostile-region', config(bad));
      expect(r.status, bad).toBe(400);
      expect(r.text).toContain('<Code>InvalidLocationConstraint</Code>');
    }
    // Nothing was created by the refused requests; a valid name still works, and HEAD is fine.
    expect((await send('HEAD', '/hostile-region', '')).status).toBe(404);
    expect((await send('PUT', '/hostile-region', config('eu-west-1'))).status).toBe(200);
    const head = await send('HEAD', '/hostile-region', '');
    expect(head.status).toBe(200);
    expect(head.headers['x-amz-bucket-region']).toBe('eu-west-1');
  });

  it('answers HeadBucket without a region stored before LocationConstraint was checked', async () => {
    const owner = (await srv.meta.getBucket('hostile'))!.owner;
    const stored = {
      'hostile-crlf': 'eu-west-1\r\nx-injected: 1',
      'hostile-huge': 'a'.repeat(60_000),
      'hostile-nul': 'eu\0west',
    };
    for (const [name, region] of Object.entries(stored)) {
      // As an older gateway wrote them: straight into the metadata, unchecked.
      await srv.meta.createBucket({ name, owner, createdAt: Date.now(), region });
      const head = await send('HEAD', `/${name}`, '');
      expect(head.status, name).toBe(200);
      expect(head.headers['x-amz-bucket-region'], name).toBeUndefined();
      expect(head.headers['x-injected'], name).toBeUndefined();
      // The bucket still works.
      expect((await send('PUT', `/${name}/k`, 'v')).status, name).toBe(200);
      expect((await send('GET', `/${name}/k`, '')).text, name).toBe('v');
    }
  });
});
