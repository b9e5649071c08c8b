// A GET that read an object's record just before an overwrite (or delete) committed finds
// the old needles already freed. It must then answer from the current record, never 500.
// The race is injected deterministically: the first metadata read returns a stale record.
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetadataStore, ObjectRecord } from '../directory/model/api.ts';
import { s3Client } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';

let srv: TestServer;
let s3: S3Client;
let stale: ObjectRecord | null = null;

beforeAll(async () => {
  srv = await startTestServer(tempDir('ks-race-'), {
    wrapMeta: (m: MetadataStore) =>
      new Proxy(m, {
        get(target, prop) {
          if (prop === 'getObject') {
            return async (bucket: string, key: string) => {
              if (stale) {
                const s = stale;
                stale = null;
                return s;
              }
              return target.getObject(bucket, key);
            };
          }
          const v = Reflect.get(target, prop);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }),
  });
  s3 = s3Client(srv, { maxAttempts: 1 });
  await s3.send(new CreateBucketCommand({ Bucket: 'race' }));
});

afterAll(async () => {
  s3?.destroy();
  await srv?.close();
});

describe('overwrite races', () => {
  it('answers from the current record when the one it read was overwritten meanwhile', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'race', Key: 'k', Body: 'old version' }));
    const old = await srv.meta.getObject('race', 'k');
    await s3.send(new PutObjectCommand({ Bucket: 'race', Key: 'k', Body: 'new version' }));
    stale = old; // the next GET sees the record from before the overwrite
    const got = await s3.send(new GetObjectCommand({ Bucket: 'race', Key: 'k' }));
    expect(await got.Body!.transformToString()).toBe('new version');
    expect(stale).toBeNull();
  });
});
