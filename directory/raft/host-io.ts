// The host's outside world as interfaces: time, the durable log and the peers. Production
// gets the real ones by default (performance.now and Node timers, RaftStorage on
// classic-level, RaftTransport over HTTP); the simulator injects a virtual clock, an
// in-memory disk and its faulty network, so seeds drive the real host loop.
import type { SnapshotMessage, SnapshotSource } from './transport.ts';
import type { Entry, HardState, Message, NodeId, SnapshotMeta } from './types.ts';

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Calls fn every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
  /** Calls fn once the current work (and its promise callbacks) is done. */
  soon(fn: () => void): void;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  every(ms, fn) {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
  soon: (fn) => void setImmediate(fn),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** What a restart reads back from the log (see RaftStorage for the invariant). */
export interface LogState {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  /** All entries after snapshot.index (or from 1), in order, without holes. */
  entries: Entry[];
}

/** The durable Raft log; every write is synced when its promise resolves. */
export interface LogStorage {
  load(): Promise<LogState>;
  /** Hard state and entries (replacing stored ones at >= entries[0].index), one write. */
  save(hardState: HardState | undefined, entries: Entry[]): Promise<void>;
  /** A snapshot covers the log up to meta.index: those entries go. */
  compact(meta: SnapshotMeta): Promise<void>;
  /** The whole log is replaced by a leader's snapshot. */
  resetToSnapshot(meta: SnapshotMeta): Promise<void>;
  close(): Promise<void>;
}

/** Messages to peers (fire and forget: Raft retransmits) and snapshot streams. */
export interface HostTransport {
  send(msgs: Message[]): void;
  /**
   * Streams a snapshot then delivers msg: true once done; false at once when one is already
   * on its way to that peer; rejects when the transfer failed.
   */
  sendSnapshot(msg: SnapshotMessage, source: SnapshotSource): Promise<boolean>;
  setPeer(id: NodeId, url: string): void;
  close(): Promise<void>;
}
