// Issue 12 item 3 on a Raft directory: access-key secrets an older version stored in clear
// (proposed through the Raft log, applied into every replica's state machine) are sealed
// when a gateway starts, and then no file of any replica holds one in clear — neither the
// Raft log nor the state machine's LevelDB — on the leader, on the followers, and on a
// replica that was down during the migration and catches up afterwards.
import crypto from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.ts';
import { assembleGateway, defaultConfig } from '../../compose/gateway.ts';
import { SecretBox } from '../../gateway/secret-box.ts';
import { withSealedKeys } from '../../gateway/users.ts';
import { LocalNeedleStore } from '../../store-node/api.ts';
import { Store } from '../../store-node/store.ts';
import { filesContaining } from '../../test/kit/files-at-rest.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { startTestDirectory, type TestDirectory } from '../../test/kit/test-directory.ts';
import { until } from '../../test/kit/until.ts';

interface Setup {
  d: TestDirectory;
  keys: Array<{ accessKey: string; secretKey: string; userId: string; createdAt: number }>;
  /** Replica files holding a clear secret, as `d1/raft/000005.log` (grep -r of each). */
  clear(replicas?: number[]): string[];
  /** The gateway start path that seals (compose/gateway.ts → sealStoredKeys). */
  migrate(): Promise<void>;
  close(): Promise<void>;
}

/** A 3-replica directory holding keys in clear, as an older version stored them. */
async function setup(): Promise<Setup> {
  const root = tempDir('ks-raft-seal-');
  const ids = ['d1', 'd2', 'd3'];
  const d = await startTestDirectory(path.join(root, 'directory'), 3);
  const store = await Store.open(path.join(root, 'store'), {
    compactCheckMs: 0,
    scrubIntervalMs: 0,
  });
  // Random: LevelDB's table blocks are snappy-compressed, and a secret repeating bytes seen
  // before it in a block would not appear literally, whatever the files hold.
  const keys = ['root', 'bob', 'bob'].map((userId, i) => ({
    accessKey: `KSCLEARRAFTKEY00000${i}`,
    secretKey: crypto.randomBytes(24).toString('hex'),
    userId,
    createdAt: 1,
  }));
  const clear = (replicas = [0, 1, 2]) =>
    keys.flatMap((k) =>
      replicas.flatMap((i) =>
        filesContaining(path.join(root, 'directory', ids[i]!), k.secretKey).map(
          (f) => `${ids[i]}/${f}`,
        ),
      ),
    );
  await until('a leader', () => d.leader());
  // The old path: key records in clear, proposed through the Raft log as they came.
  await d.client.createUser({ id: 'root', displayName: 'root', createdAt: 1 });
  await d.client.createUser({ id: 'bob', displayName: 'bob', createdAt: 1 });
  for (const k of keys) await d.client.addKey(k);
  const box = SecretBox.fromAuth(d.auth);
  return {
    d,
    keys,
    clear,
    async migrate() {
      const gw = await assembleGateway({
        cfg: defaultConfig(),
        log: createLogger('seal-migration-test', 'silent'),
        meta: { open: d.client },
        data: { needles: new LocalNeedleStore(store) },
        root: { accessKey: keys[0]!.accessKey, secretKey: keys[0]!.secretKey },
        sealing: box,
      });
      await gw.close();
      // Sealed as stored, and they still open to the secrets they had.
      const stored = await d.client.listKeys();
      expect(stored.map((k) => k.secretKey.startsWith('ks1:'))).toEqual([true, true, true]);
      const opened = await withSealedKeys(d.client, box).listKeys();
      expect(opened.map((k) => k.secretKey).sort()).toEqual(keys.map((k) => k.secretKey).sort());
    },
    async close() {
      await d.close();
      await store.close();
    },
  };
}

/** Waits until `clear()` finds nothing; fails listing the files that still hold a secret. */
async function noClearCopy(what: string, clear: () => string[]): Promise<void> {
  let left: string[] = [];
  // A file may vanish between listing and reading it while LevelDB compacts: poll again.
  await until(
    what,
    () => {
      left = clear();
      return left.length === 0;
    },
    10_000,
    { retryErrors: true },
  ).catch(() => {
    throw new Error(`${what}: still in clear in ${left.join(', ')}`);
  });
}

describe('sealing secrets stored in clear, on a Raft directory', () => {
  it('leaves no clear copy in any replica’s files, its Raft log included', async () => {
    const s = await setup();
    try {
      // Every replica holds them in clear, in its log or its state machine.
      await until('the clear keys on every replica', () =>
        [0, 1, 2].every((i) => s.clear([i]).length > 0),
      );
      await s.migrate();
      await noClearCopy('no clear secret on any replica', () => s.clear());
    } finally {
      await s.close();
    }
    // Stopped (memtables flushed or not), grep -r of every data directory finds none.
    expect(s.clear()).toEqual([]);
  }, 60_000);

  it('a replica down during the migration drops its clear copies when it catches up', async () => {
    const s = await setup();
    try {
      await until('the clear keys on d3', () => s.clear([2]).length > 0);
      await s.d.stop(2);
      await s.migrate();
      await noClearCopy('no clear secret on d1 and d2', () => s.clear([0, 1]));
      // Its log still has the entries that carried them, and the others' logs no longer:
      // it catches up from a snapshot.
      expect(s.clear([2])).not.toEqual([]);
      await s.d.restart(2);
      await until(
        'd3 caught up',
        async () => {
          // Read as the snapshot is swapped in, the state machine may be closed: read again.
          const k = await s.d.replicas[2]?.host.stateMachine.db.getKey(s.keys[1]!.accessKey);
          return k?.secretKey.startsWith('ks1:');
        },
        10_000,
        { retryErrors: true },
      );
      await noClearCopy('no clear secret on d3', () => s.clear([2]));
    } finally {
      await s.close();
    }
    expect(s.clear()).toEqual([]);
  }, 60_000);
});
