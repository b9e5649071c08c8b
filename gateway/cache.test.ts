// The cache as the S3 API sees it (issue 14), on the embedded wiring and — in the
// integration-raft project — over a 3-replica Raft directory: an object read often enough
// climbs to store level and then to the gateway, whose later reads touch neither the
// metadata nor the store; an overwrite or delete is seen by the very next read.
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Client } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';
import { until } from '../test/kit/until.ts';

const B = 'cached';

async function text(s3: S3Client, key: string): Promise<string | null> {
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: B, Key: key }));
    return await r.Body!.transformToString();
  } catch (e) {
    if ((e as { name?: string }).name === 'NoSuchKey') return null;
    throw e;
  }
}

async function metric(srv: TestServer, name: string, level: string): Promise<number> {
  const headers = { authorization: `Bearer ${srv.metricsToken}` };
  const body = await (await fetch(`${srv.endpoint}/_ks/metrics`, { headers })).text();
  const m = new RegExp(`^${name}\\{level="${level}"\\} (\\S+)$`, 'm').exec(body);
  return m ? Number(m[1]) : 0;
}

describe('the gateway cache through S3', () => {
  let srv: TestServer;
  let s3: S3Client;
  beforeAll(async () => {
    srv = await startTestServer(tempDir('ks-gw-cache-'), {
      cache: { replicateThreshold: 5, cacheThreshold: 10, reportMs: 50, leaseMs: 300 },
    });
    s3 = s3Client(srv);
    await s3.send(new CreateBucketCommand({ Bucket: B }));
  }, 60_000);
  afterAll(() => srv?.close());

  it('a hot object is served from the gateway, and the next read after a write is the new one', async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: 'hot', Body: 'v1' }));
    await until(
      'the object at gateway level and served from there',
      async () => {
        for (let i = 0; i < 10; i++) expect(await text(s3, 'hot')).toBe('v1');
        const bytes = await metric(srv, 'kubestorage_cache_hits_total', 'gateway');
        const recs = await metric(srv, 'kubestorage_cache_hits_total', 'gateway-records');
        return bytes > 0 && recs > 0;
      },
      20_000,
      { everyMs: 10 },
    );
    // Store level saw it first (a fill hint), and the gateway took it over with a drop.
    expect(srv.store.cache?.stats.fills).toBeGreaterThan(0);
    const records = () => metric(srv, 'kubestorage_cache_hits_total', 'gateway-records');
    const before = await records();
    for (let i = 0; i < 20; i++) expect(await text(s3, 'hot')).toBe('v1');
    // The record came from the gateway's copy for most of these (a copy lives leaseMs).
    expect((await records()) - before).toBeGreaterThan(10);
    // Writes through the same gateway: the very next read sees them.
    for (let v = 2; v < 6; v++) {
      await s3.send(new PutObjectCommand({ Bucket: B, Key: 'hot', Body: `v${v}` }));
      expect(await text(s3, 'hot')).toBe(`v${v}`);
    }
    await s3.send(new DeleteObjectCommand({ Bucket: B, Key: 'hot' }));
    expect(await text(s3, 'hot')).toBeNull();
  }, 60_000);
});
