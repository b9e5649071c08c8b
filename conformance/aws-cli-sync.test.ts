// Real client: the Debian aws-cli v2 on a 500-file tree — `s3 sync` up, a re-sync that
// must upload nothing, `s3 ls --recursive`, sync back down, `s3 rm --recursive`. A file of
// its own so it runs beside the other aws-cli scenarios (aws-cli.test.ts).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  hashTree,
  makeTree,
  SCENARIO_TIMEOUT_MS,
  type Scenario,
  useAwsScenario,
} from './harness.ts';

let sc: Scenario;
const aws = useAwsScenario('aws-sync', 'aws-cli sync', (s) => {
  sc = s;
});

describe('aws-cli (Debian /usr/bin/aws v2) s3 sync', () => {
  it(
    'sync a 500-file tree up, re-sync uploads nothing, sync down, ls --recursive, rm --recursive',
    async () => {
      await aws(['s3', 'mb', 's3://synced']);
      const src = path.join(sc.dir, 'tree');
      const files = makeTree(src, 500, 'aws');
      const up = await aws(['s3', 'sync', src, 's3://synced/t', '--no-progress'], 120_000);
      expect(up.stdout.match(/^upload: /gm)?.length).toBe(500);

      const again = await aws(['s3', 'sync', src, 's3://synced/t', '--no-progress'], 120_000);
      expect(again.stdout.trim()).toBe('');

      const ls = await aws(['s3', 'ls', '--recursive', 's3://synced/'], 60_000);
      const keys = ls.stdout
        .trim()
        .split('\n')
        .map((l) => l.replace(/^\S+\s+\S+\s+\d+\s+/, ''))
        .sort();
      expect(keys).toHaveLength(500);
      expect(keys).toEqual(files.map((f) => `t/${f}`));

      const dst = path.join(sc.dir, 'tree-back');
      const down = await aws(['s3', 'sync', 's3://synced/t', dst, '--no-progress'], 120_000);
      expect(down.stdout.match(/^download: /gm)?.length).toBe(500);
      const want = hashTree(src);
      expect(want.size).toBe(500);
      expect(hashTree(dst)).toEqual(want);

      const rm = await aws(['s3', 'rm', '--recursive', 's3://synced/t'], 120_000);
      expect(rm.stdout.match(/^delete: /gm)?.length).toBe(500);
      const after = await aws(['s3api', 'list-objects-v2', '--bucket', 'synced']);
      expect(after.stdout.trim() === '' || JSON.parse(after.stdout).KeyCount === 0).toBe(true);
      await aws(['s3', 'rb', 's3://synced']);
    },
    SCENARIO_TIMEOUT_MS,
  );
});
