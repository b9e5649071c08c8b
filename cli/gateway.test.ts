// The `kubestorage gateway` command as a real process, in front of a loopback cluster (a
// Raft directory and three store nodes in this process).
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../test/kit/data-cluster.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { TEST_SECRET } from '../test/kit/test-directory.ts';
import { parseDirectory, parseReplicas } from './gateway.ts';

const BIN = path.resolve(import.meta.dirname, '../bin/kubestorage.js');
const children: ChildProcess[] = [];
let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster(tempDir(), { stores: 3 });
});

afterEach(() => {
  for (const ch of children.splice(0)) if (ch.exitCode === null) ch.kill('SIGKILL');
});

afterAll(async () => {
  await c?.close();
});

function run(
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [BIN, 'gateway', ...args], {
    env: { ...process.env, KUBESTORAGE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
  });
  return { child, out: () => out, err: () => err };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on('exit', (code) => resolve(code));
  });
}

async function banner(p: ReturnType<typeof run>): Promise<Record<string, string>> {
  const end = Date.now() + 20_000;
  for (;;) {
    const m = /endpoint: (\S+)[\s\S]*access key: (\S+)[\s\S]*secret key: (\S+)/.exec(p.out());
    if (m) return { endpoint: m[1]!, accessKey: m[2]!, secretKey: m[3]! };
    if (p.child.exitCode !== null || Date.now() > end) {
      throw new Error(`no banner: ${p.out()} ${p.err()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('kubestorage gateway', () => {
  it('parses its flags', () => {
    expect(parseReplicas(undefined)).toBe(2);
    expect(parseReplicas('3')).toBe(3);
    expect(() => parseReplicas('0')).toThrow(/1 to 16/);
    expect(parseDirectory('http://a:1, http://b:2')).toEqual(['http://a:1', 'http://b:2']);
    expect(() => parseDirectory(undefined)).toThrow(/required/);
    expect(() => parseDirectory('a:1')).toThrow(/not an http/);
  });

  it('refuses to start without the cluster secret', async () => {
    const p = run(['--directory', c.dir.urls.join(','), '--listen', '127.0.0.1:0'], {
      KUBESTORAGE_CLUSTER_SECRET: '',
    });
    expect(await exited(p.child)).toBe(1);
    expect(p.err()).toMatch(/KUBESTORAGE_CLUSTER_SECRET/);
  });

  it('serves S3 on the cluster and stops cleanly on SIGTERM', async () => {
    const p = run(
      ['--directory', c.dir.urls.join(','), '--listen', '127.0.0.1:0', '--replicas', '3'],
      {
        KUBESTORAGE_CLUSTER_SECRET: TEST_SECRET,
        KUBESTORAGE_ROOT_ACCESS_KEY: 'KSGATEWAYCLITEST0001',
        KUBESTORAGE_ROOT_SECRET_KEY: 'gateway-cli-secret-0123456789abcdefghij',
      },
    );
    const b = await banner(p);
    expect(b.accessKey).toBe('KSGATEWAYCLITEST0001');
    const s3 = new S3Client({
      endpoint: b.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: b.accessKey!, secretAccessKey: b.secretKey! },
    });
    try {
      await s3.send(new CreateBucketCommand({ Bucket: 'cli' }));
      await s3.send(new PutObjectCommand({ Bucket: 'cli', Key: 'k', Body: 'three copies' }));
      const got = await s3.send(new GetObjectCommand({ Bucket: 'cli', Key: 'k' }));
      expect(await got.Body!.transformToString()).toBe('three copies');
      const ch = (await c.dir.client.getObject('cli', 'k'))!.chunks[0]!;
      const ref = { volumeId: ch.volumeId, needleId: BigInt(ch.needleId), cookie: ch.cookie };
      for (let i = 0; i < 3; i++) {
        expect((await c.direct(i).get(ref)).data.toString()).toBe('three copies');
      }
    } finally {
      s3.destroy();
    }
    p.child.kill('SIGTERM');
    expect(await exited(p.child)).toBe(0);
  });
});
