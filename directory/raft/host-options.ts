// The Raft host's options and its outcome errors (host.ts re-exports them).
import { DEFAULT_CONFIG } from '../../common/config.ts';
import type { InternalAuth } from '../../common/internal-auth.ts';
import type { Logger } from '../../common/log.ts';
import type { Clock, HostTransport, LogStorage } from './host-io.ts';
import type { StateMachine, StateMachineStore } from './state-machine.ts';
import type { NodeId } from './types.ts';

export interface RaftHostOptions {
  id: NodeId;
  dataDir: string;
  /** Initial members and every known replica's base URL (self included). */
  peers: Map<NodeId, string>;
  /** Start outside the group and wait to be added (admin raft add) instead of bootstrapping. */
  join?: boolean;
  auth: InternalAuth;
  logger: Logger;
  tickMs?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  /** Entries applied since the last snapshot before the log is compacted. */
  snapshotEvery?: number;
  /**
   * Or command bytes applied since then (default 64 MiB): entries carry up to maxBatch
   * commands each, so a count alone let the log — held in memory too — grow to gigabytes.
   */
  snapshotBytes?: number;
  /**
   * Of a compaction triggered by bytes, the newest entries kept (default 16 MiB), so a
   * replica that was away a few seconds catches up from the log, not by a snapshot.
   */
  keepBytes?: number;
  /** Commands per log entry at most. */
  maxBatch?: number;
  /**
   * Leader lease for reads (core.ts), ms; 0 turns it off (every read a heartbeat round).
   * Default: 80 % of (electionTicks - 1) ticks, less one tick — replicas' clocks may run
   * up to 20 % apart (their ticks come late under load, which only makes them safer).
   */
  leaseMs?: number;
}

/** What the host runs on besides its options: the state machine, and the seams for tests. */
export interface RaftHostDeps<C, O, SM extends StateMachine<C, O>, S> {
  machines: StateMachineStore<C, O, SM, S>;
  /** Default: RaftStorage in dataDir/raft. */
  storage?: LogStorage;
  /** Default: RaftTransport (HTTP) to the peers' URLs. */
  transport?: HostTransport;
  /** Default: performance.now and Node's timers. */
  clock?: Clock;
  /** Election timeout randomness (default Math.random). */
  random?: () => number;
}

export class NotLeaderError extends Error {
  constructor(readonly leaderId: NodeId | null) {
    super(leaderId ? `not the leader (leader: ${leaderId})` : 'no leader');
  }
}

/** A proposal whose entry was overwritten by another leader's: it never took effect. */
export class DroppedProposalError extends Error {}

/**
 * A proposal whose fate this replica cannot tell: its entry went into a snapshot installed
 * from the new leader (committed or overwritten, the snapshot does not say), or it waited
 * past the caller's deadline. Retrying it could apply it twice.
 */
export class UnknownOutcomeError extends Error {}

export type ResolvedOptions = Required<Omit<RaftHostOptions, 'join'>> & { join: boolean };

export function withDefaults(opts: RaftHostOptions): ResolvedOptions {
  return {
    ...opts,
    tickMs: opts.tickMs ?? DEFAULT_CONFIG.directory.tickMs,
    electionTicks: opts.electionTicks ?? 10,
    heartbeatTicks: opts.heartbeatTicks ?? 2,
    snapshotEvery: opts.snapshotEvery ?? DEFAULT_CONFIG.directory.snapshotEvery,
    snapshotBytes: opts.snapshotBytes ?? DEFAULT_CONFIG.directory.snapshotBytes,
    keepBytes: opts.keepBytes ?? DEFAULT_CONFIG.directory.keepBytes,
    maxBatch: opts.maxBatch ?? 2_000,
    leaseMs:
      opts.leaseMs ??
      Math.max(
        0,
        Math.floor(
          0.8 *
            ((opts.electionTicks ?? 10) - 1) *
            (opts.tickMs ?? DEFAULT_CONFIG.directory.tickMs) -
            (opts.tickMs ?? DEFAULT_CONFIG.directory.tickMs),
        ),
      ),
    join: opts.join ?? false,
  };
}
