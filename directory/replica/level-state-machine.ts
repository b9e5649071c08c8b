// The directory's LevelDB (engine/meta-level.ts) as the Raft host's state machine, and the
// replica's state-machine directories as its store:
//   sm/                 the current state machine
//   sm-incoming-<id>/   a snapshot transfer's import, then staged until swapped in
//   sm-next/, sm-old/   the two sides of a swap (only during one, or after a crash in one)
// A follower imports a leader's snapshot into sm-incoming-<id>/ and swaps it in only after
// the Raft log has been reset to it; open() finishes or undoes a swap a crash cut short.
import fs from 'node:fs/promises';
import path from 'node:path';
import { type Command, isJsonStable } from '../engine/commands.ts';
import { LevelMetadata } from '../engine/meta-level.ts';
import { exportSnapshot, importSnapshot } from '../engine/sm-snapshot.ts';
import type { Outcome } from '../engine/writer.ts';
import type { RaftHost } from '../raft/host.ts';
import type { PurgingMachine } from '../raft/host-compaction.ts';
import type { StateMachine, StateMachineStore } from '../raft/state-machine.ts';
import type { NodeId } from '../raft/types.ts';
import { decodeJson, encodeJson } from '../wire/server.ts';

export class LevelStateMachine implements StateMachine<Command, Outcome>, PurgingMachine {
  /** A replaceKeySecret applied (or found marked at open) and not yet purged from disk. */
  private purge = false;
  /** Bumped by every apply that may have marked a purge: a check that raced one is void. */
  private applies = 0;

  constructor(readonly db: LevelMetadata) {}

  /** The copy in `db`, asking for a purge if its files may still hold replaced secrets. */
  static async open(db: LevelMetadata): Promise<LevelStateMachine> {
    const sm = new LevelStateMachine(db);
    sm.purge = (await db.keyPurgeMark()) !== undefined;
    return sm;
  }

  appliedIndex(): Promise<number> {
    return this.db.appliedIndex();
  }

  peers(): Promise<Array<[NodeId, string]>> {
    return this.db.raftPeers();
  }

  async apply(cmds: Command[], index: number, peers: Array<[NodeId, string]>): Promise<Outcome[]> {
    const out = await this.db.applyReplicated(cmds, index, peers);
    // A secret stored in clear was (maybe) replaced: its old value is in this replica's
    // state-machine files and in the log, on every replica, until they are compacted. Each
    // replica asks its own host for that on applying it (issue 12 item 3).
    if (cmds.some((c) => c.op === 'replaceKeySecret')) {
      this.applies++;
      this.purge = true;
    }
    return out;
  }

  // ---- PurgingMachine (raft/host-compaction.ts): the host compacts its log, then us.

  purgeWanted(): boolean {
    return this.purge;
  }

  async beginPurge(): Promise<string | null> {
    const seen = this.applies;
    const mark = await this.db.keyPurgeMark();
    if (mark === undefined && seen === this.applies) this.purge = false;
    return mark ?? null;
  }

  async endPurge(mark: string): Promise<void> {
    await this.db.compactAccessKeys(mark);
    await this.beginPurge();
  }

  sync(): Promise<void> {
    return this.db.sync();
  }

  exportSnapshot() {
    return exportSnapshot(this.db);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

/** A directory replica's Raft host; a staged snapshot is the directory it was imported into. */
export type DirectoryHost = RaftHost<Command, Outcome, LevelStateMachine, string>;

/** Prefix of a transfer's import directory (then its id). */
const INCOMING = '-incoming-';

const exists = (p: string) =>
  fs.stat(p).then(
    () => true,
    () => false,
  );

export function levelMachines(
  dataDir: string,
): StateMachineStore<Command, Outcome, LevelStateMachine, string> {
  const smDir = (suffix = '') => path.join(dataDir, `sm${suffix}`);
  const rm = (dir: string) => fs.rm(dir, { recursive: true, force: true });
  const openCurrent = async () => LevelStateMachine.open(await LevelMetadata.open(smDir()));

  /** A crash between "log reset to the snapshot" and "state machine swapped" is finished here. */
  async function recoverSwap(snapIndex: number): Promise<void> {
    const [cur, next, old] = [smDir(), smDir('-next'), smDir('-old')];
    if (!(await exists(cur)) && (await exists(next))) await fs.rename(next, cur);
    // Cut between moving the state machine aside and a failed rename of the new one.
    if (!(await exists(cur)) && (await exists(old))) await fs.rename(old, cur);
    if (await exists(next)) {
      const sm = await LevelMetadata.open(cur);
      const applied = await sm.appliedIndex();
      await sm.close();
      if (applied < snapIndex) {
        await fs.rename(cur, old);
        await fs.rename(next, cur);
      }
    }
    await rm(next);
    await rm(old);
    // Transfers cut short by the restart, or received and never swapped in.
    const base = path.basename(smDir(INCOMING));
    for (const name of await fs.readdir(dataDir)) {
      if (name.startsWith(base)) await rm(path.join(dataDir, name));
    }
  }

  return {
    encode: (cmds) => encodeJson(cmds),
    decode: (data) => decodeJson(data) as Command[],
    stable: isJsonStable,
    async open(snapIndex) {
      await fs.mkdir(dataDir, { recursive: true });
      await recoverSwap(snapIndex);
      return openCurrent();
    },
    async import(id, chunks) {
      const dir = smDir(`${INCOMING}${id}`);
      await importSnapshot(dir, chunks);
      return dir;
    },
    drop: (id) => rm(smDir(`${INCOMING}${id}`)),
    discard: rm,
    // Order matters for crash safety: the import to sm-next, then (the host) the log, then
    // the swap; recoverSwap finishes it after a crash at any step.
    async prepare(dir) {
      await rm(smDir('-next'));
      await fs.rename(dir, smDir('-next'));
    },
    async swapIn(cur) {
      await cur.close();
      await fs.rename(smDir(), smDir('-old'));
      await fs.rename(smDir('-next'), smDir());
      await rm(smDir('-old'));
      return openCurrent();
    },
  };
}
