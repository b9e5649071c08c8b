// Hand-driven scenarios for the Raft core: a few Raft instances and a tiny in-test router
// that delivers, drops or rewrites messages, so each test builds exactly the situation its
// property is about (the seeded simulator explores the rest). Each scenario was checked
// to fail against a core with the guarding code mutated away.
import { describe, expect, it } from 'vitest';
import { Raft, type RaftOptions } from './core.ts';
import type { Entry, Message, NodeId, ReadState, SnapshotMeta } from './types.ts';

const ELECTION = 10;

/** Tiny seeded PRNG (local so the file has no imports outside the raft folder). */
const prng = (seed: number) => () =>
  (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;

/** What a node's host saw come out of its Readys. */
type Out = { applied: Entry[]; reads: ReadState[]; dropped: string[]; snapshots: SnapshotMeta[] };

/** A tiny host + network: delivers in order, except over cut links or what `mangle` drops. */
class Router {
  readonly nodes = new Map<NodeId, Raft>();
  readonly out = new Map<NodeId, Out>();
  /** Every message any node produced, delivered or not. */
  readonly sent: Message[] = [];
  /** Returns the message to deliver (possibly rewritten), or null to lose it. */
  mangle = (m: Message): Message | null => m;
  private readonly cut = new Set<string>();
  private readonly queue: Message[] = [];

  constructor(voters: NodeId[], joiners: NodeId[] = [], opts: Partial<RaftOptions> = {}) {
    [...voters, ...joiners].forEach((id, i) => {
      const o = { id, electionTicks: ELECTION, heartbeatTicks: 2, random: prng(i + 1), ...opts };
      // Joiners start with no membership, as a spare node does in production.
      const conf = voters.includes(id) ? { voters, learners: [] } : undefined;
      const hardState = { term: 0, vote: null, commit: 0 };
      this.nodes.set(id, new Raft(o, { hardState, snapshot: null, entries: [], applied: 0, conf }));
      this.out.set(id, { applied: [], reads: [], dropped: [], snapshots: [] });
    });
  }

  n(id: NodeId): Raft {
    return this.nodes.get(id) as Raft;
  }

  o(id: NodeId): Out {
    return this.out.get(id) as Out;
  }

  /** The host's half of the contract: take one Ready and queue its messages. */
  drain(id: NodeId): void {
    const rd = this.n(id).ready();
    const o = this.o(id);
    o.applied.push(...rd.committed);
    o.reads.push(...rd.reads);
    o.dropped.push(...rd.dropped.map((d) => d.id));
    if (rd.snapshot) o.snapshots.push(rd.snapshot);
    this.sent.push(...rd.messages);
    this.queue.push(...rd.messages);
  }

  /** Delivers until nothing is in flight, draining each receiver right after its step. */
  flush(): void {
    for (const id of this.nodes.keys()) this.drain(id);
    for (let steps = 0; this.queue.length > 0; steps++) {
      if (steps > 100_000) throw new Error('message storm');
      const raw = this.queue.shift() as Message;
      if (this.cut.has(`${raw.from}>${raw.to}`) || !this.nodes.has(raw.to)) continue;
      const m = this.mangle(raw);
      if (!m) continue;
      this.n(m.to).step(m);
      this.drain(m.to);
    }
  }

  tick(ids: NodeId[], times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of ids) this.n(id).tick();
      this.flush();
    }
  }

  tickAll(times = 1): void {
    this.tick([...this.nodes.keys()], times);
  }

  /** Cuts every link between the two sides, both ways. */
  partition(a: NodeId[], b: NodeId[]): void {
    for (const x of a) for (const y of b) this.cut.add(`${x}>${y}`).add(`${y}>${x}`);
  }

  isolate(id: NodeId): void {
    this.partition([id], [...this.nodes.keys()]);
  }

  heal(): void {
    this.cut.clear();
    this.mangle = (m) => m;
  }

  /** Starts an election at `id` now (a TimeoutNow to itself): the scenario picks who and when. */
  campaign(id: NodeId): void {
    this.n(id).step({ type: 'timeoutNow', from: id, to: id, term: this.n(id).currentTerm });
    this.flush();
  }

  elect(id: NodeId): Raft {
    this.campaign(id);
    expect(this.n(id).isLeader, `${id} should have won`).toBe(true);
    return this.n(id);
  }

  leaders(): NodeId[] {
    return [...this.nodes].filter(([, r]) => r.isLeader).map(([id]) => id);
  }
}

const three = () => new Router(['n1', 'n2', 'n3']);
const five = (opts: Partial<RaftOptions> = {}) =>
  new Router(['s1', 's2', 's3', 's4', 's5'], [], opts);
const datas = (es: Entry[] | undefined) => es?.map((e) => e.data ?? e.kind);

describe('elections', () => {
  it('ticking elects one leader that all follow; a node cut off neither wins nor bumps its term', () => {
    const net = three();
    net.isolate('n1');
    net.tick(['n1'], 20 * ELECTION); // pre-votes fail, so no real campaign either
    expect([net.n('n1').isLeader, net.n('n1').currentTerm]).toEqual([false, 0]);
    net.heal();
    net.tickAll(5 * ELECTION);
    const [leader, ...more] = net.leaders();
    expect(more).toEqual([]);
    const { currentTerm } = net.n(leader as NodeId);
    // Everyone follows it in its term, and its noop has committed everywhere.
    for (const r of net.nodes.values()) {
      expect([r.leaderId, r.currentTerm, r.commitIndex]).toEqual([leader, currentTerm, 1]);
    }
    // Followers take no proposals, membership changes or transfers.
    const follower = net.n(leader === 'n1' ? 'n2' : 'n1');
    expect(follower.propose('x')).toBeNull();
    expect(follower.proposeConf({ type: 'remove', node: 'n3' })).toBeNull();
    expect(follower.transferLeadership('n3')).toBe(false);
  });

  it('pre-vote: a long-partitioned node rejoins without disrupting the term', () => {
    const net = three();
    net.elect('n1');
    net.isolate('n3');
    net.tickAll(30 * ELECTION); // n3 keeps pre-campaigning; every pre-vote fails
    expect(net.n('n3').currentTerm).toBe(1);
    expect(net.sent.some((m) => m.from === 'n3' && m.type === 'prevote')).toBe(true);
    net.heal();
    net.tickAll(5 * ELECTION);
    expect(net.leaders()).toEqual(['n1']);
    for (const r of net.nodes.values()) expect(r.currentTerm).toBe(1);
    expect(net.n('n3').leaderId).toBe('n1');
  });

  it('leader stickiness: a follower that just heard from its leader ignores a higher-term vote', () => {
    const net = three();
    net.elect('n1');
    const n2 = net.n('n2');
    const req = { from: 'n3', to: 'n2', term: 5, lastIndex: 99, lastTerm: 4 };
    n2.step({ type: 'vote', ...req });
    n2.step({ type: 'prevote', ...req });
    let rd = n2.ready();
    expect(n2.currentTerm).toBe(1);
    expect(rd.messages).toEqual([]);
    // A leadership transfer's vote is the one exception.
    n2.step({ type: 'vote', ...req, transfer: true });
    rd = n2.ready();
    expect(n2.currentTerm).toBe(5);
    expect(rd.messages).toMatchObject([{ type: 'voteResp', to: 'n3', granted: true }]);
  });

  it('a candidate whose log is behind a majority cannot win', () => {
    const net = three();
    net.elect('n1');
    net.isolate('n3');
    net.n('n1').propose('x'); // committed by n1 and n2; n3 misses it
    net.flush();
    net.heal();
    net.isolate('n1');
    net.campaign('n3');
    expect(net.n('n3').isLeader).toBe(false);
    net.elect('n2');
    expect(net.n('n2').termAt(2)).toBe(1);
  });

  it('CheckQuorum: an isolated leader steps down within ~2 election timeouts', () => {
    const net = three();
    net.elect('n1');
    net.isolate('n1');
    let ticks = 0;
    for (; net.n('n1').isLeader && ticks < 10 * ELECTION; ticks++) net.tick(['n1']);
    expect(ticks).toBeLessThanOrEqual(2 * ELECTION);
    expect(net.n('n1').leaderId).toBe(null);
  });
});

describe('log safety', () => {
  it('Figure 8: an earlier-term entry on a majority is committed only with an own-term entry', () => {
    // One entry per message, so index 2 and index 3 travel to s3 separately.
    const net = five({ maxMsgEntries: 1 });
    net.elect('s1'); // term 1, noop at 1 committed everywhere
    // (a) s1 replicates x (2, term 1) to s2 only.
    net.partition(['s1', 's2'], ['s3', 's4', 's5']);
    net.n('s1').propose('x');
    net.flush();
    // (b) s1 loses its quorum and steps down (CheckQuorum); s5 wins term 2 with s3, s4 and
    // appends its noop (2, term 2) locally only.
    net.tick(['s1'], 2 * ELECTION);
    expect(net.n('s1').isLeader).toBe(false);
    net.heal();
    net.partition(['s3', 's4', 's5'], ['s1', 's2']);
    net.mangle = (m) => (m.type === 'append' ? null : m);
    net.elect('s5');
    expect(net.n('s5').termAt(2)).toBe(2);
    // (c) s5 is gone; s1 wins term 3 with s2, s3 (term 2 fails: s3 already voted for s5),
    // and gets x to s3 but not its own noop (3, term 3).
    net.heal();
    net.isolate('s5');
    net.isolate('s4');
    // Once s3 holds x, every message carrying a term-3 entry to it is lost.
    net.mangle = (m) =>
      m.type === 'append' &&
      m.to === 's3' &&
      net.n('s3').termAt(2) === 1 &&
      m.entries.some((e) => e.term === 3)
        ? null
        : m;
    net.campaign('s1');
    net.elect('s1');
    expect(net.n('s1').currentTerm).toBe(3);
    for (const id of ['s1', 's2', 's3']) expect(net.n(id).termAt(2), id).toBe(1);
    // x is on 3 of 5 but s5 (last term 2) could still be elected and overwrite it.
    expect(net.n('s1').commitIndex).toBe(1);
    // Heartbeats and retries change nothing (s3's acks stop, so stay within one CheckQuorum
    // round).
    net.tick(['s1'], ELECTION);
    expect(net.n('s1').commitIndex).toBe(1);
    // (e) once the term-3 noop reaches a majority, both commit together.
    net.mangle = (m) => m;
    net.tick(['s1'], 4 * 2); // lost appends are resent after 3 stalled heartbeats
    expect(net.n('s1').commitIndex).toBe(3);
    expect(datas(net.o('s1').applied)).toEqual(['noop', 'x', 'noop']);
  });

  it('a follower with a conflicting uncommitted suffix has it replaced', () => {
    const net = three();
    net.elect('n1');
    net.isolate('n1');
    net.n('n1').propose('a'); // 2 and 3 at term 1 exist only on n1
    net.n('n1').propose('b');
    net.flush();
    net.elect('n2');
    net.n('n2').propose('c');
    net.flush();
    net.heal();
    net.tick(['n2'], 3 * 2);
    const n1 = net.n('n1');
    expect(n1.leaderId).toBe('n2');
    expect([n1.termAt(2), n1.termAt(3), n1.lastIndex()]).toEqual([2, 2, 3]);
    expect(n1.commitIndex).toBe(3);
    expect(datas(net.o('n1').applied)).toEqual(['noop', 'noop', 'c']);
  });
});

describe('ReadIndex', () => {
  it('a leader answers only after a majority acks a heartbeat of its term', () => {
    const net = five();
    net.elect('s1');
    net.n('s1').readIndex('r0');
    net.flush();
    expect(net.o('s1').reads).toEqual([{ id: 'r0', index: 1 }]);
    // Everyone acked r0's round; r1 needs acks of a newer one.
    net.partition(['s1'], ['s3', 's4', 's5']);
    net.n('s1').readIndex('r1');
    net.drain('s1'); // the heartbeats are out, no ack has come back
    expect(net.o('s1').reads).toHaveLength(1);
    net.flush(); // s2 acks: 2 of 5 is not enough
    expect(net.o('s1').reads).toHaveLength(1);
    net.heal();
    net.tick(['s1'], 2); // the next heartbeat carries the same read round
    expect(net.o('s1').reads.at(-1)).toEqual({ id: 'r1', index: 1 });
  });

  it('an isolated, stale leader never answers; it drops the read when it steps down', () => {
    const net = three();
    net.elect('n1');
    net.isolate('n1');
    net.elect('n2');
    net.n('n2').propose('w');
    net.flush();
    net.n('n1').readIndex('stale');
    net.tick(['n1'], 3 * ELECTION);
    expect(net.o('n1').reads).toEqual([]);
    expect(net.o('n1').dropped).toEqual(['stale']);
  });

  it('a new leader answers only once its noop has committed', () => {
    const net = three();
    net.elect('n1');
    // n2 wins term 2, but its appends lose their entries: heartbeats (and read acks) get
    // through while the noop never does.
    net.mangle = (m) => (m.type === 'append' && m.from === 'n2' ? { ...m, entries: [] } : m);
    net.elect('n2');
    net.n('n2').readIndex('r');
    net.tick(['n2'], ELECTION / 2);
    expect(net.n('n2').commitIndex).toBe(1);
    expect(net.o('n2').reads).toEqual([]);
    net.mangle = (m) => m;
    net.tick(['n2'], ELECTION / 2);
    expect(net.n('n2').commitIndex).toBe(2);
    expect(net.o('n2').reads).toEqual([{ id: 'r', index: 2 }]);
  });

  it("a follower's read is forwarded and answered with the leader's commit index", () => {
    const net = three();
    net.elect('n1');
    // n2 stops hearing appends, so its own commit index lags the leader's.
    net.mangle = (m) => (m.type === 'append' && m.to === 'n2' ? null : m);
    net.n('n1').propose('x');
    net.flush();
    expect([net.n('n1').commitIndex, net.n('n2').commitIndex]).toEqual([2, 1]);
    net.n('n2').readIndex('f');
    net.flush();
    expect(net.sent.some((m) => m.type === 'readIndex' && m.from === 'n2')).toBe(true);
    expect(net.o('n2').reads).toEqual([{ id: 'f', index: 2 }]);
  });
});

describe('snapshots', () => {
  it('a lagging follower gets the meta-only snapshot and restarts its log after it', () => {
    const net = three();
    net.elect('n1');
    net.isolate('n3');
    for (const d of ['a', 'b', 'c']) net.n('n1').propose(d);
    net.flush();
    const meta: SnapshotMeta = { index: 4, term: 1, conf: net.n('n1').membership };
    expect(net.n('n1').commitIndex).toBe(4);
    net.n('n1').compact(meta);
    net.heal();
    net.tick(['n1'], 4 * 2);
    const snaps = net.sent.filter((m) => m.type === 'snapshot');
    expect(snaps).toEqual([{ type: 'snapshot', from: 'n1', to: 'n3', term: 1, meta }]);
    expect(net.o('n3').snapshots).toEqual([meta]);
    net.n('n1').propose('d');
    net.flush();
    const n3 = net.n('n3');
    expect(n3.status().snapshotIndex).toBe(4);
    expect(n3.termAt(3)).toBeUndefined();
    expect([n3.termAt(4), n3.termAt(5), n3.lastIndex()]).toEqual([1, 1, 5]);
    // 2–4 came inside the snapshot, never as entries (n3 missed even the commit of 1).
    expect(net.o('n3').applied.map((e) => e.index)).toEqual([5]);
  });

  it('a follower that already holds the entry at meta.index keeps its log', () => {
    const net = three();
    net.elect('n1');
    const n1 = net.n('n1');
    const n3 = net.n('n3');
    // Hand-deliver two appends to n3 only: it gets 2 and 3 but still has commit 1.
    for (const d of ['a', 'b']) {
      n1.propose(d);
      const app = n1.ready().messages.find((m) => m.type === 'append' && m.to === 'n3');
      n3.step(app as Message);
      n3.ready();
    }
    expect([n3.lastIndex(), n3.commitIndex]).toEqual([3, 1]);
    const meta = { index: 2, term: 1, conf: n1.membership };
    n3.step({ type: 'snapshot', from: 'n1', to: 'n3', term: 1, meta });
    const rd = n3.ready();
    expect(rd.snapshot).toBeUndefined();
    expect(rd.messages).toMatchObject([{ type: 'appendResp', success: true, index: 2 }]);
    const { snapshotIndex, lastIndex, commitIndex } = n3.status();
    expect({ snapshotIndex, lastIndex, commitIndex }).toEqual({
      snapshotIndex: 0,
      lastIndex: 3,
      commitIndex: 2,
    });
  });
});

describe('membership', () => {
  const withJoiner = () => new Router(['n1', 'n2', 'n3'], ['n4']);

  it("a learner receives the log, its acks don't commit, and it never campaigns", () => {
    const net = withJoiner();
    net.elect('n1');
    net.partition(['n1', 'n4'], ['n2', 'n3']);
    expect(net.n('n1').proposeConf({ type: 'addLearner', node: 'n4' })?.index).toBe(2);
    net.tick(['n1'], 2); // the leader starts probing a new member at its next heartbeat
    expect(net.n('n4').status().role).toBe('learner');
    expect(net.n('n4').lastIndex()).toBe(2);
    expect(net.n('n1').commitIndex).toBe(1); // n1 + learner n4 is not 2 of 3 voters
    net.heal();
    net.tick(['n1'], 4 * 2); // lost appends are resent after 3 stalled heartbeats
    expect(net.n('n1').commitIndex).toBe(2);
    net.isolate('n1');
    net.tick(['n4'], 10 * ELECTION);
    expect(net.sent.some((m) => m.from === 'n4' && m.type !== 'appendResp')).toBe(false);
  });

  it('one membership change at a time; promote only once the learner has caught up', () => {
    const net = withJoiner();
    const n1 = net.elect('n1');
    net.isolate('n4');
    net.partition(['n1'], ['n2', 'n3']);
    expect(n1.proposeConf({ type: 'addLearner', node: 'n4' })?.index).toBe(2);
    net.flush();
    expect(n1.proposeConf({ type: 'remove', node: 'n3' })).toBeNull(); // 2 is pending
    net.heal();
    net.isolate('n4');
    net.tick(['n1'], 4 * 2); // lost appends are resent after 3 stalled heartbeats
    expect(n1.commitIndex).toBe(2);
    expect(n1.proposeConf({ type: 'promote', node: 'n4' })).toBeNull(); // n4 has nothing
    net.heal();
    net.tick(['n1'], 2);
    expect(net.n('n4').lastIndex()).toBe(2);
    expect(n1.proposeConf({ type: 'promote', node: 'n4' })).not.toBeNull();
    net.tick(['n1'], 2);
    expect(net.n('n4').membership.voters).toEqual(['n1', 'n2', 'n3', 'n4']);
  });

  it('a removed leader commits its removal, steps down, and the rest elect a new leader', () => {
    const net = three();
    net.elect('n1');
    net.n('n1').proposeConf({ type: 'remove', node: 'n1' });
    net.flush();
    expect(net.n('n1').isLeader).toBe(false);
    expect(net.n('n1').commitIndex).toBe(2);
    expect(net.o('n1').applied.at(-1)?.conf).toEqual({ voters: ['n2', 'n3'], learners: [] });
    net.tickAll(5 * ELECTION);
    const [leader, ...more] = net.leaders();
    expect([leader, more]).toEqual([expect.stringMatching(/^n[23]$/), []]);
    expect(net.n(leader as NodeId).commitIndex).toBeGreaterThanOrEqual(3);
  });
});

describe('leadership transfer', () => {
  it('the transferee campaigns on TimeoutNow and wins; proposals are refused meanwhile', () => {
    const net = three();
    const n1 = net.elect('n1');
    net.mangle = (m) => (m.type === 'timeoutNow' ? null : m); // hold the hand-over
    expect(n1.transferLeadership('n2')).toBe(true);
    net.flush();
    expect(n1.propose('x')).toBeNull();
    expect(n1.proposeConf({ type: 'remove', node: 'n3' })).toBeNull();
    net.mangle = (m) => m;
    net.tick(['n1'], 2); // the next heartbeat ack finds n2 caught up: TimeoutNow goes out
    expect(net.leaders()).toEqual(['n2']);
    expect(net.n('n2').currentTerm).toBe(2);
    expect(n1.leaderId).toBe('n2');
    expect(net.n('n2').propose('y')).not.toBeNull();
  });
});

describe('lease reads', () => {
  const TICK = 50;
  const LEASE = 300; // below (ELECTION - 1) ticks = 450 ms
  /** A 3-node group on one clock (ms) that the test moves; a leader with a fresh lease. */
  function leased() {
    const net = new Router(['n1', 'n2', 'n3'], [], { leaseMs: LEASE });
    let t = 0;
    const clock = (ms: number) => {
      t = ms;
      for (const r of net.nodes.values()) r.setClock(t);
    };
    const tick = (ids: NodeId[], n: number) => {
      for (let i = 0; i < n; i++) {
        clock(t + TICK);
        net.tick(ids);
      }
    };
    clock(0);
    const n1 = net.elect('n1');
    tick(['n1', 'n2', 'n3'], 2); // a heartbeat round, acked at once: the lease runs from now
    return { net, n1, clock, tick, now: () => t };
  }

  it('answers at once under the lease, and needs a round once it has run out', () => {
    const { net, n1, clock, now } = leased();
    const sent = now();
    net.isolate('n1');
    clock(sent + LEASE - 1);
    n1.readIndex('in-lease');
    net.drain('n1');
    expect(net.o('n1').reads).toEqual([{ id: 'in-lease', index: 1 }]);
    expect(n1.leaseReads).toBe(1);
    clock(sent + LEASE);
    n1.readIndex('expired');
    net.flush();
    expect(net.o('n1').reads.map((r) => r.id)).toEqual(['in-lease']);
  });

  it('runs from when the heartbeat was sent, not from when the acks came back', () => {
    const { net, n1, clock, now } = leased();
    // The next round's acks are held back 200 ms.
    const held: Message[] = [];
    net.mangle = (m) => {
      if (m.type !== 'appendResp') return m;
      held.push(m);
      return null;
    };
    clock(now() + TICK);
    net.tick(['n1'], 2);
    const sent = now();
    expect(held.length).toBeGreaterThan(0);
    clock(sent + 200);
    net.mangle = (m) => m;
    for (const m of held) n1.step(m);
    net.isolate('n1');
    clock(sent + LEASE + 1);
    n1.readIndex('late');
    net.flush();
    expect(net.o('n1').reads.map((r) => r.id)).not.toContain('late');
  });

  it('a new leader can only be elected after the old lease has run out', () => {
    const { net, n1, now, tick } = leased();
    const leaseEnd = now() + LEASE;
    net.isolate('n1');
    let elected: number | undefined;
    for (let i = 0; i < 4 * ELECTION && elected === undefined; i++) {
      tick(['n2', 'n3'], 1);
      if (net.n('n2').isLeader || net.n('n3').isLeader) elected = now();
    }
    expect(elected).toBeDefined();
    expect(elected).toBeGreaterThan(leaseEnd);
    expect(n1.isLeader).toBe(true); // it has not noticed: only its lease keeps reads right
  });

  it('a replica that just started refuses votes for an election timeout', () => {
    const net = new Router(['n1', 'n2', 'n3'], [], { leaseMs: LEASE });
    const vote: Message = {
      type: 'vote',
      from: 'n2',
      to: 'n1',
      term: 5,
      lastIndex: 0,
      lastTerm: 0,
    } as Message;
    net.n('n1').step(vote);
    net.drain('n1');
    expect(net.sent.filter((m) => m.type === 'voteResp')).toEqual([]);
    net.n('n1').tick();
    for (let i = 1; i < ELECTION; i++) net.n('n1').tick();
    net.n('n1').step({ ...vote, term: 6 });
    net.drain('n1');
    expect(net.sent.filter((m) => m.type === 'voteResp')).toHaveLength(1);
    // Without CheckQuorum (no stickiness, no leases) there is nothing to wait for.
    const plain = new Router(['n1', 'n2', 'n3'], [], { checkQuorum: false });
    plain.n('n1').step(vote);
    plain.drain('n1');
    expect(plain.sent.filter((m) => m.type === 'voteResp')).toHaveLength(1);
  });

  it('a leadership transfer ends lease reads for the rest of the term', () => {
    const { net, n1, clock, now, tick } = leased();
    net.mangle = (m) => (m.type === 'timeoutNow' ? null : m); // the hand-over never lands
    expect(n1.transferLeadership('n2')).toBe(true);
    net.flush();
    tick(['n1', 'n2', 'n3'], ELECTION + 2); // the transfer is abandoned; rounds go on
    expect(n1.isLeader).toBe(true);
    net.isolate('n1');
    clock(now() + 1);
    n1.readIndex('after-transfer');
    net.flush();
    expect(net.o('n1').reads.map((r) => r.id)).not.toContain('after-transfer');
    expect(n1.leaseReads).toBe(0);
  });
});
