// What the Raft host (host.ts) needs of the state machine it replicates, and of the place
// its copies live. The host knows commands only as values to encode into entries and hand
// back in order; everything about their meaning, storage and snapshot format is behind
// these interfaces (the directory's LevelDB is replica/level-state-machine.ts, the
// simulator's in-memory register sim/host-world.ts).
import type { NodeId } from './types.ts';

/** One copy of the state, as of some applied log index. */
export interface StateMachine<C, O> {
  /** The last log index applied (recorded atomically with the state); 0 when none. */
  appliedIndex(): Promise<number>;
  /** The replica URLs recorded by apply(): a snapshot carries them to a new replica. */
  peers(): Promise<Array<[NodeId, string]>>;
  /**
   * Applies the commands of committed entries, in order, as one atomic step that also
   * records `index` and `peers`. Need not be durable on return (the log is): see sync().
   * Resolves with one outcome per command (a failed command is an outcome, not a throw).
   */
  apply(cmds: C[], index: number, peers: Array<[NodeId, string]>): Promise<O[]>;
  /** Makes every completed apply durable: the log may then be compacted past them. */
  sync(): Promise<void>;
  /** The state as of this call, as a chunk stream for a snapshot transfer. */
  exportSnapshot(): SnapshotExport;
  close(): Promise<void>;
}

export interface SnapshotExport {
  /** May be iterated once; releases what it holds when done or abandoned. */
  chunks(): AsyncIterable<Buffer>;
  /** Releases the export when chunks() is not (fully) consumed. Idempotent. */
  close(): Promise<void>;
}

/** Receives a snapshot transfer's chunks into a staged copy (the snapshot receiver's side). */
export interface SnapshotImporter<S> {
  /** Resolves once the whole stream is in and durable; rejects on a bad or cut stream. */
  import(transferId: string, chunks: AsyncIterable<Buffer>): Promise<S>;
  /** Removes whatever the transfer left (staged copy included). */
  drop(transferId: string): Promise<void>;
}

/**
 * The replica's state-machine copies: the current one, snapshots staged by transfers, and
 * the swap between them, which must survive a crash at any step (open() finishes or undoes
 * it). `S` is a staged snapshot.
 */
export interface StateMachineStore<C, O, SM extends StateMachine<C, O>, S = unknown>
  extends SnapshotImporter<S> {
  /** An entry's payload for a batch of commands, and back. */
  encode(cmds: C[]): string;
  decode(data: string): C[];
  /** Commands that decode equal to themselves: the leader applies its own objects. */
  stable(cmd: C): boolean;
  /**
   * Opens the current copy after a restart, having finished or undone a swap a crash cut
   * short (`snapIndex`: the log's snapshot index) and dropped unfinished transfers.
   */
  open(snapIndex: number): Promise<SM>;
  /** Throws a staged snapshot away (never installed). */
  discard(staged: S): Promise<void>;
  /** Install, step 1 (before the log is reset to the snapshot): the staged copy goes next. */
  prepare(staged: S): Promise<void>;
  /** Install, step 2 (after the log reset): closes `cur`, swaps the prepared copy in, opens it. */
  swapIn(cur: SM): Promise<SM>;
}
