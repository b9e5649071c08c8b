// Behaviours found with the public ceph/s3-tests suite (conformance/s3-tests), pinned here
// with @aws-sdk/client-s3 against a real embedded server.
import crypto from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectAttributesCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { s3Error as errorOf, useS3Server } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';

let srv: TestServer;
let s3: S3Client;
useS3Server(
  () => startTestServer(tempDir('ks-s3t-')),
  (started) => ({ srv, s3 } = started),
);

describe('s3-tests findings', () => {
  it('deletes a bucket whose multipart uploads are still in progress', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'mpu-left' }));
    await s3.send(new CreateMultipartUploadCommand({ Bucket: 'mpu-left', Key: 'k' }));
    await s3.send(new DeleteBucketCommand({ Bucket: 'mpu-left' }));
    expect(await errorOf(s3.send(new HeadObjectCommand({ Bucket: 'mpu-left', Key: 'k' })))).toEqual(
      { name: 'NotFound', status: 404 },
    );
  });

  it('pages ListBuckets with max-buckets and a continuation token', async () => {
    for (const b of ['page-a', 'page-b', 'page-c']) {
      await s3.send(new CreateBucketCommand({ Bucket: b }));
    }
    const first = await s3.send(new ListBucketsCommand({ MaxBuckets: 2, Prefix: 'page-' }));
    expect(first.Buckets?.map((b) => b.Name)).toEqual(['page-a', 'page-b']);
    expect(first.ContinuationToken).toBeTruthy();
    const second = await s3.send(
      new ListBucketsCommand({
        MaxBuckets: 2,
        Prefix: 'page-',
        ContinuationToken: first.ContinuationToken,
      }),
    );
    expect(second.Buckets?.map((b) => b.Name)).toEqual(['page-c']);
    expect(second.ContinuationToken).toBeUndefined();
  });

  it('keeps leading and trailing spaces of keys in DeleteObjects', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'spaces' }));
    for (const Key of [' ', ' a ']) {
      await s3.send(new PutObjectCommand({ Bucket: 'spaces', Key, Body: 'x' }));
    }
    const r = await s3.send(
      new DeleteObjectsCommand({
        Bucket: 'spaces',
        Delete: { Objects: [{ Key: ' ' }, { Key: ' a ' }] },
      }),
    );
    expect(r.Deleted?.map((d) => d.Key).sort()).toEqual([' ', ' a ']);
    const list = await s3.send(new ListObjectsCommand({ Bucket: 'spaces' }));
    expect(list.Contents ?? []).toEqual([]);
  });

  it('answers PUT If-Match on a missing key with NoSuchKey, If-None-Match by ETag', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'cond-put' }));
    expect(
      await errorOf(
        s3.send(new PutObjectCommand({ Bucket: 'cond-put', Key: 'k', Body: 'x', IfMatch: '*' })),
      ),
    ).toEqual({ name: 'NoSuchKey', status: 404 });
    const put = await s3.send(new PutObjectCommand({ Bucket: 'cond-put', Key: 'k', Body: 'x' }));
    await s3.send(
      new PutObjectCommand({ Bucket: 'cond-put', Key: 'k', Body: 'y', IfNoneMatch: '"other"' }),
    );
    const second = await s3.send(new HeadObjectCommand({ Bucket: 'cond-put', Key: 'k' }));
    expect(second.ETag).not.toBe(put.ETag);
    expect(
      await errorOf(
        s3.send(
          new PutObjectCommand({
            Bucket: 'cond-put',
            Key: 'k',
            Body: 'z',
            IfNoneMatch: second.ETag,
          }),
        ),
      ),
    ).toEqual({ name: 'PreconditionFailed', status: 412 });
  });

  it('repeats a completed multipart completion, with a composite checksum', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'mpu-cks' }));
    const up = await s3.send(
      new CreateMultipartUploadCommand({
        Bucket: 'mpu-cks',
        Key: 'k',
        ChecksumAlgorithm: 'SHA256',
      }),
    );
    expect(up.ChecksumAlgorithm).toBe('SHA256');
    const body = Buffer.from('hello');
    const partSha = crypto.createHash('sha256').update(body).digest();
    const part = await s3.send(
      new UploadPartCommand({
        Bucket: 'mpu-cks',
        Key: 'k',
        UploadId: up.UploadId,
        PartNumber: 1,
        Body: body,
        ChecksumSHA256: partSha.toString('base64'),
      }),
    );
    const composite = `${crypto.createHash('sha256').update(partSha).digest('base64')}-1`;
    const complete = () =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: 'mpu-cks',
          Key: 'k',
          UploadId: up.UploadId,
          MultipartUpload: { Parts: [{ ETag: part.ETag, PartNumber: 1 }] },
        }),
      );
    const first = await complete();
    expect(first.ChecksumSHA256).toBe(composite);
    const again = await complete();
    expect(again.ETag).toBe(first.ETag);
    const attrs = await s3.send(
      new GetObjectAttributesCommand({
        Bucket: 'mpu-cks',
        Key: 'k',
        ObjectAttributes: ['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize'],
      }),
    );
    expect(attrs.ObjectSize).toBe(5);
    expect(attrs.StorageClass).toBe('STANDARD');
    expect(attrs.Checksum?.ChecksumSHA256).toBe(composite);
    expect(attrs.ObjectParts?.TotalPartsCount).toBe(1);
    expect(attrs.ObjectParts?.Parts?.[0]).toMatchObject({ PartNumber: 1, Size: 5 });
  });

  it('re-creating an owned bucket in us-east-1 succeeds and keeps its objects', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'recreate' }));
    await s3.send(new PutObjectCommand({ Bucket: 'recreate', Key: 'k', Body: 'x' }));
    await s3.send(new CreateBucketCommand({ Bucket: 'recreate' }));
    const list = await s3.send(new ListObjectsCommand({ Bucket: 'recreate' }));
    expect(list.Contents?.map((c) => c.Key)).toEqual(['k']);
  });

  it('answers anonymous requests for a missing bucket with NoSuchBucket', async () => {
    const res = await fetch(`${srv.endpoint}/no-such-bucket-here/k`);
    expect(res.status).toBe(404);
    expect(await res.text()).toContain('<Code>NoSuchBucket</Code>');
    await s3.send(new CreateBucketCommand({ Bucket: 'anon-exists' }));
    expect((await fetch(`${srv.endpoint}/anon-exists/k`)).status).toBe(403);
  });

  it('round-trips non-ASCII metadata sent as UTF-8 header bytes', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'meta-utf8' }));
    await s3.send(new PutObjectCommand({ Bucket: 'meta-utf8', Key: 'k', Body: 'x' }));
    const { headerText, headerBytes } = await import('./upload.ts');
    // What Node hands over for the UTF-8 bytes of "é" (latin1 view), and back.
    expect(headerText('Hello World\u00c3\u00a9')).toBe('Hello World\u00e9');
    expect(headerBytes('Hello World\u00e9')).toBe('Hello World\u00e9');
    expect(headerText('\u00e9 not utf-8')).toBe('\u00e9 not utf-8');
    expect(headerBytes('\u65e5')).toBe(Buffer.from('\u65e5', 'utf8').toString('latin1'));
  });
});
