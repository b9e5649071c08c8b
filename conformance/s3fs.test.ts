// Real client: Debian s3fs-fuse mounting a bucket (path style, SigV4 only). Skipped, with
// the reason printed, only when FUSE itself is unavailable (no /dev/fuse, no permission,
// mount refused by the kernel). The gateway runs in this process, so every file operation
// on the mount goes through fs.promises (libuv's thread pool): a synchronous call would
// block the event loop that must answer s3fs's requests.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exited, type Proc, run, startProcess, stopChild } from '../test/kit/processes.ts';
import { AWS, awsEnv, aws as awsRun } from '../test/kit/s3-clients.ts';
import { sleep } from '../test/kit/until.ts';
import { lsKeys, randomBytes, SCENARIO_TIMEOUT_MS, type Scenario, useScenario } from './harness.ts';

const S3FS = '/usr/bin/s3fs';
let sc: Scenario;
useScenario(
  's3fs',
  {
    label: 's3fs',
    binaries: [
      [S3FS, 's3fs'],
      [AWS, 'awscli'],
    ],
  },
  (s) => {
    sc = s;
  },
);

/** Why FUSE cannot be used here, or null when it looks usable. */
function fuseUnavailable(): string | null {
  try {
    fs.closeSync(fs.openSync('/dev/fuse', 'r+'));
  } catch (e) {
    return `/dev/fuse not usable (${(e as NodeJS.ErrnoException).code})`;
  }
  for (const bin of ['/usr/bin/fusermount', '/usr/bin/fusermount3', '/bin/fusermount']) {
    if (fs.existsSync(bin)) return null;
  }
  return 'no fusermount binary';
}

function isMounted(mnt: string): boolean {
  const want = fs.realpathSync(mnt);
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === want);
}

const FUSE_REFUSED =
  /fuse: device not found|permission denied|operation not permitted|failed to open \/dev\/fuse|fusermount: .*(not permitted|failed)/i;

describe('s3fs (Debian /usr/bin/s3fs, FUSE)', () => {
  it(
    'mounts a bucket; write, read back, ls, rm through the filesystem',
    async (ctx) => {
      const why = fuseUnavailable();
      if (why) {
        console.warn(`[conformance] s3fs SKIPPED: ${why}`);
        ctx.skip(`FUSE unavailable: ${why}`);
      }
      const env = awsEnv(sc);
      const aws = (args: string[]) => awsRun(sc, env, args, 30_000);
      await aws(['s3', 'mb', 's3://fsbucket']);
      const seeded = path.join(sc.dir, 'seed.txt');
      fs.writeFileSync(seeded, 'put by aws-cli\n');
      await aws(['s3', 'cp', seeded, 's3://fsbucket/pre/seed.txt']);

      const passwd = path.join(sc.dir, 'passwd-s3fs');
      fs.writeFileSync(passwd, `${sc.srv.accessKey}:${sc.srv.secretKey}\n`, { mode: 0o600 });
      const mnt = path.join(sc.dir, 'mnt');
      fs.mkdirSync(mnt);
      let s3fs: Proc | undefined;
      try {
        s3fs = startProcess(
          S3FS,
          [
            'fsbucket',
            mnt,
            '-f',
            '-o',
            `url=${sc.srv.endpoint}`,
            '-o',
            'use_path_request_style',
            '-o',
            'endpoint=us-east-1',
            '-o',
            'sigv4',
            '-o',
            `passwd_file=${passwd}`,
            '-o',
            'dbglevel=info',
            '-o',
            'retries=1',
            '-o',
            'connect_timeout=10',
            '-o',
            'readwrite_timeout=20',
            '-o',
            'stat_cache_expire=1',
          ],
          { env: sc.env, detached: true },
        );
        const child = s3fs.child;
        const gone = exited(child);
        const deadline = Date.now() + 15_000;
        while (!isMounted(mnt)) {
          const text = s3fs.output();
          if (child.exitCode !== null || child.signalCode !== null) {
            if (FUSE_REFUSED.test(text)) {
              console.warn(`[conformance] s3fs SKIPPED: FUSE mount refused: ${text.trim()}`);
              ctx.skip('FUSE mount refused by the system');
            }
            throw new Error(`s3fs exited (${child.exitCode ?? child.signalCode}):\n${text}`);
          }
          if (Date.now() > deadline) throw new Error(`s3fs did not mount in 15 s:\n${text}`);
          await Promise.race([gone, sleep(100)]);
        }

        // An object put through S3 is visible as a file.
        expect(await fs.promises.readFile(path.join(mnt, 'pre', 'seed.txt'), 'utf8')).toBe(
          'put by aws-cli\n',
        );

        // Write files through FUSE: a small one, a nested one, one above the 10 MiB
        // multipart threshold.
        await fs.promises.writeFile(path.join(mnt, 'hello.txt'), 'hello through fuse\n');
        await fs.promises.mkdir(path.join(mnt, 'dir', 'sub'), { recursive: true });
        const big = randomBytes('s3fs-big', 12 * 1024 * 1024 + 3);
        await fs.promises.writeFile(path.join(mnt, 'dir', 'sub', 'big.bin'), big);

        const names = (await fs.promises.readdir(mnt)).sort();
        expect(names).toEqual(['dir', 'hello.txt', 'pre']);
        expect((await fs.promises.readdir(path.join(mnt, 'dir', 'sub'))).sort()).toEqual([
          'big.bin',
        ]);
        expect((await fs.promises.stat(path.join(mnt, 'dir', 'sub', 'big.bin'))).size).toBe(
          big.length,
        );
        const readBack = await fs.promises.readFile(path.join(mnt, 'dir', 'sub', 'big.bin'));
        expect(readBack.equals(big)).toBe(true);

        // The files really are objects on the server: read them with another client.
        const ls = await aws(['s3', 'ls', '--recursive', 's3://fsbucket/']);
        expect(lsKeys(ls.stdout)).toEqual(['dir/sub/big.bin', 'hello.txt', 'pre/seed.txt']);
        const bigOut = path.join(sc.dir, 'big.out');
        await aws(['s3', 'cp', 's3://fsbucket/dir/sub/big.bin', bigOut]);
        const hash = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
        expect(hash(await fs.promises.readFile(bigOut))).toBe(hash(big));

        // Overwrite, rename, delete.
        await fs.promises.writeFile(path.join(mnt, 'hello.txt'), 'changed\n');
        expect(await fs.promises.readFile(path.join(mnt, 'hello.txt'), 'utf8')).toBe('changed\n');
        await fs.promises.rename(path.join(mnt, 'hello.txt'), path.join(mnt, 'renamed.txt'));
        await fs.promises.rm(path.join(mnt, 'dir'), { recursive: true });
        await fs.promises.rm(path.join(mnt, 'pre', 'seed.txt'));
        expect((await fs.promises.readdir(mnt)).filter((n) => n !== 'pre')).toEqual([
          'renamed.txt',
        ]);
        const after = await aws(['s3', 'ls', '--recursive', 's3://fsbucket/']);
        expect(lsKeys(after.stdout)).toEqual(['renamed.txt']);
        const renamed = path.join(sc.dir, 'renamed.out');
        await aws(['s3', 'cp', 's3://fsbucket/renamed.txt', renamed]);
        expect(fs.readFileSync(renamed, 'utf8')).toBe('changed\n');
      } finally {
        // Always unmount and end s3fs (by its PID) before anything removes the temp dir.
        if (isMounted(mnt)) {
          await run('/usr/bin/fusermount', ['-u', mnt], {
            env: sc.env,
            timeoutMs: 10_000,
            allowFail: true,
          });
        }
        if (isMounted(mnt)) {
          await run('/bin/umount', ['-l', mnt], {
            env: sc.env,
            timeoutMs: 10_000,
            allowFail: true,
          });
        }
        if (s3fs) await stopChild(s3fs.child, 5_000);
        if (isMounted(mnt)) console.warn(`[conformance] s3fs: ${mnt} still mounted after cleanup`);
      }
      expect(isMounted(mnt)).toBe(false);
    },
    SCENARIO_TIMEOUT_MS,
  );
});
