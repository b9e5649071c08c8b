// The gateway end to end with @aws-sdk/client-s3 v3 on default settings (it sends
// aws-chunked bodies with a CRC32 trailer), against a real embedded server.
import crypto from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { s3Client, s3Error, useS3Server } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';

let srv: TestServer;
let s3: S3Client;
useS3Server(
  () => startTestServer(tempDir('ks-gw-'), { chunkSize: 1024 * 1024 }),
  (started) => ({ srv, s3 } = started),
);

const text = (b: { Body?: { transformToString(): Promise<string> } }) =>
  b.Body!.transformToString();

describe('gateway with @aws-sdk/client-s3', () => {
  it('creates, lists, heads and deletes buckets with S3 errors for the rules', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'alpha' }));
    // us-east-1: re-creating a bucket one owns is a no-op success (AWS legacy behaviour).
    await s3.send(new CreateBucketCommand({ Bucket: 'alpha' }));
    expect((await s3Error(s3.send(new CreateBucketCommand({ Bucket: 'ab' })))).name).toBe(
      'InvalidBucketName',
    );
    const list = await s3.send(new ListBucketsCommand({}));
    expect(list.Buckets?.map((b) => b.Name)).toContain('alpha');
    await s3.send(new HeadBucketCommand({ Bucket: 'alpha' }));
    await s3.send(new PutObjectCommand({ Bucket: 'alpha', Key: 'x', Body: 'x' }));
    expect((await s3Error(s3.send(new DeleteBucketCommand({ Bucket: 'alpha' })))).name).toBe(
      'BucketNotEmpty',
    );
    await s3.send(new DeleteObjectCommand({ Bucket: 'alpha', Key: 'x' }));
    await s3.send(new DeleteBucketCommand({ Bucket: 'alpha' }));
    expect((await s3Error(s3.send(new HeadBucketCommand({ Bucket: 'alpha' })))).status).toBe(404);
  });

  it('round-trips objects with tricky keys, metadata, ranges and conditionals', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'objects' }));
    const keys = [
      'plain',
      'with space',
      'plus+sign',
      'per%cent',
      'ünï/cødé/🎉',
      '../../etc/passwd',
      'a'.repeat(1024),
    ];
    for (const key of keys) {
      await s3.send(
        new PutObjectCommand({
          Bucket: 'objects',
          Key: key,
          Body: `body of ${key}`,
          ContentType: 'text/plain',
          Metadata: { colour: 'blue' },
        }),
      );
    }
    for (const key of keys) {
      const got = await s3.send(new GetObjectCommand({ Bucket: 'objects', Key: key }));
      expect(await text(got)).toBe(`body of ${key}`);
      expect(got.ContentType).toBe('text/plain');
      expect(got.Metadata).toEqual({ colour: 'blue' });
      expect(got.ETag).toBe(`"${crypto.createHash('md5').update(`body of ${key}`).digest('hex')}"`);
    }
    expect(
      (
        await s3Error(
          s3.send(new PutObjectCommand({ Bucket: 'objects', Key: 'a'.repeat(1025), Body: 'x' })),
        )
      ).name,
    ).toBe('KeyTooLongError');
    const r = await s3.send(
      new GetObjectCommand({ Bucket: 'objects', Key: 'plain', Range: 'bytes=5-6' }),
    );
    expect(await text(r)).toBe('of');
    expect(r.ContentRange).toBe('bytes 5-6/13');
    expect(
      (
        await s3Error(
          s3.send(new GetObjectCommand({ Bucket: 'objects', Key: 'plain', Range: 'bytes=100-' })),
        )
      ).status,
    ).toBe(416);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'objects', Key: 'plain' }));
    expect(head.ContentLength).toBe(13);
    expect(
      (
        await s3Error(
          s3.send(new GetObjectCommand({ Bucket: 'objects', Key: 'plain', IfMatch: '"nope"' })),
        )
      ).status,
    ).toBe(412);
    expect(
      (
        await s3Error(
          s3.send(
            new GetObjectCommand({ Bucket: 'objects', Key: 'plain', IfNoneMatch: head.ETag }),
          ),
        )
      ).status,
    ).toBe(304);
    expect(
      await s3Error(s3.send(new GetObjectCommand({ Bucket: 'objects', Key: 'missing' }))),
    ).toEqual({ name: 'NoSuchKey', status: 404 });
  });

  it('lists with prefixes, delimiters and pagination (v1 and v2)', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'listing' }));
    const keys: string[] = [];
    for (const d of ['a', 'b', 'c']) for (let i = 0; i < 4; i++) keys.push(`${d}/${i}`);
    keys.push('top1', 'top2');
    await Promise.all(
      keys.map((Key) => s3.send(new PutObjectCommand({ Bucket: 'listing', Key, Body: Key }))),
    );
    const v2 = await s3.send(new ListObjectsV2Command({ Bucket: 'listing', Delimiter: '/' }));
    expect(v2.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['a/', 'b/', 'c/']);
    expect(v2.Contents?.map((c) => c.Key)).toEqual(['top1', 'top2']);
    expect(v2.KeyCount).toBe(5);
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: 'listing', MaxKeys: 3, ContinuationToken: token }),
      );
      seen.push(...(page.Contents ?? []).map((c) => c.Key!));
      token = page.NextContinuationToken;
    } while (token);
    expect(seen).toEqual([...keys].sort());
    const v1 = await s3.send(
      new ListObjectsCommand({ Bucket: 'listing', Prefix: 'b/', Marker: 'b/1' }),
    );
    expect(v1.Contents?.map((c) => c.Key)).toEqual(['b/2', 'b/3']);
  });

  it('copies objects and deletes many at once', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'copies' }));
    await s3.send(
      new PutObjectCommand({
        Bucket: 'copies',
        Key: 'src key',
        Body: 'copy me',
        Metadata: { a: '1' },
      }),
    );
    await s3.send(
      new CopyObjectCommand({ Bucket: 'copies', Key: 'dst', CopySource: 'copies/src%20key' }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: 'copies', Key: 'dst' }));
    expect(await text(got)).toBe('copy me');
    expect(got.Metadata).toEqual({ a: '1' });
    await s3.send(
      new CopyObjectCommand({
        Bucket: 'copies',
        Key: 'dst',
        CopySource: 'copies/src%20key',
        MetadataDirective: 'REPLACE',
        Metadata: { b: '2' },
      }),
    );
    expect(
      (await s3.send(new HeadObjectCommand({ Bucket: 'copies', Key: 'dst' }))).Metadata,
    ).toEqual({ b: '2' });
    const del = await s3.send(
      new DeleteObjectsCommand({
        Bucket: 'copies',
        Delete: { Objects: [{ Key: 'dst' }, { Key: 'src key' }, { Key: 'never' }] },
      }),
    );
    expect(del.Deleted?.map((d) => d.Key).sort()).toEqual(['dst', 'never', 'src key']);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: 'copies' }))).KeyCount).toBe(0);
  });

  it('runs a multipart upload: order, ETag, EntityTooSmall, abort', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'multi' }));
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({
        Bucket: 'multi',
        Key: 'big',
        ContentType: 'application/x-test',
      }),
    );
    const p1 = crypto.randomBytes(5 * 1024 * 1024 + 17);
    const p2 = crypto.randomBytes(1234);
    const e1 = (
      await s3.send(
        new UploadPartCommand({ Bucket: 'multi', Key: 'big', UploadId, PartNumber: 1, Body: p1 }),
      )
    ).ETag!;
    const e2 = (
      await s3.send(
        new UploadPartCommand({ Bucket: 'multi', Key: 'big', UploadId, PartNumber: 2, Body: p2 }),
      )
    ).ETag!;
    const parts = await s3.send(new ListPartsCommand({ Bucket: 'multi', Key: 'big', UploadId }));
    expect(parts.Parts?.map((p) => [p.PartNumber, p.Size])).toEqual([
      [1, p1.length],
      [2, p2.length],
    ]);
    expect(
      (await s3.send(new ListMultipartUploadsCommand({ Bucket: 'multi' }))).Uploads?.map(
        (u) => u.UploadId,
      ),
    ).toEqual([UploadId]);
    expect(
      (
        await s3Error(
          s3.send(
            new CompleteMultipartUploadCommand({
              Bucket: 'multi',
              Key: 'big',
              UploadId,
              MultipartUpload: {
                Parts: [
                  { PartNumber: 2, ETag: e2 },
                  { PartNumber: 1, ETag: e1 },
                ],
              },
            }),
          ),
        )
      ).name,
    ).toBe('InvalidPartOrder');
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'multi',
        Key: 'big',
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: e1 },
            { PartNumber: 2, ETag: e2 },
          ],
        },
      }),
    );
    const md5s = Buffer.concat([p1, p2].map((p) => crypto.createHash('md5').update(p).digest()));
    expect(done.ETag).toBe(`"${crypto.createHash('md5').update(md5s).digest('hex')}-2"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'multi', Key: 'big' }));
    expect(
      Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat([p1, p2])),
    ).toBe(true);
    expect(got.ContentType).toBe('application/x-test');

    const small = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: 'multi', Key: 'small' }),
    );
    const s1 = (
      await s3.send(
        new UploadPartCommand({
          Bucket: 'multi',
          Key: 'small',
          UploadId: small.UploadId,
          PartNumber: 1,
          Body: 'tiny',
        }),
      )
    ).ETag!;
    const s2 = (
      await s3.send(
        new UploadPartCommand({
          Bucket: 'multi',
          Key: 'small',
          UploadId: small.UploadId,
          PartNumber: 2,
          Body: 'tiny',
        }),
      )
    ).ETag!;
    expect(
      (
        await s3Error(
          s3.send(
            new CompleteMultipartUploadCommand({
              Bucket: 'multi',
              Key: 'small',
              UploadId: small.UploadId,
              MultipartUpload: {
                Parts: [
                  { PartNumber: 1, ETag: s1 },
                  { PartNumber: 2, ETag: s2 },
                ],
              },
            }),
          ),
        )
      ).name,
    ).toBe('EntityTooSmall');
    await s3.send(
      new AbortMultipartUploadCommand({ Bucket: 'multi', Key: 'small', UploadId: small.UploadId }),
    );
    expect(
      (
        await s3Error(
          s3.send(
            new ListPartsCommand({ Bucket: 'multi', Key: 'small', UploadId: small.UploadId }),
          ),
        )
      ).name,
    ).toBe('NoSuchUpload');
  });

  it('refuses wrong credentials and anonymous requests', async () => {
    const bad = s3Client(srv, { secretKey: 'wrong-secret' });
    expect(await s3Error(bad.send(new ListBucketsCommand({})))).toEqual({
      name: 'SignatureDoesNotMatch',
      status: 403,
    });
    bad.destroy();
    const unknown = s3Client(srv, { accessKey: 'NOSUCHKEY', secretKey: 'x' });
    expect((await s3Error(unknown.send(new ListBucketsCommand({})))).name).toBe(
      'InvalidAccessKeyId',
    );
    unknown.destroy();
    const anon = await fetch(`${srv.endpoint}/`);
    expect(anon.status).toBe(403);
    const xml = await anon.text();
    expect(xml).toMatch(/<Code>AccessDenied<\/Code>/);
    expect(xml).toMatch(/<RequestId>[0-9A-F]+<\/RequestId>/);
    expect(xml).not.toMatch(/<Message\/>|<Message><\/Message>/);
  });
});
