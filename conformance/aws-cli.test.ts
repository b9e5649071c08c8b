// Real client: the Debian aws-cli v2 (/usr/bin/aws; a pyenv `aws` v1 may come first in
// PATH, so the binary is named explicitly). Path-style, us-east-1, config only through
// env vars and temp files under a private HOME.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../test/kit/processes.ts';
import { AWS } from '../test/kit/s3-clients.ts';
import {
  randomBytes,
  SCENARIO_TIMEOUT_MS,
  type Scenario,
  sha256File,
  useAwsScenario,
} from './harness.ts';

let sc: Scenario;
let env: NodeJS.ProcessEnv;
const aws = useAwsScenario('aws', 'aws-cli', (s, e) => {
  sc = s;
  env = e;
});

describe('aws-cli (Debian /usr/bin/aws v2)', () => {
  it(
    'mb, cp up/down incl. a 20 MiB multipart object, byte-for-byte',
    async () => {
      await aws(['s3', 'mb', 's3://awsbucket']);
      const ls = await aws(['s3', 'ls']);
      expect(ls.stdout).toMatch(/\sawsbucket\s*$/m);

      const big = path.join(sc.dir, 'big.bin');
      fs.writeFileSync(big, randomBytes('big', 20 * 1024 * 1024 + 12345));
      const small = path.join(sc.dir, 'small.txt');
      fs.writeFileSync(small, 'hello from aws-cli\n');
      await aws(['s3', 'cp', big, 's3://awsbucket/blobs/big.bin']);
      await aws(['s3', 'cp', small, 's3://awsbucket/small.txt']);

      // The 20 MiB upload went through multipart (default threshold 8 MiB): its ETag says so.
      const head = JSON.parse(
        (await aws(['s3api', 'head-object', '--bucket', 'awsbucket', '--key', 'blobs/big.bin']))
          .stdout,
      );
      expect(head.ContentLength).toBe(20 * 1024 * 1024 + 12345);
      expect(head.ETag).toMatch(/^"[0-9a-f]{32}-3"$/);

      const bigBack = path.join(sc.dir, 'big.back');
      const smallBack = path.join(sc.dir, 'small.back');
      await aws(['s3', 'cp', 's3://awsbucket/blobs/big.bin', bigBack]);
      await aws(['s3', 'cp', 's3://awsbucket/small.txt', smallBack]);
      expect(sha256File(bigBack)).toBe(sha256File(big));
      expect(fs.readFileSync(smallBack, 'utf8')).toBe('hello from aws-cli\n');
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'presign a GET URL that a plain HTTP client can fetch',
    async () => {
      const body = randomBytes('presign', 70_000);
      const file = path.join(sc.dir, 'presign.bin');
      fs.writeFileSync(file, body);
      await aws(['s3', 'cp', file, 's3://awsbucket/pre/signed.bin']);
      const url = (
        await aws(['s3', 'presign', 's3://awsbucket/pre/signed.bin', '--expires-in', '300'])
      ).stdout.trim();
      expect(url).toContain('X-Amz-Signature=');
      expect(url.startsWith(`${sc.srv.endpoint}/awsbucket/`)).toBe(true);
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
      // A tampered signature must be refused.
      const bad = await fetch(url.replace(/X-Amz-Signature=[0-9a-f]/, 'X-Amz-Signature=Z'));
      expect(bad.status).toBe(403);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    's3api put/get/head-object with user metadata and an awkward key',
    async () => {
      const key = 'odd dir/a+b ü €漢字 (1).txt';
      const file = path.join(sc.dir, 'meta.txt');
      fs.writeFileSync(file, 'metadata body\n');
      const put = JSON.parse(
        (
          await aws([
            's3api',
            'put-object',
            '--bucket',
            'awsbucket',
            '--key',
            key,
            '--body',
            file,
            '--content-type',
            'text/plain; charset=utf-8',
            '--metadata',
            'color=blue,owner=conformance',
          ])
        ).stdout,
      );
      expect(put.ETag).toMatch(/^"[0-9a-f]{32}"$/);

      const head = JSON.parse(
        (await aws(['s3api', 'head-object', '--bucket', 'awsbucket', '--key', key])).stdout,
      );
      expect(head.Metadata).toEqual({ color: 'blue', owner: 'conformance' });
      expect(head.ContentType).toBe('text/plain; charset=utf-8');
      expect(head.ContentLength).toBe(14);
      expect(head.ETag).toBe(put.ETag);

      const out = path.join(sc.dir, 'meta.back');
      const get = JSON.parse(
        (await aws(['s3api', 'get-object', '--bucket', 'awsbucket', '--key', key, out])).stdout,
      );
      expect(get.Metadata).toEqual({ color: 'blue', owner: 'conformance' });
      expect(fs.readFileSync(out, 'utf8')).toBe('metadata body\n');

      // The same key through the high-level commands (URL-encoding on the s3 side).
      const back2 = path.join(sc.dir, 'meta.back2');
      await aws(['s3', 'cp', `s3://awsbucket/${key}`, back2]);
      expect(fs.readFileSync(back2, 'utf8')).toBe('metadata body\n');
      const ls = await aws(['s3', 'ls', 's3://awsbucket/odd dir/']);
      expect(ls.stdout).toContain('a+b ü €漢字 (1).txt');
      const list = JSON.parse(
        (await aws(['s3api', 'list-objects-v2', '--bucket', 'awsbucket', '--prefix', 'odd']))
          .stdout,
      );
      expect(list.Contents.map((c: { Key: string }) => c.Key)).toEqual([key]);
      await aws(['s3', 'rm', `s3://awsbucket/${key}`]);
      const gone = await run(
        AWS,
        [
          '--endpoint-url',
          sc.srv.endpoint,
          's3api',
          'head-object',
          '--bucket',
          'awsbucket',
          '--key',
          key,
        ],
        { env, timeoutMs: 30_000, allowFail: true },
      );
      expect(gone.code).not.toBe(0);
      expect(gone.stderr).toMatch(/404|Not Found/);
    },
    SCENARIO_TIMEOUT_MS,
  );
});
