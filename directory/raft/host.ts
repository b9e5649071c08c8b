// Runs the pure Raft core (core.ts) for real: a timer for ticks, RaftStorage for the log,
// RaftTransport for messages, and a LevelMetadata state machine fed by committed entries.
//
// One loop does everything in order, never two iterations at once: feed the core every
// input that queued up (messages, ticks, proposals, reads), take its Ready, persist it
// (synced), send its messages, apply its committed entries (one synced batch), answer reads
// and proposals. Inputs arriving while a batch is on disk make the next batch: that is the
// group commit — many proposals become one log entry, many entries one fsync.
//
// State-machine snapshots: the leader streams a consistent LevelDB snapshot taken when the
// send starts (its meta is rewritten to the index it really stands at); a follower imports
// it into `sm-next/` and swaps it in only after the Raft log has been reset to it (see
// swapInSnapshot and recoverSwap for the crash windows).
import fs from 'node:fs/promises';
import path from 'node:path';
import type { InternalAuth } from '../../common/internal-auth.ts';
import type { Logger } from '../../common/log.ts';
import { type Command, isJsonStable } from '../engine/commands.ts';
import { LevelMetadata } from '../engine/meta-level.ts';
import { exportSnapshot } from '../engine/sm-snapshot.ts';
import type { Outcome } from '../engine/writer.ts';
import { decodeJson, encodeJson } from '../wire/server.ts';
import { type ConfChange, Raft, type RaftStatus } from './core.ts';
import { stagingReceiver } from './snapshot-receiver.ts';
import { RaftStorage } from './storage.ts';
import { RaftTransport, type SnapshotMessage, type SnapshotReceiver } from './transport.ts';
import type { ConfState, Entry, Message, NodeId, Ready, SnapshotMeta } from './types.ts';

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

/** Suffix of the state-machine directory a snapshot transfer streams into (then + its id). */
const INCOMING = '-incoming-';

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

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export class RaftHost {
  private core!: Raft;
  private meta!: LevelMetadata;
  private readonly transport: RaftTransport;
  private applied = 0;
  private appliedConf: ConfState = { voters: [], learners: [] };
  /** Command bytes applied since the last compaction, and [index, bytes so far] per apply. */
  private appliedBytes = 0;
  private applyMarks: Array<[index: number, bytes: number]> = [];
  /** Bumped when a snapshot install resets the marks under a compaction in progress. */
  private marksGen = 0;
  private compacting = false;
  private readonly peers: Map<NodeId, string>;
  private inbox: Message[] = [];
  private ticks = 0;
  private proposals: Array<{ cmd: Command } & Waiter<Outcome>> = [];
  /** Proposed entries by index; `cmds` when they read the same after a JSON round trip. */
  private inflight = new Map<
    number,
    { term: number; waiters: Array<Waiter<Outcome>>; cmds?: Command[] }
  >();
  private barrierWaiters: Array<Waiter<void>> = [];
  /** Read-index requests in flight: a follower's go to the leader, which may be dead. */
  private reads = new Map<string, { waiters: Array<Waiter<void>>; at: number }>();
  private readsAtIndex: Array<{ index: number; waiters: Array<Waiter<void>> }> = [];
  private readSeq = 0;
  private actions: Array<() => void> = [];
  private running = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  /** Snapshots received in full, by index, each in its own directory, until swapped in. */
  private staged = new Map<number, { meta: SnapshotMeta; dir: string }>();
  /** When each peer was last heard from (performance.now()), for /status health. */
  private lastHeard = new Map<NodeId, number>();
  private leaderListeners: Array<() => void> = [];
  private lastLeader: NodeId | null = null;
  readonly stats = {
    entries: 0,
    commands: 0,
    readyLoops: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
  };

  private constructor(
    private readonly o: Required<Omit<RaftHostOptions, 'join'>> & { join: boolean },
    private readonly storage: RaftStorage,
  ) {
    this.peers = new Map(o.peers);
    this.snapshotReceiver = stagingReceiver(
      (id) => this.smDir(`${INCOMING}${id}`),
      (meta, msg, dir) => {
        const prev = this.staged.get(meta.index);
        if (prev && prev.dir !== dir) void fs.rm(prev.dir, { recursive: true, force: true });
        this.staged.set(meta.index, { meta, dir });
        this.deliver([msg]);
      },
    );
    this.transport = new RaftTransport({
      self: o.id,
      peers: new Map([...this.peers].filter(([id]) => id !== o.id)),
      auth: o.auth,
      onError: (peer, err) => o.logger.warn({ peer, err: err.message }, 'raft peer unreachable'),
    });
  }

  static async open(opts: RaftHostOptions): Promise<RaftHost> {
    const o = {
      ...opts,
      tickMs: opts.tickMs ?? 50,
      electionTicks: opts.electionTicks ?? 10,
      heartbeatTicks: opts.heartbeatTicks ?? 2,
      snapshotEvery: opts.snapshotEvery ?? 20_000,
      snapshotBytes: opts.snapshotBytes ?? 64 * 1024 * 1024,
      keepBytes: opts.keepBytes ?? 16 * 1024 * 1024,
      maxBatch: opts.maxBatch ?? 2_000,
      leaseMs:
        opts.leaseMs ??
        Math.max(
          0,
          Math.floor(
            0.8 * ((opts.electionTicks ?? 10) - 1) * (opts.tickMs ?? 50) - (opts.tickMs ?? 50),
          ),
        ),
      join: opts.join ?? false,
    };
    await fs.mkdir(o.dataDir, { recursive: true });
    const storage = await RaftStorage.open(path.join(o.dataDir, 'raft'));
    const host = new RaftHost(o, storage);
    await host.start();
    return host;
  }

  private smDir(suffix = ''): string {
    return path.join(this.o.dataDir, `sm${suffix}`);
  }

  private async start(): Promise<void> {
    let disk = await this.storage.load();
    const fresh = disk.snapshot === null && disk.entries.length === 0 && disk.hardState.term === 0;
    if (fresh && !this.o.join) {
      const voters = [...this.o.peers.keys()].sort();
      await this.storage.resetToSnapshot({ index: 0, term: 0, conf: { voters, learners: [] } });
      disk = await this.storage.load();
    }
    await this.recoverSwap(disk.snapshot?.index ?? 0);
    this.meta = await LevelMetadata.open(this.smDir());
    this.applied = await this.meta.appliedIndex();
    // Membership as of the applied index: the last conf entry at or below it.
    this.appliedConf = disk.snapshot?.conf ?? { voters: [], learners: [] };
    for (const e of disk.entries) {
      if (e.index > this.applied) break;
      if (e.kind === 'conf' && e.conf) this.appliedConf = e.conf;
      // The log kept from before the restart counts toward the next compaction.
      this.appliedBytes += e.data?.length ?? 0;
      this.applyMarks.push([e.index, this.appliedBytes]);
    }
    for (const [id, url] of await this.meta.raftPeers()) this.setPeerUrl(id, url);
    this.core = new Raft(
      {
        id: this.o.id,
        electionTicks: this.o.electionTicks,
        heartbeatTicks: this.o.heartbeatTicks,
        random: Math.random,
        leaseMs: this.o.leaseMs,
      },
      {
        hardState: disk.hardState,
        snapshot: disk.snapshot,
        entries: disk.entries,
        applied: this.applied,
      },
    );
    this.timer = setInterval(() => {
      this.ticks++;
      this.kick();
    }, this.o.tickMs);
    this.kick();
  }

  /** A crash between "log reset to the snapshot" and "state machine swapped" is finished here. */
  private async recoverSwap(snapIndex: number): Promise<void> {
    const exists = (p: string) =>
      fs.stat(p).then(
        () => true,
        () => false,
      );
    const [cur, next, old] = [this.smDir(), this.smDir('-next'), this.smDir('-old')];
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
    await fs.rm(next, { recursive: true, force: true });
    await fs.rm(old, { recursive: true, force: true });
    // Transfers cut short by the restart, or received and never swapped in.
    const base = path.basename(this.smDir(INCOMING));
    for (const name of await fs.readdir(this.o.dataDir)) {
      if (name.startsWith(base)) {
        await fs.rm(path.join(this.o.dataDir, name), { recursive: true, force: true });
      }
    }
  }

  // ------------------------------------------------------------- public API

  get stateMachine(): LevelMetadata {
    return this.meta;
  }

  get isLeader(): boolean {
    return this.core.isLeader;
  }

  get leaderId(): NodeId | null {
    return this.core.leaderId;
  }

  peerUrl(id: NodeId): string | undefined {
    return this.peers.get(id);
  }

  /** Resolves on the next leader change (or when a leader is already known). */
  onLeaderChange(fn: () => void): () => void {
    this.leaderListeners.push(fn);
    return () => {
      this.leaderListeners = this.leaderListeners.filter((f) => f !== fn);
    };
  }

  /** Leader only. Resolves with the command's outcome once committed and applied here. */
  propose(cmd: Command): Promise<Outcome> {
    if (!this.core.isLeader) return Promise.reject(new NotLeaderError(this.core.leaderId));
    return new Promise((resolve, reject) => {
      this.proposals.push({ cmd, resolve, reject });
      this.kick();
    });
  }

  /** Linearizable-read barrier: resolves once this replica has applied a confirmed read index. */
  readBarrier(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.barrierWaiters.push({ resolve, reject });
      this.kick();
    });
  }

  status(): RaftStatus & {
    appliedIndex: number;
    peers: Record<NodeId, { url?: string; matchIndex?: number; health: string }>;
  } {
    const s = this.core.status();
    const now = performance.now();
    const fresh = now - this.o.tickMs * this.o.electionTicks;
    const peers: Record<NodeId, { url?: string; matchIndex?: number; health: string }> = {};
    for (const id of [...s.conf.voters, ...s.conf.learners]) {
      if (id === this.o.id) continue;
      const p = s.progress[id];
      const heard = this.lastHeard.get(id);
      // From this replica's own traffic: a follower hears only from its leader, so of the
      // other followers it knows nothing. The core's activity flags are reset at every
      // quorum check and would make healthy peers look unreachable half the time.
      const health =
        heard !== undefined && heard >= fresh
          ? p && s.commitIndex - p.match > 1000
            ? 'lagging'
            : 'ok'
          : s.role === 'leader' || id === s.leaderId
            ? 'unreachable'
            : 'unknown';
      peers[id] = { url: this.peers.get(id), matchIndex: p?.match, health };
    }
    // Pre-vote is a kind of candidacy: /status (and the pod labels built on it) has four roles.
    const role = s.role === 'precandidate' ? 'candidate' : s.role;
    return { ...s, role, appliedIndex: this.applied, peers };
  }

  /** Adds a replica as a learner; it is promoted to voter once it has caught up. */
  addNode(id: NodeId, url: string): Promise<ConfState> {
    return this.confChange({ type: 'addLearner', node: id }, { id, url });
  }

  removeNode(id: NodeId): Promise<ConfState> {
    return this.confChange({ type: 'remove', node: id });
  }

  transferLeadership(to: NodeId): Promise<void> {
    return this.act(() => {
      if (!this.core.transferLeadership(to)) throw new Error(`cannot transfer to ${to}`);
    });
  }

  /** Resolves with the membership in force right after the change was appended (effective on append). */
  private async confChange(
    change: ConfChange,
    peer?: { id: NodeId; url: string },
  ): Promise<ConfState> {
    let conf: ConfState | undefined;
    await this.act(() => {
      if (peer) this.setPeerUrl(peer.id, peer.url);
      const p = this.core.proposeConf(change, peer ? JSON.stringify(peer) : undefined);
      if (!p) throw new Error(`membership change ${change.type} ${change.node} refused now`);
      conf = this.core.membership;
    });
    return conf!;
  }

  private act(fn: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.actions.push(() => {
        try {
          fn();
          resolve();
        } catch (e) {
          reject(e);
        }
      });
      this.kick();
    });
  }

  /** Messages from the transport. */
  deliver(msgs: Message[]): void {
    const now = performance.now();
    for (const m of msgs) {
      this.inbox.push(m);
      this.lastHeard.set(m.from, now);
    }
    this.kick();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    while (this.running) await new Promise((r) => setTimeout(r, 5));
    const err = new Error('directory replica shutting down');
    for (const p of this.proposals) p.reject(err);
    for (const f of this.inflight.values()) for (const w of f.waiters) w.reject(err);
    for (const w of this.barrierWaiters) w.reject(err);
    for (const r of this.reads.values()) for (const w of r.waiters) w.reject(err);
    for (const r of this.readsAtIndex) for (const w of r.waiters) w.reject(err);
    await this.transport.close();
    await this.meta.close();
    await this.storage.close();
  }

  private setPeerUrl(id: NodeId, url: string): void {
    this.peers.set(id, url);
    if (id !== this.o.id) this.transport.setPeer(id, url);
  }

  // ------------------------------------------------------------- the loop

  private kick(): void {
    if (this.running || this.closed) return;
    this.running = true;
    setImmediate(() => {
      this.loop().then(
        () => {
          this.running = false;
          if (this.hasInput()) this.kick();
        },
        (e) => {
          this.running = false;
          this.o.logger.fatal({ err: e }, 'raft loop failed: stopping this replica');
          void this.close();
        },
      );
    });
  }

  private hasInput(): boolean {
    return (
      this.inbox.length > 0 ||
      this.ticks > 0 ||
      this.actions.length > 0 ||
      this.barrierWaiters.length > 0 ||
      (this.proposals.length > 0 && this.core.isLeader)
    );
  }

  private async loop(): Promise<void> {
    for (let rounds = 0; rounds < 1000 && !this.closed; rounds++) {
      const hadInput = this.feed();
      const rd = this.core.ready();
      const empty =
        !rd.hardState &&
        rd.entries.length === 0 &&
        !rd.snapshot &&
        rd.messages.length === 0 &&
        rd.committed.length === 0 &&
        rd.reads.length === 0 &&
        rd.dropped.length === 0;
      if (!empty) await this.handleReady(rd);
      this.noticeLeader();
      if (!hadInput && empty) return;
    }
  }

  private feed(): boolean {
    // Lease reads run on real time: a stalled loop delays ticks, never the clock.
    this.core.setClock(performance.now());
    let any = false;
    // Ticks that piled up while the loop was on disk happened before (most of) the queued
    // messages: counted after them, they would shorten the time this replica refuses
    // votes after hearing from its leader — the promise leader leases rest on.
    if (this.ticks > 0 && this.reads.size > 0) this.expireReads();
    for (; this.ticks > 0; this.ticks--) this.core.tick();
    const inbox = this.inbox;
    this.inbox = [];
    for (const m of inbox) this.core.step(m);
    const actions = this.actions;
    this.actions = [];
    for (const a of actions) a();
    any = inbox.length > 0 || actions.length > 0;
    if (this.barrierWaiters.length > 0) {
      const id = `r${++this.readSeq}`;
      this.reads.set(id, { waiters: this.barrierWaiters, at: Date.now() });
      this.barrierWaiters = [];
      this.core.readIndex(id);
      any = true;
    }
    while (this.proposals.length > 0) {
      if (!this.core.isLeader) {
        const err = new NotLeaderError(this.core.leaderId);
        for (const p of this.proposals.splice(0)) p.reject(err);
        break;
      }
      const batch = this.proposals.splice(0, this.o.maxBatch);
      const list = batch.map((b) => b.cmd);
      const p = this.core.propose(encodeJson(list));
      if (!p) {
        const err = new NotLeaderError(this.core.leaderId);
        for (const b of batch) b.reject(err);
        continue;
      }
      // The leader applies these objects rather than parsing the entry back, when they are
      // what the followers will parse (object puts and deletes: strings and flags).
      this.inflight.set(p.index, {
        term: p.term,
        waiters: batch,
        cmds: list.every(isJsonStable) ? list : undefined,
      });
      any = true;
    }
    return any;
  }

  private async handleReady(rd: Ready): Promise<void> {
    this.stats.readyLoops++;
    if (rd.hardState || rd.entries.length > 0) await this.storage.save(rd.hardState, rd.entries);
    if (rd.snapshot) await this.swapInSnapshot(rd.snapshot);
    const plain: Message[] = [];
    for (const m of rd.messages) {
      if (m.type === 'snapshot') this.sendSnapshot(m);
      else plain.push(m);
    }
    if (plain.length > 0) this.transport.send(plain);
    if (rd.committed.length > 0) await this.apply(rd.committed);
    for (const r of rd.reads) {
      const pending = this.reads.get(r.id);
      this.reads.delete(r.id);
      if (pending) this.readsAtIndex.push({ index: r.index, waiters: pending.waiters });
    }
    for (const d of rd.dropped) {
      const pending = this.reads.get(d.id);
      this.reads.delete(d.id);
      for (const w of pending?.waiters ?? []) w.reject(new NotLeaderError(this.core.leaderId));
    }
    this.releaseReads();
    if (this.staged.size > 0) this.dropStaleSnapshots();
    this.maybeCompact();
    // Here, not only after applying: an idle cluster's learner catches up through heartbeats.
    this.autoPromote();
  }

  private async apply(entries: Entry[]): Promise<void> {
    // All commands of all committed entries go to LevelDB as one synced batch.
    const cmds: Command[] = [];
    const spans: Array<{ e: Entry; from: number; to: number }> = [];
    let conf: ConfState | null = null;
    let bytes = 0;
    for (const e of entries) {
      if (e.data) bytes += e.data.length;
      if (e.kind === 'cmd' && e.data) {
        const own = this.inflight.get(e.index);
        const list =
          own?.cmds && own.term === e.term ? own.cmds : (decodeJson(e.data) as Command[]);
        spans.push({ e, from: cmds.length, to: cmds.length + list.length });
        cmds.push(...list);
      } else if (e.kind === 'conf' && e.conf) {
        conf = e.conf;
        if (e.data) {
          const peer = JSON.parse(e.data) as { id: NodeId; url: string };
          this.setPeerUrl(peer.id, peer.url);
        }
      }
    }
    const last = entries[entries.length - 1] as Entry;
    const outcomes = await this.meta.applyReplicated(cmds, last.index, [...this.peers]);
    this.applied = last.index;
    this.appliedBytes += bytes;
    this.applyMarks.push([last.index, this.appliedBytes]);
    if (conf) this.appliedConf = conf;
    this.stats.entries += entries.length;
    this.stats.commands += cmds.length;
    for (const { e, from } of spans) {
      const f = this.inflight.get(e.index);
      if (!f) continue;
      this.inflight.delete(e.index);
      if (f.term !== e.term) {
        const err = new DroppedProposalError('proposal lost to a leader change; not applied');
        for (const w of f.waiters) w.reject(err);
        continue;
      }
      for (let i = 0; i < f.waiters.length; i++) {
        f.waiters[i]?.resolve(outcomes[from + i] as Outcome);
      }
    }
    for (const [index, f] of this.inflight) {
      if (index > this.applied) continue;
      this.inflight.delete(index);
      const err = new DroppedProposalError('proposal lost to a leader change; not applied');
      for (const w of f.waiters) w.reject(err);
    }
  }

  /** Staged snapshots the core refused: not past what is applied here, so never needed. */
  private dropStaleSnapshots(): void {
    for (const [index, st] of this.staged) {
      if (index > this.applied) continue;
      this.staged.delete(index);
      void fs.rm(st.dir, { recursive: true, force: true });
    }
  }

  /** A learner that has caught up becomes a voter (the leader proposes it). */
  private autoPromote(): void {
    if (!this.core.isLeader) return;
    const s = this.core.status();
    for (const id of s.conf.learners) {
      const p = s.progress[id];
      if (p && p.match >= s.commitIndex) {
        if (this.core.proposeConf({ type: 'promote', node: id })) {
          this.o.logger.info({ id }, 'learner caught up: promoting to voter');
        }
        return;
      }
    }
  }

  /** Nobody refuses a read index sent to a dead leader, so unanswered ones time out too. */
  private expireReads(): void {
    const limit = Date.now() - this.o.tickMs * this.o.electionTicks * 2;
    this.failReads((at) => at < limit, this.core.leaderId);
  }

  private failReads(which: (at: number) => boolean, lead: NodeId | null): void {
    for (const [id, r] of this.reads) {
      if (!which(r.at)) continue;
      this.reads.delete(id);
      const err = new NotLeaderError(lead);
      for (const w of r.waiters) w.reject(err);
    }
  }

  private releaseReads(): void {
    if (this.readsAtIndex.length === 0) return;
    const still: typeof this.readsAtIndex = [];
    for (const r of this.readsAtIndex) {
      if (r.index <= this.applied) for (const w of r.waiters) w.resolve();
      else still.push(r);
    }
    this.readsAtIndex = still;
  }

  private noticeLeader(): void {
    const lead = this.core.leaderId;
    if (lead === this.lastLeader) return;
    this.lastLeader = lead;
    this.o.logger.info({ leader: lead, term: this.core.currentTerm }, 'raft leader changed');
    if (lead !== this.o.id) {
      const err = new NotLeaderError(lead);
      for (const p of this.proposals.splice(0)) p.reject(err);
    }
    // A read index asked of the old leader will not come back: the caller retries.
    this.failReads(() => true, lead);
    for (const f of this.leaderListeners.slice()) f();
  }

  private maybeCompact(): void {
    if (this.compacting) return;
    const s = this.core.status();
    const byBytes = this.appliedBytes >= this.o.snapshotBytes;
    if (!byBytes && this.applied - s.snapshotIndex < this.o.snapshotEvery) return;
    // Up to `applied`, less a tail of keepBytes when the bytes triggered it.
    let index = this.applied;
    let upTo = this.applyMarks.length - 1;
    if (byBytes) {
      while (upTo >= 0 && this.appliedBytes - this.applyMarks[upTo]![1] < this.o.keepBytes) upTo--;
      if (upTo < 0) return;
      index = this.applyMarks[upTo]![0];
    }
    const term = this.core.termAt(index);
    const conf = this.core.confAt(index);
    if (term === undefined || conf === undefined || index <= s.snapshotIndex) return;
    const meta: SnapshotMeta = { index, term, conf };
    const dropped = this.applyMarks[upTo]?.[1] ?? this.appliedBytes;
    const gen = this.marksGen;
    // Applies are not synced one by one, so the log is the record until the state machine
    // is on disk. Flushing its memtables takes a while (a 32 MiB table file): the loop goes
    // on meanwhile, and the log is cut, by the loop, once the flush is done.
    this.compacting = true;
    this.meta
      .sync()
      .then(() => this.act(() => this.finishCompaction(meta, dropped, gen)))
      .catch((e) => this.o.logger.warn({ err: e }, 'log compaction skipped'))
      .finally(() => {
        this.compacting = false;
      });
  }

  private finishCompaction(meta: SnapshotMeta, dropped: number, gen: number): void {
    if (gen === this.marksGen) {
      this.applyMarks = this.applyMarks
        .filter(([i]) => i > meta.index)
        .map(([i, b]) => [i, b - dropped]);
      this.appliedBytes -= dropped;
    }
    // A snapshot installed meanwhile may have moved the log past it.
    if (meta.index <= this.core.status().snapshotIndex) return;
    if (this.core.termAt(meta.index) !== meta.term) return;
    this.core.compact(meta);
    void this.storage
      .compact(meta)
      .catch((e) => this.o.logger.error({ err: e }, 'log compaction failed'));
  }

  // ------------------------------------------------------------- snapshots

  private sendSnapshot(m: SnapshotMessage): void {
    const term = this.core.termAt(this.applied);
    if (term === undefined) return;
    // The state as of now (≥ the core's snapshot index): label it with its real index.
    const exp = exportSnapshot(this.meta);
    const meta: SnapshotMeta = { index: this.applied, term, conf: this.appliedConf };
    const msg: SnapshotMessage = { ...m, meta };
    this.stats.snapshotsSent++;
    this.transport
      .sendSnapshot(msg, { meta, open: () => exp.chunks() })
      .then(
        // false: one was already on its way there, whose outcome is reported instead.
        (sent) => (sent ? this.act(() => this.core.reportSnapshot(m.to, true)) : undefined),
        (e) => {
          this.o.logger.warn({ to: m.to, err: (e as Error).message }, 'snapshot send failed');
          return this.act(() => this.core.reportSnapshot(m.to, false));
        },
      )
      .finally(() => void exp.close());
  }

  /** The transport's receiving side: chunks go straight into a fresh LevelDB in sm-next/. */
  readonly snapshotReceiver: SnapshotReceiver;

  private async swapInSnapshot(meta: SnapshotMeta): Promise<void> {
    // Taken out before the first await: a transfer of the same snapshot finishing meanwhile
    // stages a copy of its own, dropped below as older than what is applied.
    const staged = this.staged.get(meta.index);
    if (!staged) throw new Error(`snapshot ${meta.index} accepted but not staged`);
    this.staged.delete(meta.index);
    // Order matters for crash safety: the import to sm-next, then the log, then the swap
    // (recoverSwap finishes it after a crash at any step).
    await fs.rm(this.smDir('-next'), { recursive: true, force: true });
    await fs.rename(staged.dir, this.smDir('-next'));
    await this.storage.resetToSnapshot(meta);
    await this.meta.close();
    await fs.rename(this.smDir(), this.smDir('-old'));
    await fs.rename(this.smDir('-next'), this.smDir());
    await fs.rm(this.smDir('-old'), { recursive: true, force: true });
    this.meta = await LevelMetadata.open(this.smDir());
    this.applied = meta.index;
    this.appliedConf = meta.conf;
    // The log restarts after the snapshot: nothing applied before it counts any more.
    this.appliedBytes = 0;
    this.applyMarks = [];
    this.marksGen++;
    for (const [id, url] of await this.meta.raftPeers()) this.setPeerUrl(id, url);
    // Proposals of ours up to the snapshot: committed, or overwritten by the new leader.
    // The snapshot cannot tell which, so their callers must not retry them blindly.
    for (const [index, f] of this.inflight) {
      if (index > meta.index) continue;
      this.inflight.delete(index);
      const err = new UnknownOutcomeError(
        `proposal at index ${index} overtaken by snapshot ${meta.index}: it may have been applied`,
      );
      for (const w of f.waiters) w.reject(err);
    }
    this.dropStaleSnapshots();
    this.stats.snapshotsInstalled++;
  }
}
