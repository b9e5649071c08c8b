// Directory backup and restore (issue 13): `kubestorage admin directory backup` takes the
// leader's state into a file; `kubestorage directory --restore FILE` seeds a new one-replica
// group with it, which serves the same records, takes new writes, and hands the state to a
// replica that joins it. Real replicas on loopback.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../common/log.ts';
import { freePorts } from '../common/ports.ts';
import { checkSnapshot } from '../directory/engine/sm-snapshot.ts';
import { DirectoryServer } from '../directory/replica/raft-server.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import { once, useCleanups } from '../test/kit/fixture.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startTestDirectory, TEST_SECRET, testRecord } from '../test/kit/test-directory.ts';
import { until } from '../test/kit/until.ts';
import { main as adminDirectory } from './admin-directory.ts';
import { restoreDirectory } from './directory.ts';

const cleanups = useCleanups();
const logger = createLogger('restore-test', process.env.KUBESTORAGE_LOG_LEVEL ?? 'silent');

/** Runs `kubestorage admin directory ...` in this process; its output and exit code. */
async function cli(
  args: string[],
): Promise<{ out: string; bytes: Buffer; err: string; code: number }> {
  vi.stubEnv('KUBESTORAGE_CLUSTER_SECRET', TEST_SECRET);
  const out: Buffer[] = [];
  const err: string[] = [];
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out.push(Buffer.isBuffer(s) ? Buffer.from(s) : Buffer.from(String(s)));
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err.push(String(s));
    return true;
  });
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await adminDirectory(args);
    const bytes = Buffer.concat(out);
    return {
      out: bytes.toString('utf8'),
      bytes,
      err: err.join(''),
      code: Number(process.exitCode ?? 0),
    };
  } finally {
    process.exitCode = before;
    o.mockRestore();
    e.mockRestore();
    vi.unstubAllEnvs();
  }
}

describe('directory backup and restore', () => {
  it('restores every record backed up into a new group, which takes writes and joiners', async () => {
    const root = tempDir();
    const src = await startTestDirectory(path.join(root, 'src'), 3, { bucket: 'b' });
    cleanups.push(() => src.close());
    const keys = Array.from({ length: 60 }, (_, i) => `photos/${String(i).padStart(3, '0')}.jpg`);
    for (const [i, k] of keys.entries()) await src.client.putObject('b', testRecord(k, i + 1));
    const now = Date.now();
    await src.client.registerNode({
      id: 'ks-store-0',
      url: 'http://127.0.0.1:1',
      zone: 'z1',
      capacity: 1 << 30,
      state: 'online',
      registeredAt: now,
      stateSince: now,
    });

    // Asked through a follower first: it names the leader, which serves the backup.
    const leader = await until('a leader', async () => src.leader());
    const follower = src.urls.find((_, i) => src.replicas[i] !== leader)!;
    const file = path.join(root, 'dir.backup');
    const b = await cli([
      'backup',
      '--directory',
      `${follower},${src.urls.join(',')}`,
      '--out',
      file,
    ]);
    expect(b.err).toBe('');
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/at Raft index \d+: \d+ records, \d+ bytes, written to /);
    expect(fs.existsSync(`${file}.partial`)).toBe(false);
    const checked = await cli(['check', file]);
    expect(checked.code).toBe(0);
    expect(checked.out).toMatch(/: \d+ records, at Raft index [1-9]\d*: ok/);
    // To stdout (kubectl exec … --out - > FILE): the same stream, the summary on stderr.
    const piped = await cli(['backup', '--directory', src.urls.join(','), '--out', '-']);
    expect(piped.code).toBe(0);
    expect(piped.err).toMatch(/records, \d+ bytes, written to stdout/);
    const pipedCheck = await checkSnapshot(once(piped.bytes));
    expect(pipedCheck.frames).toBeGreaterThan(keys.length);
    // Written after the backup: not in it.
    await src.client.putObject('b', testRecord('after-the-backup', 1));

    // A damaged copy does not check out.
    const bad = path.join(root, 'bad.backup');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(bad, bytes.subarray(0, bytes.length - 7));
    const c = await cli(['check', bad]);
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/truncated snapshot stream/);

    // A new group of one, seeded from the file.
    const [p1, p2] = await freePorts(2);
    const url1 = `http://127.0.0.1:${p1}`;
    const url2 = `http://127.0.0.1:${p2}`;
    const data1 = path.join(root, 'r1');
    const topology = { id: 'r1', join: false, bootstrap: new Map([['r1', url1]]) };
    const applied = await restoreDirectory({ dataDir: data1, file, topology });
    expect(applied).toBeGreaterThan(0);
    // Only for a one-replica bootstrap.
    await expect(
      restoreDirectory({
        dataDir: path.join(root, 'rx'),
        file,
        topology: {
          id: 'r1',
          join: false,
          bootstrap: new Map([
            ['r1', url1],
            ['r2', url2],
          ]),
        },
      }),
    ).rejects.toThrow(/new group of one replica/);
    const base = { auth: src.auth, logger, listenHost: '127.0.0.1' };
    const { dir: r1 } = await DirectoryServer.start({
      ...base,
      id: 'r1',
      dataDir: data1,
      peers: new Map([['r1', url1]]),
      listenPort: p1!,
    });
    cleanups.push(() => r1.close());
    const client = new MetadataClient([url1], src.auth);
    cleanups.push(() => client.close());
    await until('the restored replica leads', async () => (r1.host.isLeader ? true : undefined));

    for (const [i, k] of keys.entries()) {
      expect(await client.getObject('b', k)).toMatchObject({ key: k, size: i + 1 });
    }
    expect(await client.getObject('b', 'after-the-backup')).toBeNull();
    expect((await client.getBucket('b'))?.owner).toBe('root');
    expect((await client.listNodes()).map((n) => n.id)).toEqual(['ks-store-0']);
    // New writes go on from there (the Raft log starts after the backup's index).
    await client.putObject('b', testRecord('after-the-restore', 7));
    expect(await client.getObject('b', 'after-the-restore')).toMatchObject({ size: 7 });
    expect(r1.host.status().conf.voters).toEqual(['r1']);
    // Started again with the flag still given: nothing is redone.
    expect(await restoreDirectory({ dataDir: data1, file, topology })).toBeNull();

    // A replica joining the restored group receives the whole state.
    const { dir: r2 } = await DirectoryServer.start({
      ...base,
      id: 'r2',
      dataDir: path.join(root, 'r2'),
      peers: new Map([
        ['r1', url1],
        ['r2', url2],
      ]),
      join: true,
      listenPort: p2!,
    });
    cleanups.push(() => r2.close());
    await r1.host.addNode('r2', url2);
    // Its state machine is swapped for the snapshot it receives: read the current one.
    const db2 = () => r2.host.stateMachine.db;
    await until(
      'the joiner has the restored records',
      async () => {
        try {
          return (await db2().getObject('b', 'after-the-restore')) ? true : undefined;
        } catch {
          return undefined; // closed by the swap this moment
        }
      },
      20_000,
    );
    expect(r2.host.status().snapshotIndex).toBeGreaterThanOrEqual(applied!);
    for (const [i, k] of keys.entries()) {
      expect(await db2().getObject('b', k)).toMatchObject({ key: k, size: i + 1 });
    }
  });
});
