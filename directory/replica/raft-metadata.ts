// MetadataStore on a Raft directory replica: what the gateway gets from any replica.
//
// Mutations become commands (commands.ts) proposed to the Raft group: on the leader they
// join the next batch; on a follower they are forwarded to the leader over the metadata
// API. While no leader is known a call waits (in a bounded queue) for one and then goes
// on; past `waitMs`, or with the queue full, it fails with MetadataError('Unavailable'),
// which the gateway answers with 503. A call is never dropped without an answer.
//
// Reads are linearizable: a ReadIndex barrier (confirmed by a quorum of the leader's
// heartbeats) and then a read of this replica's own state machine once it has applied that
// index — so followers serve reads too.

import { DEFAULT_CONFIG, MAX_REPLICAS } from '../../common/config.ts';
import type { InternalAuth } from '../../common/internal-auth.ts';
import type { Hotness } from '../cluster/hotness.ts';
import type { Liveness } from '../cluster/liveness.ts';
import { checkCommand, proposedForm } from '../engine/commands.ts';
import type { LevelMetadata } from '../engine/meta-level.ts';
import type { MetadataStore, ObjectRecord, PutCondition } from '../model/api.ts';
import { MetadataError } from '../model/api.ts';
import type { HotSnapshot, ReadReport } from '../model/hot.ts';
import {
  type Command,
  type CommandResult,
  defineMethods,
  READ_METHODS,
  type ReadMethod,
  trimArgs,
  WRITE_METHODS,
  type WriteMethod,
} from '../model/methods.ts';
import { checkStored } from '../model/object-codec.ts';
import { chooseReplicas } from '../model/placement.ts';
import type { ClusterDirectory, Heartbeat, NodeLiveness, VolumeRecord } from '../model/topology.ts';
import { DroppedProposalError, NotLeaderError, UnknownOutcomeError } from '../raft/host.ts';
import { AmbiguousMetadataError, MetadataClient } from '../wire/client.ts';
import type { DirectoryHost } from './level-state-machine.ts';

/** Header on a call forwarded by a replica: the receiver never forwards it again. */
export const FORWARDED_HEADER = 'x-ks-forwarded';

export interface RaftMetadataOptions {
  auth: InternalAuth;
  /** Store heartbeats received by this replica (shared by its views). */
  liveness: Liveness;
  /** A store silent this long counts as down for placement (config cluster.offlineAfterMs). */
  aliveMs?: number;
  /** How long a call may wait for a leader (config directory.leaderWaitMs). */
  waitMs?: number;
  /** Calls allowed to wait for a leader at once (default 10 000). */
  queueLimit?: number;
  /** True for the instance serving calls another replica forwarded. */
  forwarded?: boolean;
  /** The read counts' aggregator (cluster/hotness.ts), acting while this replica leads. */
  hotness?: () => Hotness | undefined;
}

// The reads and writes are generated (the static block): a write is proposed as its command,
// a read served by the state machine after a ReadIndex barrier. This declares their types;
// the class itself writes out the methods that do more, and the replica-served ones.
export interface RaftMetadata
  extends Pick<MetadataStore, Exclude<WriteMethod | ReadMethod, 'putObjectStored'>> {}

export class RaftMetadata implements MetadataStore, ClusterDirectory {
  static {
    const proto = RaftMetadata.prototype;
    defineMethods(
      proto,
      WRITE_METHODS,
      (op) =>
        function (this: RaftMetadata, ...args: unknown[]) {
          return this.mutate({ op, args: trimArgs(args) } as Command);
        },
    );
    defineMethods(
      proto,
      READ_METHODS,
      (m) =>
        function (this: RaftMetadata, ...args: unknown[]) {
          return this.read((sm) =>
            (sm[m as ReadMethod] as (...a: unknown[]) => Promise<unknown>).apply(sm, args),
          );
        },
    );
  }

  private readonly registering = new Set<string>();
  private waiting = 0;
  private readonly clients = new Map<string, MetadataClient>();
  private readonly waitMs: number;

  constructor(
    private readonly host: DirectoryHost,
    private readonly o: RaftMetadataOptions,
  ) {
    this.waitMs = o.waitMs ?? DEFAULT_CONFIG.directory.leaderWaitMs;
  }

  /** The same replica serving calls forwarded to it (they wait here instead of hopping on). */
  forwardedView(): RaftMetadata {
    return new RaftMetadata(this.host, { ...this.o, forwarded: true });
  }

  private async mutate<C extends Command>(cmd: C): Promise<CommandResult<C['op']>> {
    type Result = CommandResult<C['op']>;
    const op = cmd.op;
    checkCommand(cmd);
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const lead = this.host.leaderId;
      if (this.o.forwarded && !this.host.isLeader) {
        // The forwarder waits and retries; a second hop could bounce between stale views.
        throw new MetadataError('Unavailable', 'this replica is not the leader');
      }
      if (this.host.isLeader) {
        try {
          const out = await withDeadline(this.host.propose(proposedForm(cmd)), deadline, op);
          if (!out.ok) throw out.error;
          return out.value as Result;
        } catch (e) {
          if (e instanceof UnknownOutcomeError) throw new AmbiguousMetadataError(e.message);
          // Both mean "not applied": safe to try again under the next leader.
          if (!(e instanceof NotLeaderError || e instanceof DroppedProposalError)) throw e;
        }
      } else if (lead !== null && !this.o.forwarded) {
        const url = this.host.peerUrl(lead);
        if (url) {
          try {
            const client = this.client(url);
            const fn = client[op] as (...a: unknown[]) => Promise<unknown>;
            return (await fn.apply(client, cmd.args)) as Result;
          } catch (e) {
            // Refused before it was proposed (the peer was not leader, or not reachable):
            // wait for the next leader. Anything else — a conflict, or an ambiguous failure
            // that may have committed — goes to the caller as it is.
            const refused = e instanceof MetadataError && e.code === 'Unavailable';
            if (!refused || e instanceof AmbiguousMetadataError) throw e;
          }
        }
      }
      await this.waitForLeader(deadline, lead);
    }
  }

  private async read<T>(fn: (sm: LevelMetadata) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const lead = this.host.leaderId;
      try {
        await this.host.readBarrier();
        return await fn(this.host.stateMachine.db);
      } catch (e) {
        if (!(e instanceof NotLeaderError)) throw e;
      }
      await this.waitForLeader(deadline, lead);
    }
  }

  /** Waits (bounded) until the leader differs from `seen`, or fails with Unavailable. */
  private async waitForLeader(deadline: number, seen: string | null): Promise<void> {
    const now = this.host.leaderId;
    if (now !== null && now !== seen) return; // elected while the last attempt was failing
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new MetadataError('Unavailable', `no directory leader within ${this.waitMs} ms`);
    }
    if (this.waiting >= (this.o.queueLimit ?? 10_000)) {
      throw new MetadataError('Unavailable', 'too many calls waiting for a directory leader');
    }
    this.waiting++;
    try {
      await new Promise<void>((resolve) => {
        // Re-check periodically too: the same leader may become reachable again.
        const timer = setTimeout(done, Math.min(left, 200));
        const off = this.host.onLeaderChange(() => {
          if (this.host.leaderId !== seen && this.host.leaderId !== null) done();
        });
        function done() {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    } finally {
      this.waiting--;
    }
  }

  private client(url: string): MetadataClient {
    let c = this.clients.get(url);
    if (!c) {
      c = new MetadataClient([url], this.o.auth, {
        // Short: a dead leader refuses at once; the loop above then waits for the next one.
        deadlineMs: 300,
        headers: { [FORWARDED_HEADER]: '1' },
      });
      this.clients.set(url, c);
    }
    return c;
  }

  putObjectStored(
    bucket: string,
    key: string,
    stored: string,
    cond: PutCondition | null,
  ): Promise<ObjectRecord | null> {
    // From the wire: checked once here; replicas store the text as it is (not re-parsed).
    checkStored(stored);
    return this.mutate({ op: 'putObjectStored', args: [bucket, key, stored, cond] });
  }

  // ---- Served by each replica itself (not commands)

  /**
   * Recorded in memory on this replica. The leader also registers a store it does not know
   * yet (or whose address or zone changed) — in the background, one proposal at a time.
   */
  async heartbeat(h: Heartbeat): Promise<void> {
    checkHeartbeat(h);
    this.o.liveness.record(h);
    if (!this.host.isLeader || this.registering.has(h.id)) return;
    const known = (await this.host.stateMachine.db.listNodes()).find((n) => n.id === h.id);
    // Capacity defaults to used + the disk's free bytes, which moves with anything else on
    // that disk: only a change of over 1 % is worth a Raft proposal.
    const sameCapacity =
      known !== undefined && Math.abs(known.capacity - h.capacity) <= known.capacity / 100;
    if (known && known.url === h.url && known.zone === h.zone && sameCapacity) return;
    this.registering.add(h.id);
    const now = Date.now();
    this.registerNode({
      id: h.id,
      url: h.url,
      zone: h.zone,
      capacity: h.capacity,
      state: 'online',
      registeredAt: now,
      stateSince: now,
    })
      .catch(() => undefined)
      .finally(() => this.registering.delete(h.id));
  }

  async liveness(): Promise<NodeLiveness[]> {
    return this.o.liveness.list();
  }

  /** Runs on the leader (forwarded there otherwise): placement needs the freshest view. */
  async allocateVolume(
    replicaCount: number,
    avoid: string[] = [],
  ): Promise<VolumeRecord & { urls: string[] }> {
    if (!Array.isArray(avoid) || !avoid.every((a) => typeof a === 'string')) {
      throw new Error('avoid must be a list of node ids');
    }
    if (!Number.isInteger(replicaCount) || replicaCount < 1 || replicaCount > MAX_REPLICAS) {
      throw new Error(`replicaCount must be an integer from 1 to ${MAX_REPLICAS}`);
    }
    if (!this.host.isLeader) {
      return this.leaderClient('place a volume').allocateVolume(replicaCount, avoid);
    }
    const aliveMs = this.o.aliveMs ?? DEFAULT_CONFIG.cluster.offlineAfterMs;
    const nodes = (await this.listNodes()).filter(
      (n) => n.state === 'online' && this.o.liveness.isAlive(n.id, aliveMs),
    );
    const held = volumeCounts(await this.listVolumes());
    const chosen = chooseReplicas(
      nodes.map((n) => ({
        ...n,
        used: this.o.liveness.get(n.id)?.h.used ?? 0,
        volumes: held.get(n.id) ?? 0,
      })),
      replicaCount,
      new Set(avoid),
    );
    if (!chosen) {
      throw new MetadataError(
        'Unavailable',
        `${replicaCount} replicas wanted, ${nodes.length} store node(s) online`,
      );
    }
    const id = await this.allocateVolumeId();
    const v: VolumeRecord = {
      id,
      replicas: chosen.map((n) => n.id),
      replicaCount,
      state: 'writable',
      createdAt: Date.now(),
      version: 1,
    };
    await this.createVolume(v);
    return { ...v, urls: chosen.map((n) => n.url) };
  }

  /**
   * Runs on the leader (forwarded there otherwise): the counts live in its memory, added up
   * by its Hotness, which answers from the hot table through this replica's linearizable
   * reads (see Hotness.report).
   */
  async reportReads(report: ReadReport): Promise<HotSnapshot> {
    if (!this.host.isLeader) return this.leaderClient('count reads').reportReads(report);
    const hotness = this.o.hotness?.();
    if (!hotness) throw new MetadataError('Unavailable', 'this replica counts no reads');
    return hotness.report(report);
  }

  /** The leader's client for a leader-only call this follower passes on (one hop at most). */
  private leaderClient(what: string): MetadataClient {
    const lead = this.host.leaderId;
    const url = lead === null ? undefined : this.host.peerUrl(lead);
    if (this.o.forwarded || !url) {
      throw new MetadataError('Unavailable', `no directory leader to ${what}`);
    }
    return this.client(url);
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close()));
  }
}

function checkHeartbeat(h: Heartbeat): void {
  const ok =
    h !== null &&
    typeof h === 'object' &&
    typeof h.id === 'string' &&
    /^[A-Za-z0-9._-]{1,64}$/.test(h.id) &&
    typeof h.url === 'string' &&
    /^https?:\/\/[^/\s]+$/.test(h.url) &&
    typeof h.zone === 'string' &&
    h.zone.length <= 64 &&
    Number.isFinite(h.capacity) &&
    Number.isFinite(h.used) &&
    Number.isFinite(h.load) &&
    Array.isArray(h.volumes);
  if (!ok) throw new MetadataError('PreconditionFailed', 'malformed heartbeat');
}

/** Node id → how many volumes list it as a replica. */
export function volumeCounts(volumes: VolumeRecord[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of volumes) for (const r of v.replicas) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

/**
 * A proposal in the log waits for its entry to be applied, which a leader cut off from its
 * followers may never see: past the call's deadline the caller gets an ambiguous answer
 * (the entry may still commit) rather than hanging until its HTTP timeout.
 */
function withDeadline<T>(p: Promise<T>, deadline: number, op: string): Promise<T> {
  const left = Math.max(0, deadline - Date.now());
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new UnknownOutcomeError(`${op}: no outcome within the deadline; may apply`)),
      // Never shorter than a second: a deadline spent waiting for a leader still leaves
      // the proposal time to commit.
      Math.max(left, 1_000),
    );
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
