// Real client: Debian rclone with an on-the-fly S3 remote (`ks:`) defined by env vars
// (provider Other, path style, us-east-1); no config file outside the temp dir.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../test/kit/processes.ts';
import { RCLONE, rcloneEnv } from '../test/kit/s3-clients.ts';
import {
  hashTree,
  makeTree,
  randomBytes,
  SCENARIO_TIMEOUT_MS,
  type Scenario,
  useScenario,
} from './harness.ts';

let sc: Scenario;
let env: NodeJS.ProcessEnv;
useScenario('rclone', { label: 'rclone', binaries: [[RCLONE, 'rclone']] }, (s) => {
  sc = s;
  env = rcloneEnv(s);
});

const rclone = (args: string[], timeoutMs = 60_000) =>
  run(RCLONE, [...args, '--retries', '1', '--low-level-retries', '1'], { env, timeoutMs });

describe('rclone (Debian /usr/bin/rclone, s3 provider Other)', () => {
  it(
    'mkdir, copy a tree, lsf, check with 0 differences, copy back down',
    async () => {
      await rclone(['mkdir', 'ks:rcbucket']);
      const src = path.join(sc.dir, 'src');
      const files = makeTree(src, 200, 'rclone');
      // One object above rclone's default upload cutoff (200 MiB) would be slow; 12 MiB
      // with a 5 MiB cutoff exercises its multipart path instead.
      fs.writeFileSync(path.join(src, 'large.bin'), randomBytes('rclone-large', 12 * 1024 * 1024));
      files.push('large.bin');
      files.sort();
      await rclone(
        ['copy', src, 'ks:rcbucket/data', '--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M'],
        120_000,
      );

      const lsf = await rclone(['lsf', '-R', '--files-only', 'ks:rcbucket/data']);
      const listed = lsf.stdout.trim().split('\n').sort();
      expect(listed).toHaveLength(201);
      expect(listed).toEqual(files);

      const check = await rclone(['check', src, 'ks:rcbucket/data'], 120_000);
      expect(check.stderr).toMatch(/0 differences found/);
      expect(check.stderr).toMatch(/201 matching files/);

      const back = path.join(sc.dir, 'back');
      await rclone(['copy', 'ks:rcbucket/data', back], 120_000);
      expect(hashTree(back)).toEqual(hashTree(src));
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'sync propagates changes and deletions; check then agrees; a difference is detected',
    async () => {
      const src = path.join(sc.dir, 'sync-src');
      const files = makeTree(src, 60, 'rclone-sync');
      await rclone(['sync', src, 'ks:rcbucket/mirror'], 60_000);
      let check = await rclone(['check', src, 'ks:rcbucket/mirror']);
      expect(check.stderr).toMatch(/0 differences found/);

      // Change one file (same size, different bytes), delete two, add one.
      const changed = path.join(src, files[5]!);
      const size = fs.statSync(changed).size;
      fs.writeFileSync(changed, randomBytes('changed', size || 10));
      fs.rmSync(path.join(src, files[10]!));
      fs.rmSync(path.join(src, files[11]!));
      fs.writeFileSync(path.join(src, 'new file +1.txt'), 'new\n');

      // Before the sync, check must see the differences (the server answers honestly).
      const stale = await run(RCLONE, ['check', src, 'ks:rcbucket/mirror', '--retries', '1'], {
        env,
        timeoutMs: 60_000,
        allowFail: true,
      });
      expect(stale.code).not.toBe(0);
      expect(stale.stderr).toMatch(/[1-9]\d* differences found/);

      await rclone(['sync', src, 'ks:rcbucket/mirror'], 60_000);
      check = await rclone(['check', src, 'ks:rcbucket/mirror']);
      expect(check.stderr).toMatch(/0 differences found/);
      expect(check.stderr).toMatch(/59 matching files/);

      const lsf = await rclone(['lsf', '-R', '--files-only', 'ks:rcbucket/mirror']);
      const listed = lsf.stdout.trim().split('\n').sort();
      expect(listed).toEqual([...hashTree(src).keys()].sort());
      expect(listed).toContain('new file +1.txt');
      expect(listed).not.toContain(files[10]);

      const back = path.join(sc.dir, 'sync-back');
      await rclone(['sync', 'ks:rcbucket/mirror', back], 60_000);
      expect(hashTree(back)).toEqual(hashTree(src));

      await rclone(['purge', 'ks:rcbucket']);
      const buckets = await rclone(['lsd', 'ks:']);
      expect(buckets.stdout).not.toContain('rcbucket');
    },
    SCENARIO_TIMEOUT_MS,
  );
});
