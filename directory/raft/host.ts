// Runs the pure Raft core (core.ts) for real: a timer for ticks, RaftStorage for the log,
// RaftTransport for messages, and a state machine (state-machine.ts; the directory's is
// LevelDB) fed by committed entries. Clock, log storage and transport can be injected
// (host-io.ts): the simulator runs this very loop on virtual time and a faulty network.
//
// One loop does everything in order, never two iterations at once: feed the core every
// input that queued up (messages, ticks, proposals, reads), take its Ready, persist it
// (synced), send its messages, apply its committed entries (one synced batch), answer reads
// and proposals. Inputs arriving while a batch is on disk make the next batch: that is the
// group commit — many proposals become one log entry, many entries one fsync.
//
// State-machine snapshots: the leader streams a consistent snapshot taken when the send
// starts (its meta is rewritten to the index it really stands at); a follower stages it
// and swaps it in only after the Raft log has been reset to it (see swapInSnapshot, and
// StateMachineStore.open for the crash windows).
import fs from 'node:fs/promises';
import path from 'node:path';
import { type ConfChange, Raft, type RaftStatus } from './core.ts';
import {
  ApplyMarks,
  type PurgingMachine,
  purgeableLog,
  purgingMachine,
} from './host-compaction.ts';
import { type Clock, type HostTransport, type LogStorage, realClock } from './host-io.ts';
import {
  DroppedProposalError,
  NotLeaderError,
  type RaftHostDeps,
  type RaftHostOptions,
  type ResolvedOptions,
  UnknownOutcomeError,
  withDefaults,
} from './host-options.ts';
import { ReadTracker, type Waiter } from './host-reads.ts';
import { stagingReceiver } from './snapshot-receiver.ts';
import type { StateMachine, StateMachineStore } from './state-machine.ts';
import { RaftStorage } from './storage.ts';
import { RaftTransport, type SnapshotMessage, type SnapshotReceiver } from './transport.ts';
import type { ConfState, Entry, Message, NodeId, Ready, SnapshotMeta } from './types.ts';

export {
  DroppedProposalError,
  NotLeaderError,
  type RaftHostDeps,
  type RaftHostOptions,
  UnknownOutcomeError,
} from './host-options.ts';

/** A purge that failed (a disk error) is tried again after this long. */
const PURGE_RETRY_MS = 10_000;

export class RaftHost<C, O, SM extends StateMachine<C, O> = StateMachine<C, O>, S = unknown> {
  private core!: Raft;
  private meta!: SM;
  private readonly transport: HostTransport;
  private readonly clock: Clock;
  private applied = 0;
  private appliedConf: ConfState = { voters: [], learners: [] };
  private readonly marks = new ApplyMarks();
  private compacting = false;
  /** clock.now() before which a purge that failed is not tried again. */
  private purgeRetryAt = 0;
  private readonly peers: Map<NodeId, string>;
  private inbox: Message[] = [];
  private ticks = 0;
  private proposals: Array<{ cmd: C } & Waiter<O>> = [];
  /** Proposed entries by index; `cmds` when they read the same after a JSON round trip. */
  private inflight = new Map<number, { term: number; waiters: Array<Waiter<O>>; cmds?: C[] }>();
  private readonly reads = new ReadTracker();
  private actions: Array<() => void> = [];
  private running = false;
  private closed = false;
  private stopTicks: (() => void) | undefined;
  /** Snapshots received in full, by index, each staged on its own, until swapped in. */
  private staged = new Map<number, { meta: SnapshotMeta; copy: S }>();
  /** When each peer was last heard from (clock.now()), for /status health. */
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

  private readonly machines: StateMachineStore<C, O, SM, S>;
  private readonly random: () => number;

  private constructor(
    private readonly o: ResolvedOptions,
    private readonly storage: LogStorage,
    deps: RaftHostDeps<C, O, SM, S>,
  ) {
    this.peers = new Map(o.peers);
    this.machines = deps.machines;
    this.clock = deps.clock ?? realClock;
    this.random = deps.random ?? Math.random;
    this.snapshotReceiver = stagingReceiver(this.machines, (meta, msg, copy) => {
      const prev = this.staged.get(meta.index);
      if (prev && prev.copy !== copy) this.discard(prev.copy);
      this.staged.set(meta.index, { meta, copy });
      this.deliver([msg]);
    });
    const others = new Map([...this.peers].filter(([id]) => id !== o.id));
    if (deps.transport) {
      this.transport = deps.transport;
      for (const [id, url] of others) this.transport.setPeer(id, url);
    } else {
      this.transport = new RaftTransport({
        self: o.id,
        peers: others,
        auth: o.auth,
        onError: (peer, err) => o.logger.warn({ peer, err: err.message }, 'raft peer unreachable'),
      });
    }
  }

  static async open<C, O, SM extends StateMachine<C, O>, S>(
    opts: RaftHostOptions,
    deps: RaftHostDeps<C, O, SM, S>,
  ): Promise<RaftHost<C, O, SM, S>> {
    const o = withDefaults(opts);
    let storage = deps.storage;
    if (!storage) {
      await fs.mkdir(o.dataDir, { recursive: true });
      storage = await RaftStorage.open(path.join(o.dataDir, 'raft'));
    }
    const host = new RaftHost(o, storage, deps);
    await host.start();
    return host;
  }

  private discard(copy: S): void {
    this.machines.discard(copy).catch((e) => {
      this.o.logger.warn({ err: e }, 'staged snapshot not removed');
    });
  }

  private async start(): Promise<void> {
    let disk = await this.storage.load();
    const fresh = disk.snapshot === null && disk.entries.length === 0 && disk.hardState.term === 0;
    if (fresh && !this.o.join) {
      const voters = [...this.o.peers.keys()].sort();
      await this.storage.resetToSnapshot({ index: 0, term: 0, conf: { voters, learners: [] } });
      disk = await this.storage.load();
    }
    this.meta = await this.machines.open(disk.snapshot?.index ?? 0);
    this.applied = await this.meta.appliedIndex();
    // Membership as of the applied index: the last conf entry at or below it.
    this.appliedConf = disk.snapshot?.conf ?? { voters: [], learners: [] };
    for (const e of disk.entries) {
      if (e.index > this.applied) break;
      if (e.kind === 'conf' && e.conf) this.appliedConf = e.conf;
      // The log kept from before the restart counts toward the next compaction.
      this.marks.add(e.index, e.data?.length ?? 0);
    }
    for (const [id, url] of await this.meta.peers()) this.setPeerUrl(id, url);
    this.core = new Raft(
      {
        id: this.o.id,
        electionTicks: this.o.electionTicks,
        heartbeatTicks: this.o.heartbeatTicks,
        random: this.random,
        leaseMs: this.o.leaseMs,
      },
      {
        hardState: disk.hardState,
        snapshot: disk.snapshot,
        entries: disk.entries,
        applied: this.applied,
      },
    );
    this.stopTicks = this.clock.every(this.o.tickMs, () => {
      this.ticks++;
      this.kick();
    });
    this.kick();
  }

  // ------------------------------------------------------------- public API

  get stateMachine(): SM {
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
  propose(cmd: C): Promise<O> {
    if (!this.core.isLeader) return Promise.reject(new NotLeaderError(this.core.leaderId));
    return new Promise((resolve, reject) => {
      this.proposals.push({ cmd, resolve, reject });
      this.kick();
    });
  }

  /** Linearizable-read barrier: resolves once this replica has applied a confirmed read index. */
  readBarrier(): Promise<void> {
    const p = this.reads.wait();
    this.kick();
    return p;
  }

  status(): RaftStatus & {
    appliedIndex: number;
    peers: Record<NodeId, { url?: string; matchIndex?: number; health: string }>;
  } {
    const s = this.core.status();
    const now = this.clock.now();
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
    const now = this.clock.now();
    for (const m of msgs) {
      this.inbox.push(m);
      this.lastHeard.set(m.from, now);
    }
    this.kick();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopTicks?.();
    while (this.running) await this.clock.sleep(5);
    const err = new Error('directory replica shutting down');
    for (const p of this.proposals) p.reject(err);
    for (const f of this.inflight.values()) for (const w of f.waiters) w.reject(err);
    this.reads.rejectAll(err);
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
    this.clock.soon(() => {
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
      this.reads.hasWaiting ||
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
    this.core.setClock(this.clock.now());
    let any = false;
    // Ticks that piled up while the loop was on disk happened before (most of) the queued
    // messages: counted after them, they would shorten the time this replica refuses
    // votes after hearing from its leader — the promise leader leases rest on.
    if (this.ticks > 0 && this.reads.hasAsked) this.expireReads();
    for (; this.ticks > 0; this.ticks--) this.core.tick();
    const inbox = this.inbox;
    this.inbox = [];
    for (const m of inbox) this.core.step(m);
    const actions = this.actions;
    this.actions = [];
    for (const a of actions) a();
    any = inbox.length > 0 || actions.length > 0;
    const readId = this.reads.ask(this.clock.now());
    if (readId !== null) {
      this.core.readIndex(readId);
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
      const p = this.core.propose(this.machines.encode(list));
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
        cmds: list.every((c) => this.machines.stable(c)) ? list : undefined,
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
    this.reads.confirmed(rd.reads);
    this.reads.refused(rd.dropped, this.core.leaderId);
    this.reads.release(this.applied);
    if (this.staged.size > 0) this.dropStaleSnapshots();
    this.maybeCompact();
    // Here, not only after applying: an idle cluster's learner catches up through heartbeats.
    this.autoPromote();
  }

  private async apply(entries: Entry[]): Promise<void> {
    // All commands of all committed entries go to the state machine as one batch.
    const cmds: C[] = [];
    const spans: Array<{ e: Entry; from: number; to: number }> = [];
    let conf: ConfState | null = null;
    let bytes = 0;
    for (const e of entries) {
      if (e.data) bytes += e.data.length;
      if (e.kind === 'cmd' && e.data) {
        const own = this.inflight.get(e.index);
        const list = own?.cmds && own.term === e.term ? own.cmds : this.machines.decode(e.data);
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
    const outcomes = await this.meta.apply(cmds, last.index, [...this.peers]);
    this.applied = last.index;
    this.marks.add(last.index, bytes);
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
        f.waiters[i]?.resolve(outcomes[from + i] as O);
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
      this.discard(st.copy);
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
    const limit = this.clock.now() - this.o.tickMs * this.o.electionTicks * 2;
    this.reads.fail(this.core.leaderId, limit);
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
    this.reads.fail(lead);
    for (const f of this.leaderListeners.slice()) f();
  }

  private maybeCompact(): void {
    if (this.compacting) return;
    const purging = purgingMachine(this.meta);
    if (purging?.purgeWanted() && this.clock.now() >= this.purgeRetryAt) {
      this.compacting = true;
      this.purge(purging)
        .catch((e) => {
          this.purgeRetryAt = this.clock.now() + PURGE_RETRY_MS;
          this.o.logger.warn({ err: e }, 'purge of replaced values failed: will try again');
        })
        .finally(() => {
          this.compacting = false;
        });
      return;
    }
    const s = this.core.status();
    const plan = this.marks.plan(this.applied, s.snapshotIndex, this.o);
    if (!plan) return;
    const { index, dropped, gen } = plan;
    const term = this.core.termAt(index);
    const conf = this.core.confAt(index);
    if (term === undefined || conf === undefined || index <= s.snapshotIndex) return;
    const meta: SnapshotMeta = { index, term, conf };
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

  /**
   * The state machine applied commands whose replaced values must not stay on disk (see
   * PurgingMachine): the log is compacted through everything applied (the entries that
   * carried them), its files are purged of the deleted entries, then the state machine's.
   * Every replica does this on its own, on applying such a command or opening a state
   * (installed from a snapshot, or after a restart) that still asks for it.
   */
  private async purge(sm: PurgingMachine): Promise<void> {
    const mark = await sm.beginPurge();
    if (mark === null) return;
    // In the loop: every apply that the mark may stem from has moved `applied` by then.
    const through = await this.inLoop(() => this.applied);
    await this.meta.sync();
    await this.inLoop(() => {
      const s = this.core.status();
      if (through <= s.snapshotIndex) return;
      const term = this.core.termAt(through);
      const conf = this.core.confAt(through);
      if (term === undefined || conf === undefined) return;
      const { dropped, gen } = this.marks.through(through);
      this.finishCompaction({ index: through, term, conf }, dropped, gen);
    });
    await purgeableLog(this.storage)?.purge();
    await sm.endPurge(mark);
    this.o.logger.info({ through }, 'log and state compacted: replaced values purged from disk');
  }

  /** Runs `fn` in the loop, between two iterations; resolves with its result. */
  private inLoop<T>(fn: () => T): Promise<T> {
    let out: T;
    return this.act(() => {
      out = fn();
    }).then(() => out);
  }

  private finishCompaction(meta: SnapshotMeta, dropped: number, gen: number): void {
    this.marks.cut(meta.index, dropped, gen);
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
    const exp = this.meta.exportSnapshot();
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

  /** The transport's receiving side: chunks go straight into a staged copy (machines.import). */
  readonly snapshotReceiver: SnapshotReceiver;

  private async swapInSnapshot(meta: SnapshotMeta): Promise<void> {
    // Taken out before the first await: a transfer of the same snapshot finishing meanwhile
    // stages a copy of its own, dropped below as older than what is applied.
    const staged = this.staged.get(meta.index);
    if (!staged) throw new Error(`snapshot ${meta.index} accepted but not staged`);
    this.staged.delete(meta.index);
    // Order matters for crash safety: the staged copy made next, then the log, then the
    // swap (machines.open finishes it after a crash at any step).
    await this.machines.prepare(staged.copy);
    await this.storage.resetToSnapshot(meta);
    // The log it replaced is deleted, but still in the files: it may hold values the
    // leader's state machine has purged since (secrets once stored in clear).
    purgeableLog(this.storage)
      ?.purge()
      .catch((e) => this.o.logger.warn({ err: e }, 'log purge after a snapshot failed'));
    this.meta = await this.machines.swapIn(this.meta);
    this.applied = meta.index;
    this.appliedConf = meta.conf;
    // The log restarts after the snapshot: nothing applied before it counts any more.
    this.marks.reset();
    for (const [id, url] of await this.meta.peers()) this.setPeerUrl(id, url);
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
