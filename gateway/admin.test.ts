// Users and keys through `kubestorage admin` (a real CLI process) against a gateway,
// and what the new identities may and may not do.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  CreateBucketCommand,
  ListBucketsCommand,
  PutObjectCommand,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KUBESTORAGE_BIN as BIN } from '../test/kit/processes.ts';
import { s3Client } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';

const run = promisify(execFile);
let srv: TestServer;

beforeAll(async () => {
  srv = await startTestServer(tempDir('ks-admin-'));
});
afterAll(async () => {
  await srv?.close();
});

async function admin(args: string[], creds = { ak: srv.accessKey, sk: srv.secretKey }) {
  try {
    const { stdout } = await run(
      process.execPath,
      [BIN, 'admin', ...args, '--endpoint', srv.endpoint],
      {
        env: {
          ...process.env,
          KUBESTORAGE_ROOT_ACCESS_KEY: creds.ak,
          KUBESTORAGE_ROOT_SECRET_KEY: creds.sk,
        },
        timeout: 20_000,
      },
    );
    return { ok: true, out: JSON.parse(stdout) as Record<string, unknown>, err: '' };
  } catch (e) {
    return { ok: false, out: {}, err: String((e as { stderr?: string }).stderr ?? e) };
  }
}

const client = (ak: string, sk: string) => s3Client(srv, { accessKey: ak, secretKey: sk });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof S3ServiceException ? e.name : String(e);
  }
}

describe('kubestorage admin', () => {
  it('adds users and keys that work, isolates users, and removes them', async () => {
    const root = client(srv.accessKey, srv.secretKey);
    await root.send(new CreateBucketCommand({ Bucket: 'root-bucket' }));
    const added = await admin(['user', 'add', 'alice']);
    expect(added.ok).toBe(true);
    const ak = added.out.accessKey as string;
    const sk = added.out.secretKey as string;
    const alice = client(ak, sk);
    await alice.send(new CreateBucketCommand({ Bucket: 'alice-bucket' }));
    expect((await alice.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).toEqual([
      'alice-bucket',
    ]);
    expect(
      await code(alice.send(new PutObjectCommand({ Bucket: 'root-bucket', Key: 'x', Body: 'x' }))),
    ).toBe('AccessDenied');
    expect(await code(alice.send(new CreateBucketCommand({ Bucket: 'root-bucket' })))).toBe(
      'BucketAlreadyExists',
    );
    // Only root administers.
    const denied = await admin(['user', 'list'], { ak, sk });
    expect(denied.ok).toBe(false);
    expect(denied.err).toMatch(/AccessDenied/);
    const list = await admin(['user', 'list']);
    expect((list.out.users as { id: string }[]).map((u) => u.id).sort()).toEqual(['alice', 'root']);
    // A user owning buckets is not removed; a second key works; a removed key stops working.
    expect((await admin(['user', 'remove', 'alice'])).err).toMatch(/UserHasBuckets/);
    const k2 = await admin(['key', 'add', 'alice']);
    const alice2 = client(k2.out.accessKey as string, k2.out.secretKey as string);
    expect(await code(alice2.send(new ListBucketsCommand({})))).toBe('ok');
    expect((await admin(['key', 'remove', ak])).ok).toBe(true);
    expect(await code(alice.send(new ListBucketsCommand({})))).toBe('InvalidAccessKeyId');
    expect((await admin(['user', 'add', 'bad name!'])).err).toMatch(/InvalidArgument/);
    for (const c of [root, alice, alice2]) c.destroy();
  });
});
