// When the metadata service cannot be reached (every replica down, past MetadataClient's
// deadline) the gateway must answer 503 ServiceUnavailable, which S3 clients retry, not a
// 500 InternalError.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InternalAuth } from '../common/internal-auth.ts';
import type { MetadataStore } from '../directory/model/api.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';
import { signRequest } from './auth/sign.ts';

let srv: TestServer;
let remote: MetadataClient;

beforeAll(async () => {
  // A port with nothing listening: every attempt is refused.
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  remote = new MetadataClient(
    [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}`],
    new InternalAuth('meta-unavailable-test-secret'),
    { deadlineMs: 200 },
  );
  // Keys and buckets come from the local store so the request gets past authentication;
  // object reads go to the unreachable service.
  srv = await startTestServer(tempDir('ks-unavail-'), {
    wrapMeta: (m: MetadataStore) =>
      new Proxy(m, {
        get(target, prop) {
          if (prop === 'getObject' || prop === 'listObjectSummaries') {
            const v = Reflect.get(remote, prop) as (...a: unknown[]) => unknown;
            return v.bind(remote);
          }
          const v = Reflect.get(target, prop);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }),
  });
  await srv.meta.createBucket({ name: 'b', owner: 'root', createdAt: 1, region: 'us-east-1' });
});

afterAll(async () => {
  await remote?.close();
  await srv?.close();
});

async function signedGet(rawPath: string): Promise<Response> {
  const url = new URL(srv.endpoint);
  const { headers } = signRequest({
    method: 'GET',
    rawPath,
    headers: { host: url.host },
    accessKey: srv.accessKey,
    secretKey: srv.secretKey,
  });
  return fetch(`${srv.endpoint}${rawPath}`, { headers });
}

describe('metadata service unavailable', () => {
  it('answers 503 ServiceUnavailable with the S3 error document', async () => {
    for (const path of ['/b/some-key', '/b']) {
      const res = await signedGet(path);
      const body = await res.text();
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toBe('application/xml');
      const requestId = res.headers.get('x-amz-request-id');
      expect(requestId).toBeTruthy();
      expect(body).toContain('<Code>ServiceUnavailable</Code>');
      expect(body).toContain('<Message>Please reduce your request rate.</Message>');
      expect(body).toContain(`<Resource>${path}</Resource>`);
      expect(body).toContain(`<RequestId>${requestId}</RequestId>`);
    }
  });
});
