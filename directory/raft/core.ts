// The Raft consensus core as a pure, deterministic state machine (after etcd's raft).
//
// Inputs: tick(), step(message), propose(), proposeConf(), readIndex(), transferLeadership(),
// compact(). Outputs, drained with ready(): hard state and entries to persist, messages to
// send, committed entries to apply, read states, refusals. No timers, sockets, disk or
// randomness of its own (the random source is injected), so a seeded simulation replays
// exactly.
//
// The host contract that makes this safe: the host handles one Ready completely — persists
// (synced) hard state and entries, then sends messages, then applies committed entries —
// before it feeds the core its next input. A leader counts its own entries as matched when
// it appends them; that is sound only because no follower reply can be processed before
// the Ready holding those entries has been persisted.
//
// Implemented: randomized election timeouts, pre-vote, CheckQuorum with leader stickiness,
// pipelined replication (probe / replicate / snapshot progress states, bounded in-flight
// messages, batched entries), commit of current-term entries only, snapshots (the data
// moves outside the core; `snapshot` messages carry only the meta), log compaction,
// single-server membership changes effective on append (learners first), leadership
// transfer (TimeoutNow), and ReadIndex reads (leader or forwarded from a follower).
import type {
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  ReadState,
  Ready,
  Role,
  SnapshotMeta,
} from './types.ts';

export interface RaftOptions {
  id: NodeId;
  /** Ticks without a leader before a follower campaigns (randomized in [n, 2n)). */
  electionTicks: number;
  heartbeatTicks: number;
  /** Uniform in [0, 1): the only source of randomness. */
  random: () => number;
  maxMsgEntries?: number;
  maxMsgBytes?: number;
  maxInflight?: number;
  /** Ticks a peer may stay in snapshot state without a report before the leader retries. */
  snapshotTimeoutTicks?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /**
   * How often (ticks) a leader checks that a quorum was active, stepping down if not
   * (default electionTicks). Nothing depends on it for safety; the simulator lengthens it
   * so that deposed leaders linger and unsafe reads would show.
   */
  checkQuorumTicks?: number;
  /**
   * Leader lease reads (0 = off, ReadIndex rounds only): a read is answered at once while a
   * quorum has acknowledged a heartbeat the leader sent less than leaseMs ago on the clock
   * the host gives setClock(). Sound because a replica that heard from the leader refuses
   * votes for electionTicks of its own ticks (stickiness; after a (re)start it refuses for
   * electionTicks first, lease or not, since other replicas' leases may count on it): leaseMs must stay below (electionTicks - 1) ticks of the slowest
   * replica's clock as seen by the leader's. Needs checkQuorum. A leadership transfer (whose
   * votes bypass stickiness) ends lease reads for the rest of the term.
   */
  leaseMs?: number;
}

export interface RaftInit {
  hardState: HardState;
  /** Meta of the snapshot the log starts after; null = an empty log from index 1. */
  snapshot: SnapshotMeta | null;
  /** Entries after the snapshot, contiguous. */
  entries: Entry[];
  /** What the host's state machine already holds (≥ snapshot index). */
  applied: number;
  /** Membership when neither the snapshot nor the log says (a brand-new cluster or joiner). */
  conf?: ConfState;
}

export type ConfChange =
  | { type: 'addLearner'; node: NodeId }
  | { type: 'promote'; node: NodeId }
  | { type: 'remove'; node: NodeId };

type ProgressState = 'probe' | 'replicate' | 'snapshot';

interface Progress {
  match: number;
  next: number;
  state: ProgressState;
  /** Probe: one message outstanding until a reply or the next heartbeat. */
  paused: boolean;
  /** Replicate: last index of each in-flight append, oldest first. */
  inflight: number[];
  recentActive: boolean;
  pendingSnapshot: number;
  snapshotElapsed: number;
  /** Heartbeats in a row without match progress while behind: replication stalled. */
  stall: number;
  ackedSeq: number;
}

interface PendingRead {
  id: string;
  from: NodeId;
  index: number;
  seq: number;
}

type InternalRole = 'follower' | 'precandidate' | 'candidate' | 'leader';

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  leaderId: NodeId | null;
  commitIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  conf: ConfState;
  progress: Record<NodeId, { match: number; next: number; state: ProgressState; active: boolean }>;
}

export class RaftError extends Error {}

export class Raft {
  readonly id: NodeId;
  private readonly o: Required<Omit<RaftOptions, 'id' | 'random'>> & { random: () => number };

  private term: number;
  private vote: NodeId | null;
  private lead: NodeId | null = null;
  private role: InternalRole = 'follower';

  private log: Entry[];
  private snapIndex: number;
  private snapTerm: number;
  private snapMeta: SnapshotMeta | null;
  private commit: number;
  private applied: number;
  private conf: ConfState;
  /** Membership before the first conf entry of the log (snapshot's, or the bootstrap one). */
  private baseConf: ConfState;
  private pendingConfIndex = 0;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private quorumElapsed = 0;
  private randomizedTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  private leadTransferee: NodeId | null = null;

  private readSeq = 0;
  private readBroadcastPending = false;
  /** Leader lease: the host's clock, when each read sequence number was first sent, … */
  private now = 0;
  private seqSentAt: Array<[seq: number, at: number]> = [];
  /** … and until when a quorum's acknowledgements vouch for this leader. */
  private leaseUntil = Number.NEGATIVE_INFINITY;
  private leaseOffThisTerm = false;
  private ticksSinceStart = 0;
  /** Reads answered under the lease, without a round (for tests and the simulator). */
  leaseReads = 0;
  /** The commit index moved during this step: followers must hear of it (see ready()). */
  private commitNotify = false;
  private pendingReads: PendingRead[] = [];
  private readsAwaitingCommit: Array<{ id: string; from: NodeId }> = [];

  // Ready accumulators.
  private unstableFrom = Number.POSITIVE_INFINITY;
  private lastHard: HardState;
  private out: Message[] = [];
  private outReads: ReadState[] = [];
  private outDropped: Array<{ id: string; reason: string }> = [];
  private outSnapshot: SnapshotMeta | undefined;

  constructor(opts: RaftOptions, init: RaftInit) {
    this.id = opts.id;
    this.o = {
      electionTicks: opts.electionTicks,
      heartbeatTicks: opts.heartbeatTicks,
      random: opts.random,
      maxMsgEntries: opts.maxMsgEntries ?? 256,
      maxMsgBytes: opts.maxMsgBytes ?? 1 << 20,
      maxInflight: opts.maxInflight ?? 64,
      snapshotTimeoutTicks: opts.snapshotTimeoutTicks ?? opts.electionTicks * 30,
      preVote: opts.preVote ?? true,
      checkQuorum: opts.checkQuorum ?? true,
      checkQuorumTicks: opts.checkQuorumTicks ?? opts.electionTicks,
      leaseMs: opts.leaseMs ?? 0,
    };
    if (this.o.leaseMs > 0 && !this.o.checkQuorum) {
      throw new RaftError('lease reads need checkQuorum');
    }
    if (this.o.heartbeatTicks >= this.o.electionTicks) {
      throw new RaftError('heartbeatTicks must be below electionTicks');
    }
    this.term = init.hardState.term;
    this.vote = init.hardState.vote;
    this.snapMeta = init.snapshot;
    this.snapIndex = init.snapshot?.index ?? 0;
    this.snapTerm = init.snapshot?.term ?? 0;
    this.log = init.entries.slice();
    this.log.forEach((e, i) => {
      if (e.index !== this.snapIndex + 1 + i) throw new RaftError('log is not contiguous');
    });
    this.commit = Math.min(Math.max(init.hardState.commit, this.snapIndex), this.lastIndex());
    this.applied = Math.max(init.applied, this.snapIndex);
    if (this.applied > this.commit) throw new RaftError('applied beyond commit');
    this.baseConf = init.snapshot?.conf ?? init.conf ?? { voters: [], learners: [] };
    this.conf = this.confFromLog();
    this.lastHard = { ...init.hardState };
    this.resetRandomizedTimeout();
  }

  // ---------------------------------------------------------------- queries

  lastIndex(): number {
    return this.snapIndex + this.log.length;
  }

  /** Term of entry i, or undefined when it is compacted away or beyond the log. */
  termAt(i: number): number | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.lastIndex()) return undefined;
    return this.log[i - this.snapIndex - 1]?.term;
  }

  /** Membership in force at index i (between the snapshot and the last entry). */
  confAt(i: number): ConfState | undefined {
    if (i < this.snapIndex || i > this.lastIndex()) return undefined;
    for (let j = i; j > this.snapIndex; j--) {
      const e = this.log[j - this.snapIndex - 1] as Entry;
      if (e.kind === 'conf' && e.conf)
        return { voters: [...e.conf.voters], learners: [...e.conf.learners] };
    }
    return { voters: [...this.baseConf.voters], learners: [...this.baseConf.learners] };
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  get leaderId(): NodeId | null {
    return this.lead;
  }

  get currentTerm(): number {
    return this.term;
  }

  get commitIndex(): number {
    return this.commit;
  }

  get membership(): ConfState {
    return { voters: [...this.conf.voters], learners: [...this.conf.learners] };
  }

  status(): RaftStatus {
    const progress: RaftStatus['progress'] = {};
    for (const [id, p] of this.progress) {
      progress[id] = { match: p.match, next: p.next, state: p.state, active: p.recentActive };
    }
    return {
      id: this.id,
      role: this.publicRole(),
      term: this.term,
      leaderId: this.lead,
      commitIndex: this.commit,
      lastIndex: this.lastIndex(),
      snapshotIndex: this.snapIndex,
      conf: this.membership,
      progress,
    };
  }

  private publicRole(): Role {
    if (this.role !== 'follower') return this.role;
    return this.conf.learners.includes(this.id) ? 'learner' : 'follower';
  }

  private isVoter(id = this.id): boolean {
    return this.conf.voters.includes(id);
  }

  /**
   * May campaign: a voter, or a voter being removed by a conf entry not yet committed. The
   * latter may hold the only copy of that entry the new config's members lack; if it could
   * not lead, nobody could win (their logs are behind) — it leads, commits the entry
   * counting only the new voters, and steps down.
   */
  private promotable(): boolean {
    if (this.isVoter()) return true;
    let last = -1;
    for (let i = this.log.length - 1; i >= 0; i--) {
      if ((this.log[i] as Entry).kind !== 'conf') continue;
      if (last < 0) last = i;
      else return this.lastConfPendingAndHadUs(last, (this.log[i] as Entry).conf);
    }
    return last >= 0 && this.lastConfPendingAndHadUs(last, this.baseConf);
  }

  private lastConfPendingAndHadUs(pos: number, prev: ConfState | undefined): boolean {
    const index = this.snapIndex + 1 + pos;
    return index > this.commit && (prev?.voters.includes(this.id) ?? false);
  }

  private quorum(): number {
    return Math.floor(this.conf.voters.length / 2) + 1;
  }

  // ---------------------------------------------------------------- inputs

  /** The host's monotonic clock (ms), for lease reads: set before each input. */
  setClock(ms: number): void {
    this.now = ms;
  }

  tick(): void {
    this.ticksSinceStart++;
    if (this.role === 'leader') {
      this.tickLeader();
      return;
    }
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedTimeout) {
      this.electionElapsed = 0;
      if (this.o.preVote) this.preCampaign();
      else this.campaign(false);
    }
  }

  /** Appends a command; returns its index, or null when this node cannot take proposals. */
  propose(data: string): { index: number; term: number } | null {
    if (this.role !== 'leader' || this.leadTransferee !== null) return null;
    const e = this.appendEntry({ kind: 'cmd', data });
    return { index: e.index, term: e.term };
  }

  /** One membership change at a time; a learner is promoted only once it has caught up. */
  proposeConf(change: ConfChange, context?: string): { index: number; term: number } | null {
    if (this.role !== 'leader' || this.leadTransferee !== null) return null;
    if (this.pendingConfIndex > this.commit) return null;
    const voters = new Set(this.conf.voters);
    const learners = new Set(this.conf.learners);
    const member = voters.has(change.node) || learners.has(change.node);
    if (change.type === 'addLearner') {
      if (member) return null;
      learners.add(change.node);
    } else if (change.type === 'promote') {
      const p = this.progress.get(change.node);
      if (!learners.has(change.node) || !p || p.match < this.commit) return null;
      learners.delete(change.node);
      voters.add(change.node);
    } else {
      if (!member) return null;
      voters.delete(change.node);
      learners.delete(change.node);
      if (voters.size === 0) return null;
    }
    const conf = { voters: [...voters].sort(), learners: [...learners].sort() };
    const e = this.appendEntry(
      context === undefined ? { kind: 'conf', conf } : { kind: 'conf', conf, data: context },
    );
    this.pendingConfIndex = e.index;
    return { index: e.index, term: e.term };
  }

  /** Requests a linearizable read; the answer comes out as a ReadState (or a refusal). */
  readIndex(id: string): void {
    if (this.role === 'leader') this.leaderRead(id, this.id);
    else if (this.lead !== null) this.send({ type: 'readIndex', to: this.lead, id });
    else this.outDropped.push({ id, reason: 'no leader' });
  }

  transferLeadership(to: NodeId): boolean {
    if (this.role !== 'leader' || to === this.id || !this.isVoter(to)) return false;
    if (this.leadTransferee === to) return true;
    this.leadTransferee = to;
    this.leaseOffThisTerm = true;
    this.electionElapsed = 0;
    const p = this.progress.get(to);
    if (p && p.match === this.lastIndex()) this.send({ type: 'timeoutNow', to });
    else this.sendAppend(to, true);
    return true;
  }

  /** The host reports the outcome of streaming a snapshot to a peer. */
  reportSnapshot(to: NodeId, ok: boolean): void {
    const p = this.progress.get(to);
    if (p?.state !== 'snapshot') return;
    if (!ok) p.pendingSnapshot = 0;
    this.becomeProbe(p, ok ? Math.max(p.match + 1, p.pendingSnapshot + 1) : p.match + 1);
    p.paused = ok; // after a success wait for the follower's reply before probing
  }

  /** The host took a snapshot of its state machine at meta.index: forget the log up to it. */
  compact(meta: SnapshotMeta): void {
    if (meta.index <= this.snapIndex) return;
    if (meta.index > this.applied) throw new RaftError('cannot compact past applied');
    if (meta.index >= this.unstableFrom) throw new RaftError('cannot compact unstable entries');
    if (this.termAt(meta.index) !== meta.term) throw new RaftError('snapshot term mismatch');
    this.log = this.log.slice(meta.index - this.snapIndex);
    this.snapIndex = meta.index;
    this.snapTerm = meta.term;
    this.snapMeta = meta;
    this.baseConf = meta.conf;
  }

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.term) {
      if (m.type === 'prevote' || m.type === 'vote') {
        const transfer = m.type === 'vote' && m.transfer === true;
        // Leader stickiness: while we hear from a leader, nobody may disrupt it. With lease
        // reads a replica that just started may have vouched for a leader before it went
        // down, so it keeps still for an election timeout first.
        if (!transfer && (this.inLease() || this.startingUp())) return;
      }
      if (m.type === 'prevote' || (m.type === 'prevoteResp' && m.granted)) {
        // Pre-vote traffic carries a future term without changing ours.
      } else {
        const fromLeader = m.type === 'append' || m.type === 'snapshot' || m.type === 'timeoutNow';
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this.term) {
      // Tell a stale leader or pre-candidate about the newer term so it steps down.
      if (m.type === 'append' || m.type === 'snapshot') {
        this.send({
          type: 'appendResp',
          to: m.from,
          success: false,
          index: 0,
          hint: 0,
          readSeq: 0,
        });
      } else if (m.type === 'prevote') {
        this.send({ type: 'prevoteResp', to: m.from, granted: false });
      }
      return;
    }

    switch (m.type) {
      case 'prevote':
      case 'vote':
        this.handleVoteRequest(m);
        return;
      case 'prevoteResp':
      case 'voteResp':
        this.handleVoteResponse(m);
        return;
      case 'append':
        this.followLeader(m.from);
        this.handleAppend(m);
        return;
      case 'snapshot':
        this.followLeader(m.from);
        this.handleSnapshot(m);
        return;
      case 'appendResp':
        if (this.role === 'leader') this.handleAppendResp(m);
        return;
      case 'timeoutNow':
        if (this.promotable() && this.role !== 'leader') this.campaign(true);
        return;
      case 'readIndex':
        if (this.role === 'leader') this.leaderRead(m.id, m.from);
        return;
      case 'readIndexResp':
        this.outReads.push({ id: m.id, index: m.index });
        return;
    }
  }

  ready(): Ready {
    if (this.commitNotify && this.role === 'leader') this.notifyCommit();
    this.commitNotify = false;
    if (this.readBroadcastPending && this.role === 'leader') {
      this.readBroadcastPending = false;
      this.nextReadSeq();
      this.bcastHeartbeat();
    }
    const hs: HardState = { term: this.term, vote: this.vote, commit: this.commit };
    const hardChanged =
      hs.term !== this.lastHard.term ||
      hs.vote !== this.lastHard.vote ||
      hs.commit !== this.lastHard.commit;
    const entries =
      this.unstableFrom <= this.lastIndex()
        ? this.log.slice(this.unstableFrom - this.snapIndex - 1)
        : [];
    const committed =
      this.commit > this.applied
        ? this.log.slice(this.applied - this.snapIndex, this.commit - this.snapIndex)
        : [];
    const rd: Ready = {
      hardState: hardChanged ? hs : undefined,
      entries,
      snapshot: this.outSnapshot,
      messages: this.out,
      committed,
      reads: this.outReads,
      dropped: this.outDropped,
    };
    if (hardChanged) this.lastHard = hs;
    this.applied = this.commit;
    this.unstableFrom = Number.POSITIVE_INFINITY;
    this.out = [];
    this.outReads = [];
    this.outDropped = [];
    this.outSnapshot = undefined;
    return rd;
  }

  // ---------------------------------------------------------------- roles

  private inLease(): boolean {
    return this.o.checkQuorum && this.lead !== null && this.electionElapsed < this.o.electionTicks;
  }

  /**
   * With CheckQuorum, whatever this replica's own lease setting: another leader's lease may
   * count on the promise this replica made before it restarted.
   */
  private startingUp(): boolean {
    return this.o.checkQuorum && this.ticksSinceStart < this.o.electionTicks;
  }

  private resetRandomizedTimeout(): void {
    const n = this.o.electionTicks;
    this.randomizedTimeout = n + Math.floor(this.o.random() * n);
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.quorumElapsed = 0;
    this.resetRandomizedTimeout();
    this.votes.clear();
    this.progress.clear();
    this.leadTransferee = null;
    this.seqSentAt = [];
    this.leaseUntil = Number.NEGATIVE_INFINITY;
    this.leaseOffThisTerm = false;
    for (const r of this.pendingReads) this.dropRead(r.id, r.from, 'leader changed');
    for (const r of this.readsAwaitingCommit) this.dropRead(r.id, r.from, 'leader changed');
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
    this.readBroadcastPending = false;
  }

  private dropRead(id: string, from: NodeId, reason: string): void {
    if (from === this.id) this.outDropped.push({ id, reason });
  }

  private becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
  }

  /** A valid message from the leader of our term: follow it and restart the election clock. */
  private followLeader(from: NodeId): void {
    if (this.role !== 'follower' || this.lead !== from) {
      const vote = this.vote;
      this.becomeFollower(this.term, from);
      this.vote = vote;
    }
    this.electionElapsed = 0;
  }

  private preCampaign(): void {
    this.role = 'precandidate';
    this.lead = null;
    this.votes.clear();
    this.votes.set(this.id, true);
    if (this.tallyWon()) {
      this.campaign(false);
      return;
    }
    for (const v of this.conf.voters) {
      if (v === this.id) continue;
      this.send({
        type: 'prevote',
        to: v,
        term: this.term + 1,
        lastIndex: this.lastIndex(),
        lastTerm: this.lastTerm(),
      });
    }
  }

  private campaign(transfer: boolean): void {
    this.reset(this.term + 1);
    this.role = 'candidate';
    this.vote = this.id;
    this.votes.set(this.id, true);
    if (this.tallyWon()) {
      this.becomeLeader();
      return;
    }
    for (const v of this.conf.voters) {
      if (v === this.id) continue;
      this.send({
        type: 'vote',
        to: v,
        lastIndex: this.lastIndex(),
        lastTerm: this.lastTerm(),
        ...(transfer ? { transfer: true } : {}),
      });
    }
  }

  private tallyWon(): boolean {
    let yes = 0;
    for (const v of this.conf.voters) if (this.votes.get(v) === true) yes++;
    return yes >= this.quorum();
  }

  private tallyLost(): boolean {
    let no = 0;
    for (const v of this.conf.voters) if (this.votes.get(v) === false) no++;
    return no >= this.quorum();
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    for (const id of [...this.conf.voters, ...this.conf.learners]) this.addProgress(id);
    // Any conf entry in the uncommitted tail may still be pending.
    this.pendingConfIndex = this.lastIndex();
    this.appendEntry({ kind: 'noop' });
  }

  private addProgress(id: NodeId): void {
    if (id === this.id || this.progress.has(id)) return;
    this.progress.set(id, {
      match: 0,
      next: this.lastIndex() + 1,
      state: 'probe',
      paused: false,
      inflight: [],
      recentActive: true,
      pendingSnapshot: 0,
      snapshotElapsed: 0,
      stall: 0,
      ackedSeq: 0,
    });
  }

  private tickLeader(): void {
    this.electionElapsed++;
    this.heartbeatElapsed++;
    this.quorumElapsed++;
    if (this.quorumElapsed >= this.o.checkQuorumTicks) {
      this.quorumElapsed = 0;
      if (this.o.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, null);
        return;
      }
      for (const p of this.progress.values()) p.recentActive = false;
    }
    if (this.electionElapsed >= this.o.electionTicks) {
      this.electionElapsed = 0;
      this.leadTransferee = null; // a transfer that did not finish within a timeout is abandoned
    }
    for (const [id, p] of this.progress) {
      if (p.state === 'snapshot' && ++p.snapshotElapsed >= this.o.snapshotTimeoutTicks) {
        this.becomeProbe(p, p.match + 1);
        this.sendAppend(id, true);
      }
    }
    if (this.heartbeatElapsed >= this.o.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      // Each heartbeat round a new sequence number, so its acknowledgements renew the lease.
      if (this.o.leaseMs > 0) this.nextReadSeq();
      this.bcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const v of this.conf.voters) {
      if (v === this.id || this.progress.get(v)?.recentActive) active++;
    }
    return active >= this.quorum();
  }

  // ---------------------------------------------------------------- votes

  private lastTerm(): number {
    return this.termAt(this.lastIndex()) ?? 0;
  }

  private upToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  private handleVoteRequest(m: Extract<Message, { type: 'prevote' | 'vote' }>): void {
    const canVote =
      m.type === 'prevote'
        ? m.term > this.term
        : this.vote === m.from || (this.vote === null && this.lead === null);
    const granted = canVote && this.upToDate(m.lastIndex, m.lastTerm);
    if (m.type === 'prevote') {
      this.send({ type: 'prevoteResp', to: m.from, term: granted ? m.term : this.term, granted });
      return;
    }
    if (granted) {
      this.vote = m.from;
      this.electionElapsed = 0;
    }
    this.send({ type: 'voteResp', to: m.from, granted });
  }

  private handleVoteResponse(m: Extract<Message, { type: 'prevoteResp' | 'voteResp' }>): void {
    const mine =
      (m.type === 'prevoteResp' &&
        this.role === 'precandidate' &&
        (m.term === this.term + 1 || (!m.granted && m.term === this.term))) ||
      (m.type === 'voteResp' && this.role === 'candidate' && m.term === this.term);
    if (!mine || !this.isVoter(m.from)) return;
    if (!this.votes.has(m.from)) this.votes.set(m.from, m.granted);
    if (this.tallyWon()) {
      if (this.role === 'precandidate') this.campaign(false);
      else this.becomeLeader();
    } else if (this.tallyLost()) {
      this.becomeFollower(this.term, null);
    }
  }

  // ---------------------------------------------------------------- log

  private appendEntry(e: Omit<Entry, 'index' | 'term'>): Entry {
    const entry: Entry = { ...e, index: this.lastIndex() + 1, term: this.term };
    this.log.push(entry);
    this.unstableFrom = Math.min(this.unstableFrom, entry.index);
    if (entry.kind === 'conf' && entry.conf) this.applyConf(entry.conf);
    this.maybeCommit();
    this.bcastAppend();
    return entry;
  }

  /** Membership in force: the last conf entry in the log, else the snapshot's. */
  private confFromLog(): ConfState {
    for (let i = this.log.length - 1; i >= 0; i--) {
      const e = this.log[i] as Entry;
      if (e.kind === 'conf' && e.conf) return e.conf;
    }
    return this.baseConf;
  }

  private applyConf(conf: ConfState): void {
    this.conf = { voters: [...conf.voters], learners: [...conf.learners] };
    if (this.role !== 'leader') return;
    const members = new Set([...conf.voters, ...conf.learners]);
    for (const id of members) this.addProgress(id);
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    if (this.leadTransferee !== null && !conf.voters.includes(this.leadTransferee)) {
      this.leadTransferee = null;
    }
  }

  private maybeCommit(): void {
    if (this.role !== 'leader') return;
    const matches = this.conf.voters
      .map((v) => (v === this.id ? this.lastIndex() : (this.progress.get(v)?.match ?? 0)))
      .sort((a, b) => b - a);
    const n = matches[this.quorum() - 1] ?? 0;
    if (n <= this.commit || this.termAt(n) !== this.term) return;
    this.commit = n;
    this.releaseReadsAwaitingCommit();
    if (this.pendingConfIndex <= this.commit && !this.isVoter()) {
      // Our own removal is committed: hand over by stepping down.
      this.becomeFollower(this.term, null);
      return;
    }
    // Entries waiting go now (they carry the new commit); followers with nothing to
    // receive are told in ready(), once for all the commits of this step.
    this.bcastAppend(false);
    this.commitNotify = true;
  }

  /** One empty append per peer that no append of this step told the current commit. */
  private notifyCommit(): void {
    const told = new Set<NodeId>();
    for (const m of this.out) if (m.type === 'append' && m.commit >= this.commit) told.add(m.to);
    for (const id of this.progress.keys()) if (!told.has(id)) this.sendAppend(id, true);
  }

  private commitTo(n: number): void {
    if (n > this.commit) this.commit = n;
  }

  private handleAppend(m: Extract<Message, { type: 'append' }>): void {
    const reply = (success: boolean, index: number, hint = 0) =>
      this.send({ type: 'appendResp', to: m.from, success, index, hint, readSeq: m.readSeq });
    if (m.prevIndex < this.commit) {
      reply(true, this.commit);
      return;
    }
    if (this.termAt(m.prevIndex) !== m.prevTerm) {
      reply(false, m.prevIndex, this.lastIndex());
      return;
    }
    let i = 0;
    const es = m.entries;
    while (i < es.length && this.termAt((es[i] as Entry).index) === (es[i] as Entry).term) i++;
    if (i < es.length) {
      const from = (es[i] as Entry).index;
      if (from <= this.commit) throw new RaftError(`conflict at committed index ${from}`);
      const truncated = from <= this.lastIndex();
      this.log.length = from - this.snapIndex - 1;
      for (const e of m.entries.slice(i)) this.log.push(e);
      this.unstableFrom = Math.min(this.unstableFrom, from);
      if (truncated || m.entries.slice(i).some((e) => e.kind === 'conf')) {
        this.conf = this.confFromLog();
      }
    }
    const lastNew = m.prevIndex + m.entries.length;
    this.commitTo(Math.min(m.commit, lastNew));
    reply(true, lastNew);
  }

  private handleSnapshot(m: Extract<Message, { type: 'snapshot' }>): void {
    const reply = (index: number) =>
      this.send({ type: 'appendResp', to: m.from, success: true, index, hint: 0, readSeq: 0 });
    if (m.meta.index <= this.commit) {
      reply(this.commit);
      return;
    }
    if (this.termAt(m.meta.index) === m.meta.term) {
      // We hold the snapshot's last entry: keep the log (entries after it may be acked
      // already — dropping them would leave the leader's match above our log).
      this.commit = m.meta.index;
      reply(this.commit);
      return;
    }
    this.log = [];
    this.snapIndex = m.meta.index;
    this.snapTerm = m.meta.term;
    this.snapMeta = m.meta;
    this.baseConf = m.meta.conf;
    this.commit = m.meta.index;
    this.applied = m.meta.index;
    this.conf = { voters: [...m.meta.conf.voters], learners: [...m.meta.conf.learners] };
    this.unstableFrom = Number.POSITIVE_INFINITY;
    this.outSnapshot = m.meta;
    reply(m.meta.index);
  }

  // ---------------------------------------------------------------- replication

  private becomeProbe(p: Progress, next: number): void {
    p.state = 'probe';
    p.next = Math.max(next, p.match + 1);
    p.paused = false;
    p.inflight = [];
    p.stall = 0;
  }

  private handleAppendResp(m: Extract<Message, { type: 'appendResp' }>): void {
    const p = this.progress.get(m.from);
    if (!p) return;
    p.recentActive = true;
    if (m.readSeq > p.ackedSeq) {
      p.ackedSeq = m.readSeq;
      this.releaseConfirmedReads();
      if (this.o.leaseMs > 0) this.renewLease();
    }
    if (!m.success) {
      const stale = p.state === 'replicate' ? m.index <= p.match : m.index !== p.next - 1;
      if (stale || p.state === 'snapshot') return;
      this.becomeProbe(p, Math.min(m.index, m.hint + 1));
      this.sendAppend(m.from, true);
      return;
    }
    p.paused = false;
    if (m.index > p.match) {
      p.match = m.index;
      p.stall = 0;
      if (p.state === 'probe' || (p.state === 'snapshot' && p.match >= p.pendingSnapshot)) {
        p.state = 'replicate';
        p.next = p.match + 1;
        p.inflight = [];
      } else {
        p.next = Math.max(p.next, p.match + 1);
        while (p.inflight.length > 0 && (p.inflight[0] as number) <= m.index) p.inflight.shift();
      }
      this.maybeCommit();
      if (this.role !== 'leader') return;
    }
    if (m.from === this.leadTransferee && p.match === this.lastIndex()) {
      this.send({ type: 'timeoutNow', to: m.from });
    }
    if (p.match < this.lastIndex()) this.sendAppend(m.from, false);
  }

  private bcastAppend(sendIfEmpty = false): void {
    if (this.role !== 'leader') return;
    for (const id of this.progress.keys()) this.sendAppend(id, sendIfEmpty);
  }

  private sendAppend(to: NodeId, sendIfEmpty: boolean): void {
    const p = this.progress.get(to);
    if (!p || p.state === 'snapshot') return;
    if (p.state === 'probe' && p.paused) return;
    if (p.state === 'replicate' && p.inflight.length >= this.o.maxInflight) return;
    const prevIndex = p.next - 1;
    const prevTerm = this.termAt(prevIndex);
    if (prevTerm === undefined) {
      this.sendSnapshot(to, p);
      return;
    }
    const entries = this.entriesFrom(p.next);
    if (entries.length === 0 && !sendIfEmpty) return;
    this.send({
      type: 'append',
      to,
      prevIndex,
      prevTerm,
      entries,
      commit: this.commit,
      readSeq: 0,
    });
    if (p.state === 'replicate') {
      if (entries.length > 0) {
        p.next = (entries[entries.length - 1] as Entry).index + 1;
        p.inflight.push(p.next - 1);
      }
    } else {
      p.paused = true;
    }
  }

  private sendSnapshot(to: NodeId, p: Progress): void {
    if (!this.snapMeta) throw new RaftError('log compacted without a snapshot');
    p.state = 'snapshot';
    p.pendingSnapshot = this.snapMeta.index;
    p.snapshotElapsed = 0;
    p.inflight = [];
    this.send({ type: 'snapshot', to, meta: this.snapMeta });
  }

  private entriesFrom(lo: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= this.lastIndex() && out.length < this.o.maxMsgEntries; i++) {
      const e = this.log[i - this.snapIndex - 1] as Entry;
      bytes += (e.data?.length ?? 0) + 64;
      if (out.length > 0 && bytes > this.o.maxMsgBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Heartbeats carry the commit index (bounded by what each peer matches) and the read round. */
  private bcastHeartbeat(): void {
    for (const [to, p] of this.progress) {
      if (p.state === 'probe') {
        p.paused = false;
        this.sendAppendWithSeq(to);
        continue;
      }
      if (p.state === 'replicate' && p.match < this.lastIndex() && ++p.stall >= 3) {
        // Appends were lost: nothing will provoke a refusal, so probe from the match again.
        this.becomeProbe(p, p.match + 1);
        this.sendAppendWithSeq(to);
        continue;
      }
      const prevTerm = this.termAt(p.match);
      this.send({
        type: 'append',
        to,
        prevIndex: prevTerm === undefined ? 0 : p.match,
        prevTerm: prevTerm ?? 0,
        entries: [],
        commit: this.commit,
        readSeq: this.readSeq,
      });
    }
  }

  private sendAppendWithSeq(to: NodeId): void {
    const before = this.out.length;
    this.sendAppend(to, true);
    for (let i = before; i < this.out.length; i++) {
      const m = this.out[i] as Message;
      if (m.type === 'append') m.readSeq = this.readSeq;
    }
  }

  // ---------------------------------------------------------------- reads

  private nextReadSeq(): void {
    this.readSeq++;
    if (this.o.leaseMs <= 0) return;
    this.seqSentAt.push([this.readSeq, this.now]);
    if (this.seqSentAt.length > 256) this.seqSentAt.splice(0, 128);
  }

  /** The newest round a quorum acknowledged, from when it was sent, vouches for leaseMs. */
  private renewLease(): void {
    const acked = this.conf.voters
      .map((v) => (v === this.id ? this.readSeq : (this.progress.get(v)?.ackedSeq ?? 0)))
      .sort((a, b) => b - a);
    const seq = acked[this.quorum() - 1] ?? 0;
    let sentAt: number | undefined;
    for (let i = this.seqSentAt.length - 1; i >= 0; i--) {
      const [s, at] = this.seqSentAt[i] as [number, number];
      if (s === seq) sentAt = at;
      if (s <= seq) break;
    }
    if (sentAt !== undefined) this.leaseUntil = Math.max(this.leaseUntil, sentAt + this.o.leaseMs);
  }

  private leaderRead(id: string, from: NodeId): void {
    if (this.termAt(this.commit) !== this.term) {
      // Until an entry of this term commits we do not know the true commit index.
      this.readsAwaitingCommit.push({ id, from });
      return;
    }
    if (
      this.o.leaseMs > 0 &&
      this.now < this.leaseUntil &&
      !this.leaseOffThisTerm &&
      this.leadTransferee === null
    ) {
      this.leaseReads++;
      this.answerRead(id, from, this.commit);
      return;
    }
    if (this.quorum() === 1 && this.isVoter()) {
      this.answerRead(id, from, this.commit);
      return;
    }
    this.pendingReads.push({ id, from, index: this.commit, seq: this.readSeq + 1 });
    this.readBroadcastPending = true;
  }

  private releaseReadsAwaitingCommit(): void {
    if (this.readsAwaitingCommit.length === 0 || this.termAt(this.commit) !== this.term) return;
    const waiting = this.readsAwaitingCommit;
    this.readsAwaitingCommit = [];
    for (const r of waiting) this.leaderRead(r.id, r.from);
  }

  private releaseConfirmedReads(): void {
    while (this.pendingReads.length > 0) {
      const r = this.pendingReads[0] as PendingRead;
      let acks = 0;
      for (const v of this.conf.voters) {
        if (v === this.id || (this.progress.get(v)?.ackedSeq ?? 0) >= r.seq) acks++;
      }
      if (acks < this.quorum()) return;
      this.pendingReads.shift();
      this.answerRead(r.id, r.from, r.index);
    }
  }

  private answerRead(id: string, from: NodeId, index: number): void {
    if (from === this.id) this.outReads.push({ id, index });
    else this.send({ type: 'readIndexResp', to: from, id, index });
  }

  // ---------------------------------------------------------------- output

  private send(m: DistributiveOmit<Message, 'from' | 'term'> & { term?: number }): void {
    this.out.push({ ...m, from: this.id, term: m.term ?? this.term } as Message);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
