// The `kubestorage gateway` command as a real process, in front of a loopback cluster (a
// Raft directory and three store nodes in this process).
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../test/kit/data-cluster.ts';
import { exited, killChildren, type Proc, startKubestorage } from '../test/kit/processes.ts';
import { type S3Endpoint, s3Client } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { TEST_SECRET } from '../test/kit/test-directory.ts';
import { parseDirectory, parseReplicas } from './gateway.ts';

let c: TestCluster;

beforeAll(async () => {
  c = await startTestCluster(tempDir(), { stores: 3 });
});

afterEach(() => killChildren());

afterAll(async () => {
  await c?.close();
});

const run = (args: string[], env: Record<string, string>): Proc =>
  startKubestorage(['gateway', ...args], {
    env: { ...process.env, KUBESTORAGE_LOG_LEVEL: 'warn', ...env },
  });

const ROOT_SECRET = 'gateway-cli-secret-0123456789abcdefghij';

/** The banner; the secret is the configured one: stdout is a pipe, so it is not printed. */
async function banner(p: Proc): Promise<S3Endpoint> {
  const m = await p.waitFor(/endpoint: (\S+)[\s\S]*access key: (\S+)[\s\S]*secret key: (.*)/);
  expect(m[3]).not.toContain(ROOT_SECRET);
  return { endpoint: m[1]!, accessKey: m[2]!, secretKey: ROOT_SECRET };
}

describe('kubestorage gateway', () => {
  it('parses its flags', () => {
    expect(parseReplicas(undefined)).toBe(2);
    expect(parseReplicas('3')).toBe(3);
    // One maximum everywhere (common/config.ts MAX_REPLICAS); the flag said 16 before.
    expect(() => parseReplicas('0')).toThrow(/1 to 5/);
    expect(() => parseReplicas('6')).toThrow(/1 to 5/);
    expect(parseReplicas('5')).toBe(5);
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
        KUBESTORAGE_ROOT_SECRET_KEY: ROOT_SECRET,
      },
    );
    const b = await banner(p);
    expect(b.accessKey).toBe('KSGATEWAYCLITEST0001');
    const s3 = s3Client(b);
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
    // Its output is a log file under `cluster up`: no secret in it.
    expect(p.output()).toContain('KSGATEWAYCLITEST0001');
    expect(p.output()).not.toContain(ROOT_SECRET);
    expect(p.output()).not.toContain(TEST_SECRET);
  });
});
