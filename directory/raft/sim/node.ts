// A simulated directory replica: the Raft core plus everything a real host does around it
// (a disk that survives crashes, a key-value state machine with client sessions, proposal
// forwarding and a bounded queue while no leader is known, ReadIndex reads, snapshots
// taken from the state machine and streamed in chunks) — with the host contract of core.ts:
// each Ready is persisted, then sent, then applied, before the next input.
import { Raft } from '../core.ts';
import type { ConfState, Entry, HardState, Message, NodeId, SnapshotMeta } from '../types.ts';
import type { KvOp } from './linearizability.ts';
import type { EventQueue, Network } from './network.ts';

export const TICK_MS = 10;
/**
 * Drift: tick lengths differ up to 3× (0.5-1.5 TICK_MS), so a lease on the leader's clock
 * must end within (electionTicks - 1) / 3 of its ticks: 9 × 0.3 = 2.7.
 */
export const SAFE_LEASE_MS = 9 * TICK_MS * 0.3;
const CHUNK_CHARS = 256;
const QUEUE_LIMIT = 64;
const QUEUE_TIMEOUT_MS = 300;

export interface Disk {
  hard: HardState;
  snap: { meta: SnapshotMeta; data: string } | null;
  entries: Entry[];
}

/** Replies to a client: `unknown` = the write may or may not have happened. */
export type Reply =
  | { reqId: number; status: 'ok'; result: string | null | boolean | undefined }
  | { reqId: number; status: 'unknown' | 'failed' };

export interface Request {
  client: string;
  reqId: number;
  op: KvOp;
  hops: number;
}

/** What the checkers need to see of every node. */
export interface Observer {
  onApply(node: NodeId, e: Entry): void;
  onLeader(node: NodeId, term: number, raft: Raft): void;
  onViolation(msg: string): void;
}

interface SmState {
  kv: Array<[string, string]>;
  sessions: Array<[string, number]>;
  conf: ConfState;
}

export class SimNode {
  up = false;
  raft: Raft | null = null;
  readonly disk: Disk;
  private incarnation = 0;
  private kv = new Map<string, string>();
  private sessions = new Map<string, number>();
  private appliedConf: ConfState;
  private applied = 0;
  private pendingProps = new Map<number, { term: number; req: Request }>();
  private pendingReads = new Map<string, Request>();
  private readsWaiting: Array<{ index: number; req: Request }> = [];
  private queue: Array<{ req: Request; deadline: number }> = [];
  private staged: { meta: SnapshotMeta; data: string } | null = null;
  private incoming: { xfer: string; chunks: string[] } | null = null;
  private xferSeq = 0;
  snapshotsSent = 0;
  /** Clocks drift: each replica ticks at its own pace around TICK_MS. */
  private readonly tickMs: number;
  snapshotsInstalled = 0;
  private leaseReadsBefore = 0;

  constructor(
    readonly id: NodeId,
    private readonly q: EventQueue,
    private readonly net: Network,
    private readonly rnd: () => number,
    private readonly peers: Map<NodeId, SimNode>,
    private readonly reply: (client: string, r: Reply) => void,
    private readonly obs: Observer,
    bootstrap: ConfState | null,
    private readonly compactEvery: number,
    /** Lease reads for this replica's leaderships, ms of its clock (0 = ReadIndex only). */
    private readonly leaseMs = 0,
  ) {
    this.tickMs = Math.max(2, Math.round(TICK_MS * (0.5 + rnd())));
    const empty: SmState = {
      kv: [],
      sessions: [],
      conf: bootstrap ?? { voters: [], learners: [] },
    };
    this.disk = {
      hard: { term: 0, vote: null, commit: 0 },
      snap: bootstrap
        ? { meta: { index: 0, term: 0, conf: bootstrap }, data: JSON.stringify(empty) }
        : null,
      entries: [],
    };
    this.appliedConf = empty.conf;
  }

  start(): void {
    const inc = ++this.incarnation;
    this.up = true;
    this.loadState(this.disk.snap ? (JSON.parse(this.disk.snap.data) as SmState) : null);
    this.applied = this.disk.snap?.meta.index ?? 0;
    this.raft = new Raft(
      {
        id: this.id,
        electionTicks: 10,
        heartbeatTicks: 2,
        random: this.rnd,
        maxMsgEntries: 8,
        snapshotTimeoutTicks: 40,
        leaseMs: this.leaseMs,
        // Deposed leaders linger (safe: nothing relies on stepping down), so a lease that
        // outlived the followers' promise would be read from.
        checkQuorumTicks: this.leaseMs > 0 ? 40 : 10,
      },
      {
        hardState: { ...this.disk.hard },
        snapshot: this.disk.snap?.meta ?? null,
        entries: this.disk.entries.slice(),
        applied: this.applied,
        conf: { voters: [], learners: [] },
      },
    );
    this.process();
    const tick = () => {
      if (this.incarnation !== inc) return;
      this.clock();
      this.raft?.tick();
      this.process();
      this.expireQueue();
      this.q.after(this.tickMs, tick);
    };
    this.q.after(1 + Math.floor(this.rnd() * TICK_MS), tick);
  }

  /** This replica's clock runs at its own tick pace: the drift lease reads must allow for. */
  private clock(): void {
    this.raft?.setClock((this.q.now * TICK_MS) / this.tickMs);
  }

  get leaseReads(): number {
    return this.leaseReadsBefore + (this.raft?.leaseReads ?? 0);
  }

  /** kill -9: everything but the disk is gone. */
  crash(): void {
    this.leaseReadsBefore += this.raft?.leaseReads ?? 0;
    this.incarnation++;
    this.up = false;
    this.raft = null;
    this.pendingProps.clear();
    this.pendingReads.clear();
    this.readsWaiting = [];
    this.queue = [];
    this.staged = null;
    this.incoming = null;
  }

  receive(m: Message): void {
    if (!this.up || !this.raft) return;
    this.clock();
    this.guard(() => this.raft?.step(m));
    this.process();
  }

  handleRequest(req: Request): void {
    if (!this.up || !this.raft) return;
    const r = this.raft;
    this.clock();
    if (req.op.kind === 'get') {
      const id = `${req.client}:${req.reqId}`;
      this.pendingReads.set(id, req);
      r.readIndex(id);
    } else if (r.isLeader) {
      const p = r.propose(JSON.stringify({ c: req.client, r: req.reqId, op: req.op }));
      if (p) this.pendingProps.set(p.index, { term: p.term, req });
      else this.enqueue(req);
    } else if (r.leaderId !== null && r.leaderId !== this.id && req.hops < 3) {
      const to = this.peers.get(r.leaderId);
      const fwd = { ...req, hops: req.hops + 1 };
      this.net.send(this.id, r.leaderId, () => to?.handleRequest(fwd), true);
    } else {
      this.enqueue(req);
    }
    this.process();
  }

  /** Proposals wait for a leader in a bounded queue; past its timeout the client hears so. */
  private enqueue(req: Request): void {
    if (this.queue.length >= QUEUE_LIMIT) {
      this.sendReply(req, { reqId: req.reqId, status: 'failed' });
      return;
    }
    this.queue.push({ req, deadline: this.q.now + QUEUE_TIMEOUT_MS });
  }

  /** Runs every tick: queued proposals go on once a leader is known. */
  private expireQueue(): void {
    if (this.queue.length === 0 || !this.raft) return;
    const waiting = this.queue;
    this.queue = [];
    const leaderKnown = this.raft.leaderId !== null;
    for (const w of waiting) {
      if (leaderKnown) this.handleRequest(w.req);
      else if (w.deadline <= this.q.now)
        this.sendReply(w.req, { reqId: w.req.reqId, status: 'failed' });
      else this.queue.push(w);
    }
  }

  private sendReply(req: Request, r: Reply): void {
    this.net.send(this.id, req.client, () => this.reply(req.client, r));
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.obs.onViolation(`${this.id}: ${(e as Error).message}`);
    }
  }

  process(): void {
    const r = this.raft;
    if (!r) return;
    const rd = r.ready();
    if (rd.hardState) this.disk.hard = { ...rd.hardState };
    if (rd.entries.length > 0) {
      const first = (rd.entries[0] as Entry).index;
      const base = this.disk.snap?.meta.index ?? 0;
      this.disk.entries.length = Math.max(0, first - base - 1);
      this.disk.entries.push(...rd.entries);
    }
    if (rd.snapshot) {
      if (!this.staged || this.staged.meta.index !== rd.snapshot.index) {
        this.obs.onViolation(`${this.id}: core accepted a snapshot that was not staged`);
        return;
      }
      this.disk.snap = this.staged;
      this.disk.entries = [];
      this.loadState(JSON.parse(this.staged.data) as SmState);
      this.applied = rd.snapshot.index;
      this.staged = null;
      this.snapshotsInstalled++;
    }
    for (const m of rd.messages) {
      if (m.type === 'snapshot') this.sendSnapshot(m);
      else this.net.send(this.id, m.to, () => this.peers.get(m.to)?.receive(m));
    }
    for (const e of rd.committed) this.apply(e);
    for (const rs of rd.reads) {
      const req = this.pendingReads.get(rs.id);
      this.pendingReads.delete(rs.id);
      if (req) this.readsWaiting.push({ index: rs.index, req });
    }
    for (const d of rd.dropped) {
      const req = this.pendingReads.get(d.id);
      this.pendingReads.delete(d.id);
      if (req) this.sendReply(req, { reqId: req.reqId, status: 'failed' });
    }
    this.serveReads();
    if (r.isLeader) this.obs.onLeader(this.id, r.currentTerm, r);
    this.maybeCompact();
  }

  private apply(e: Entry): void {
    if (e.index !== this.applied + 1) {
      this.obs.onViolation(`${this.id}: applied ${e.index} after ${this.applied}`);
    }
    this.obs.onApply(this.id, e);
    this.applied = e.index;
    let result: string | null | boolean | undefined;
    if (e.kind === 'conf' && e.conf) this.appliedConf = e.conf;
    if (e.kind === 'cmd' && e.data) {
      const cmd = JSON.parse(e.data) as { c: string; r: number; op: KvOp };
      // Client sessions: a duplicated or forwarded-twice request applies once.
      if ((this.sessions.get(cmd.c) ?? 0) < cmd.r) {
        this.sessions.set(cmd.c, cmd.r);
        const cur = this.kv.get(cmd.op.key) ?? null;
        if (cmd.op.kind === 'put') this.kv.set(cmd.op.key, cmd.op.value);
        if (cmd.op.kind === 'cas') {
          result = cur === cmd.op.expect;
          if (result) this.kv.set(cmd.op.key, cmd.op.value);
        }
      }
    }
    const p = this.pendingProps.get(e.index);
    if (p) {
      this.pendingProps.delete(e.index);
      // Requests are never duplicated, so an entry of another term at our index means ours
      // can never commit: a definite failure. A duplicate (session) hit answers "unknown".
      const { reqId, op } = p.req;
      if (p.term !== e.term) this.sendReply(p.req, { reqId, status: 'failed' });
      else if (op.kind === 'put' || result !== undefined)
        this.sendReply(p.req, { reqId, status: 'ok', result });
      else this.sendReply(p.req, { reqId, status: 'unknown' });
    }
  }

  private serveReads(): void {
    if (this.readsWaiting.length === 0) return;
    const still: typeof this.readsWaiting = [];
    for (const w of this.readsWaiting) {
      if (w.index > this.applied) still.push(w);
      else {
        const value = this.kv.get(w.req.op.key) ?? null;
        this.sendReply(w.req, { reqId: w.req.reqId, status: 'ok', result: value });
      }
    }
    this.readsWaiting = still;
  }

  private loadState(s: SmState | null): void {
    this.kv = new Map(s?.kv ?? []);
    this.sessions = new Map(s?.sessions ?? []);
    this.appliedConf = s?.conf ?? { voters: [], learners: [] };
  }

  private maybeCompact(): void {
    const r = this.raft;
    const base = this.disk.snap?.meta.index ?? 0;
    if (!r || this.applied - base < this.compactEvery) return;
    const term = r.termAt(this.applied);
    if (term === undefined) return;
    const meta: SnapshotMeta = { index: this.applied, term, conf: this.appliedConf };
    const data: SmState = {
      kv: [...this.kv],
      sessions: [...this.sessions],
      conf: this.appliedConf,
    };
    this.disk.entries = this.disk.entries.slice(this.applied - base);
    this.disk.snap = { meta, data: JSON.stringify(data) };
    this.guard(() => r.compact(meta));
  }

  /** Streams the current snapshot chunk by chunk, each acknowledged before the next. */
  private sendSnapshot(m: Extract<Message, { type: 'snapshot' }>): void {
    const snap = this.disk.snap;
    if (!snap || snap.meta.index !== m.meta.index) return; // the core retries after a timeout
    const xfer = `${this.id}#${++this.xferSeq}`;
    const chunks: string[] = [];
    for (let i = 0; i < snap.data.length; i += CHUNK_CHARS) {
      chunks.push(snap.data.slice(i, i + CHUNK_CHARS));
    }
    const inc = this.incarnation;
    this.snapshotsSent++;
    const sendChunk = (i: number) => {
      const target = this.peers.get(m.to);
      this.net.send(this.id, m.to, () => {
        const ok = target?.receiveChunk(xfer, i, chunks.length, chunks[i] ?? '', m) ?? false;
        if (!ok) return;
        this.net.send(m.to, this.id, () => {
          if (this.incarnation !== inc || !this.raft) return;
          if (i + 1 < chunks.length) sendChunk(i + 1);
          else {
            this.raft.reportSnapshot(m.to, true);
            this.process();
          }
        });
      });
    };
    sendChunk(0);
  }

  /** Returns whether the chunk was taken (in order); the last one hands the core the message. */
  receiveChunk(
    xfer: string,
    i: number,
    total: number,
    data: string,
    m: Extract<Message, { type: 'snapshot' }>,
  ): boolean {
    if (!this.up || !this.raft) return false;
    if (i === 0) this.incoming = { xfer, chunks: [] };
    const inc = this.incoming;
    if (!inc || inc.xfer !== xfer || inc.chunks.length !== i) return false;
    inc.chunks.push(data);
    if (inc.chunks.length === total) {
      this.incoming = null;
      this.staged = { meta: m.meta, data: inc.chunks.join('') };
      this.receive(m);
      this.staged = null;
    }
    return true;
  }

  /** Started at least once (so a crashed one has something to come back to). */
  get everStarted(): boolean {
    return this.incarnation > 0;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  get state(): ReadonlyMap<string, string> {
    return this.kv;
  }
}
