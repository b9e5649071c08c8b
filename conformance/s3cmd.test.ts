// Real client: Debian s3cmd with a temp config file (path style: host_bucket = host_base,
// plain HTTP), once with SigV4 and once with --signature-v2.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../test/kit/processes.ts';
import { S3CMD, s3cmdConfig } from '../test/kit/s3-clients.ts';
import {
  randomBytes,
  SCENARIO_TIMEOUT_MS,
  type Scenario,
  sha256File,
  useScenario,
} from './harness.ts';

let sc: Scenario;
let config: string;
useScenario('s3cmd', { label: 's3cmd', binaries: [[S3CMD, 's3cmd']] }, (s) => {
  sc = s;
  config = s3cmdConfig(s);
});

const s3cmd = (args: string[], extra: string[] = [], timeoutMs = 60_000) =>
  run(S3CMD, ['-c', config, '--no-progress', ...extra, ...args], { env: sc.env, timeoutMs });

describe.each([
  { sig: 'SigV4', extra: [] as string[] },
  { sig: 'SigV2', extra: ['--signature-v2'] },
])('s3cmd (Debian /usr/bin/s3cmd) with $sig', ({ sig, extra }) => {
  const bucket = `s3cmd-${sig.toLowerCase()}`;

  it(
    'mb, put (incl. multipart), ls, get byte-for-byte, del, rb',
    async () => {
      await s3cmd(['mb', `s3://${bucket}`], extra);
      const buckets = await s3cmd(['ls', '--debug'], extra);
      expect(buckets.stdout).toContain(`s3://${bucket}`);
      // The requested signature version is really the one on the wire.
      if (sig === 'SigV2') expect(buckets.stderr).toContain('Using signature v2');
      else expect(buckets.stderr).toMatch(/'Authorization': 'AWS4-HMAC-SHA256 /);
      expect(buckets.stderr).not.toMatch(/fall(ing)? ?back/i);

      const small = path.join(sc.dir, `${sig}-small.txt`);
      fs.writeFileSync(small, `hello from s3cmd ${sig}\n`);
      const big = path.join(sc.dir, `${sig}-big.bin`);
      fs.writeFileSync(big, randomBytes(`s3cmd-${sig}`, 11 * 1024 * 1024 + 7));
      await s3cmd(['put', small, `s3://${bucket}/docs/small file+1.txt`], extra);
      const put = await s3cmd(
        ['put', '--progress', '--multipart-chunk-size-mb=5', big, `s3://${bucket}/blobs/big.bin`],
        extra,
        120_000,
      );
      expect(put.stdout).toMatch(/part 3 of 3/);

      const ls = await s3cmd(['ls', '--recursive', `s3://${bucket}`], extra);
      const lines = ls.stdout.trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(
        new RegExp(`\\s${11 * 1024 * 1024 + 7}\\s+s3://${bucket}/blobs/big.bin$`),
      );
      expect(lines[1]).toMatch(/\s\d+\s+s3:\/\/s3cmd-sig..\/docs\/small file\+1\.txt$/);
      const dirs = await s3cmd(['ls', `s3://${bucket}/`], extra);
      expect(dirs.stdout).toMatch(/DIR\s+s3:\/\/s3cmd-sig..\/blobs\//);
      expect(dirs.stdout).toMatch(/DIR\s+s3:\/\/s3cmd-sig..\/docs\//);

      const bigBack = path.join(sc.dir, `${sig}-big.back`);
      const smallBack = path.join(sc.dir, `${sig}-small.back`);
      await s3cmd(['get', `s3://${bucket}/blobs/big.bin`, bigBack], extra, 120_000);
      await s3cmd(['get', `s3://${bucket}/docs/small file+1.txt`, smallBack], extra);
      expect(sha256File(bigBack)).toBe(sha256File(big));
      expect(fs.readFileSync(smallBack, 'utf8')).toBe(`hello from s3cmd ${sig}\n`);

      const info = await s3cmd(['info', `s3://${bucket}/docs/small file+1.txt`], extra);
      expect(info.stdout).toMatch(/File size:\s+\d+/);

      await s3cmd(['del', `s3://${bucket}/docs/small file+1.txt`], extra);
      await s3cmd(['del', `s3://${bucket}/blobs/big.bin`], extra);
      const empty = await s3cmd(['ls', '--recursive', `s3://${bucket}`], extra);
      expect(empty.stdout.trim()).toBe('');
      await s3cmd(['rb', `s3://${bucket}`], extra);
      const after = await s3cmd(['ls'], extra);
      expect(after.stdout).not.toContain(`s3://${bucket}`);
    },
    SCENARIO_TIMEOUT_MS,
  );
});
