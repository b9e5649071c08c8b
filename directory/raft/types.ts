// Types shared by the Raft core (core.ts), its storage, its transport and the simulator.
// Everything here is plain JSON-able data: messages cross HTTP as JSON, entries and hard
// state are stored as JSON in LevelDB.

export type NodeId = string;

export type Role = 'follower' | 'candidate' | 'precandidate' | 'leader' | 'learner';

/** Voters decide elections and commits; learners only receive the log. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

/**
 * One log entry. `cmd` carries an application payload (opaque to Raft, usually a JSON
 * batch of commands); `conf` a membership change that takes effect as soon as it is
 * appended (Raft dissertation §4.1); `noop` is the entry a new leader appends to commit
 * entries of earlier terms.
 */
export interface Entry {
  index: number;
  term: number;
  kind: 'cmd' | 'conf' | 'noop';
  data?: string;
  conf?: ConfState;
}

/** What must be on disk (synced) before messages that depend on it are sent. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

/** Describes a snapshot; the data itself travels outside the core (host / transport). */
export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

export type Message =
  | { type: 'prevote'; from: NodeId; to: NodeId; term: number; lastIndex: number; lastTerm: number }
  | { type: 'prevoteResp'; from: NodeId; to: NodeId; term: number; granted: boolean }
  | {
      type: 'vote';
      from: NodeId;
      to: NodeId;
      term: number;
      lastIndex: number;
      lastTerm: number;
      /** Set by leadership transfer: bypasses the leader-stickiness check. */
      transfer?: boolean;
    }
  | { type: 'voteResp'; from: NodeId; to: NodeId; term: number; granted: boolean }
  | {
      type: 'append';
      from: NodeId;
      to: NodeId;
      term: number;
      prevIndex: number;
      prevTerm: number;
      entries: Entry[];
      commit: number;
      /** Read-index round this message confirms leadership for (0 = none). */
      readSeq: number;
    }
  | {
      type: 'appendResp';
      from: NodeId;
      to: NodeId;
      term: number;
      success: boolean;
      /** On success: the last index now matching the leader. On failure: the prevIndex refused. */
      index: number;
      /** On failure: the follower's last index, where the leader may retry from. */
      hint: number;
      readSeq: number;
    }
  /** A follower asks the leader for a read index on behalf of its client. */
  | { type: 'readIndex'; from: NodeId; to: NodeId; term: number; id: string }
  | { type: 'readIndexResp'; from: NodeId; to: NodeId; term: number; id: string; index: number }
  | { type: 'snapshot'; from: NodeId; to: NodeId; term: number; meta: SnapshotMeta }
  | { type: 'timeoutNow'; from: NodeId; to: NodeId; term: number };

export type MessageType = Message['type'];

/** A linearizable read: safe to serve from the state machine once applied ≥ index. */
export interface ReadState {
  id: string;
  index: number;
}

/**
 * Everything a step of the core produced. The host must, in this order: persist
 * `hardState` and `entries` (synced; entries may overwrite a conflicting suffix), install
 * `snapshot` if set, then send `messages`, then apply `committed` to the state machine.
 */
export interface Ready {
  hardState?: HardState;
  /** Entries to append to the log (replacing any entries at ≥ entries[0].index). */
  entries: Entry[];
  /** Snapshot accepted from the leader: the host replaces its state with the one it received. */
  snapshot?: SnapshotMeta;
  messages: Message[];
  committed: Entry[];
  reads: ReadState[];
  /** Reads or proposals the core refused (not leader, transfer in progress, …). */
  dropped: Array<{ id: string; reason: string }>;
}
