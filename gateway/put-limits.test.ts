// The largest object a PUT may carry is the gateway's setting (5 GiB by default); past it the
// data path refuses the body mid-stream and the client gets S3's EntityTooLarge, with no
// object and no needle left behind.
import {
  CreateBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { s3Error, useS3Server } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';

const LIMIT = 64 * 1024;
let srv: TestServer;
let s3: S3Client;
useS3Server(
  // Chunks smaller than the limit: the refusal comes after needles were already written.
  () => startTestServer(tempDir('ks-limits-'), { maxObjectSize: LIMIT, chunkSize: 16 * 1024 }),
  (started) => ({ srv, s3 } = started),
);

describe('object size limit', () => {
  it('refuses a PUT past the limit with EntityTooLarge and keeps nothing of it', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'limits' }));
    const ok = Buffer.alloc(LIMIT, 7);
    await s3.send(new PutObjectCommand({ Bucket: 'limits', Key: 'fits', Body: ok }));
    const before = (await srv.store.status()).needles;

    const e = await s3Error(
      s3.send(
        new PutObjectCommand({ Bucket: 'limits', Key: 'big', Body: Buffer.alloc(LIMIT + 1, 7) }),
      ),
    );
    expect(e.name).toBe('EntityTooLarge');
    expect(e.status).toBe(400);
    expect(
      (await s3Error(s3.send(new HeadObjectCommand({ Bucket: 'limits', Key: 'big' })))).status,
    ).toBe(404);
    // The chunks written before the refusal were freed (best effort, so allow it a moment).
    const end = Date.now() + 5_000;
    let live = Number.POSITIVE_INFINITY;
    while (Date.now() < end) {
      live = (await srv.store.status()).needles;
      if (live === before) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(live).toBe(before);
  });
});
