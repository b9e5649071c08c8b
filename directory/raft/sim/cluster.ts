// One seeded simulation run: replicas (node.ts) on a faulty network (network.ts), clients
// writing and reading a few keys, a fault schedule (loss, delay, reordering, duplication,
// symmetric and asymmetric partitions, crashes and restarts that keep the disk, membership
// changes, leadership transfers), then a healing phase. Checked: election safety, log
// matching, leader completeness, state-machine safety, linearizability of what clients
// saw, and liveness once healed. runSeed(n) replays exactly from n.
import { mulberry32 } from '../../../common/payload.ts';
import type { Raft } from '../core.ts';
import type { Entry, NodeId } from '../types.ts';
import { checkLinearizable, type HistoryOp, type KvOp, randomOp } from './linearizability.ts';
import { EventQueue, randomNetwork, runLog } from './network.ts';
import { type Reply, SAFE_LEASE_MS, SimNode } from './node.ts';

export interface SimOptions {
  faultMs?: number;
  healMs?: number;
  clients?: number;
  /** Replay tracing: log fault events to stdout. */
  verbose?: boolean;
  /** The lease of the seeds that use leases (default SAFE_LEASE_MS; longer = a mutant). */
  leaseMs?: number;
  /** Linearizability search budget (states). */
  maxStates?: number;
  dumpHistory?: (h: HistoryOp[]) => void;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violations: string[];
  stats: {
    voters: number;
    ops: number;
    okOps: number;
    indefinite: number;
    /** Refused before they could take effect (no leader in time, queue full, lost their slot). */
    failed: number;
    terms: number;
    crashes: number;
    partitions: number;
    /** Of those, one way only (a hears b, b does not hear a). */
    oneWayPartitions: number;
    /** Messages lost, duplicated, held back past later ones (reordered), cut by a partition. */
    lost: number;
    duplicated: number;
    heldBack: number;
    cut: number;
    confChanges: number;
    transfers: number;
    snapshotsInstalled: number;
    /** Reads a leader answered under its lease (seeds with lease reads on). */
    leaseReads: number;
    events: number;
  };
}

const CLIENT_TIMEOUT_MS = 400;
const MAX_EVENTS = 2_000_000;

export function runSeed(seed: number, opts: SimOptions = {}): SimResult {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const q = new EventQueue();
  const net = randomNetwork(q, rnd, 0.15, 15);
  const { violations, violate, trace: log } = runLog(q, opts.verbose);
  const stats: SimResult['stats'] = {
    voters: rnd() < 0.7 ? 3 : 5,
    ops: 0,
    okOps: 0,
    indefinite: 0,
    failed: 0,
    terms: 0,
    crashes: 0,
    partitions: 0,
    oneWayPartitions: 0,
    lost: 0,
    duplicated: 0,
    heldBack: 0,
    cut: 0,
    confChanges: 0,
    transfers: 0,
    snapshotsInstalled: 0,
    leaseReads: 0,
    events: 0,
  };
  const spare = rnd() < 0.5 ? 2 : 0;
  // Half the seeds read under leader leases, sized for the simulator's clock drift (node.ts).
  const lease = rnd() < 0.5;
  const ids = Array.from({ length: stats.voters + spare }, (_, i) => `n${i + 1}`);
  const initial = ids.slice(0, stats.voters);

  // ---- checkers fed by the nodes
  const leaders = new Map<number, NodeId>();
  const committed = new Map<number, string>();
  const fingerprint = (e: Entry) => `${e.term}|${e.kind}|${e.data ?? ''}|${JSON.stringify(e.conf)}`;
  const observer = {
    onApply(node: NodeId, e: Entry) {
      const f = fingerprint(e);
      const had = committed.get(e.index);
      if (had === undefined) committed.set(e.index, f);
      else if (had !== f)
        violate(`state-machine safety: ${node} applied ${e.index} = ${f}, others ${had}`);
    },
    onLeader(node: NodeId, term: number, raft: Raft) {
      const had = leaders.get(term);
      if (had === undefined) {
        leaders.set(term, node);
        // Leader completeness: every entry applied anywhere so far is in the new leader's log.
        const snap = raft.status().snapshotIndex;
        for (const [i, f] of committed) {
          if (i <= snap) continue;
          const t = raft.termAt(i);
          if (t === undefined || String(t) !== f.slice(0, f.indexOf('|'))) {
            violate(`leader completeness: ${node} leads term ${term} without committed entry ${i}`);
            break;
          }
        }
      } else if (had !== node)
        violate(`election safety: ${had} and ${node} both lead term ${term}`);
    },
    onViolation: violate,
  };

  // ---- clients
  const history: HistoryOp[] = [];
  const nodes = new Map<NodeId, SimNode>();
  let clientsRunning = true;
  const clients = Array.from({ length: opts.clients ?? 4 }, (_, i) => ({
    name: `c${i + 1}`,
    idx: i,
    reqId: 0,
    cur: null as null | { reqId: number; op: KvOp; invoke: number },
  }));
  type Client = (typeof clients)[number];
  const finish = (
    c: Client,
    ret: number | undefined,
    result?: string | null | boolean,
    definitelyFailed = false,
  ) => {
    const cur = c.cur;
    if (!cur) return;
    c.cur = null;
    if (definitelyFailed) stats.failed++;
    else if (ret !== undefined || cur.op.kind !== 'get') {
      history.push({ client: c.idx, op: cur.op, invoke: cur.invoke, ret, result });
      if (ret === undefined) stats.indefinite++;
      else stats.okOps++;
    }
    if (clientsRunning) q.after(Math.floor(rnd() * 20), () => issue(c));
  };
  const onReply = (name: string, r: Reply) => {
    const c = clients.find((x) => x.name === name);
    if (!c?.cur || c.cur.reqId !== r.reqId) return;
    if (r.status === 'ok') finish(c, q.now, r.result);
    else if (r.status === 'unknown') finish(c, undefined);
    else finish(c, undefined, undefined, true);
  };
  const issue = (c: Client) => {
    if (!clientsRunning || c.cur) return;
    const reqId = ++c.reqId;
    const op = randomOp(rnd, c.name, reqId, clients.length);
    c.cur = { reqId, op, invoke: q.now };
    stats.ops++;
    const to = pick(ids);
    const req = { client: c.name, reqId, op, hops: 0 };
    net.send(c.name, to, () => nodes.get(to)?.handleRequest(req), true);
    q.after(CLIENT_TIMEOUT_MS, () => {
      if (c.cur?.reqId === reqId) finish(c, undefined);
    });
  };

  for (const id of ids) {
    const node = new SimNode(
      id,
      q,
      net,
      rnd,
      nodes,
      onReply,
      observer,
      initial.includes(id) ? { voters: initial, learners: [] } : null,
      10 + Math.floor(rnd() * 40),
      lease ? (opts.leaseMs ?? SAFE_LEASE_MS) : 0,
    );
    nodes.set(id, node);
    if (initial.includes(id)) node.start();
  }
  for (const c of clients) q.after(50 + Math.floor(rnd() * 50), () => issue(c));

  // ---- faults
  const leaderNode = (): SimNode | undefined =>
    [...nodes.values()].find((n) => n.up && n.raft?.isLeader);
  const faultMs = opts.faultMs ?? 3000;
  const faultStep = () => {
    if (q.now >= faultMs) return;
    const x = rnd();
    const upNodes = [...nodes.values()].filter((n) => n.up);
    const down = [...nodes.values()].filter((n) => !n.up && n.everStarted);
    if (x < 0.2 && upNodes.length > 0) {
      const n = rnd() < 0.5 ? (leaderNode() ?? pick(upNodes)) : pick(upNodes);
      n.crash();
      stats.crashes++;
      log(`crash ${n.id}`);
    } else if (x < 0.4 && down.length > 0) {
      const n = pick(down);
      n.start();
      log(`restart ${n.id}`);
    } else if (x < 0.55) {
      const shuffled = ids.slice().sort(() => rnd() - 0.5);
      const cut = 1 + Math.floor(rnd() * (ids.length - 1));
      const asym = rnd() < 0.4;
      net.heal();
      net.partition(shuffled.slice(0, cut), shuffled.slice(cut), asym);
      stats.partitions++;
      if (asym) stats.oneWayPartitions++;
      log(
        `partition ${shuffled.slice(0, cut)} | ${shuffled.slice(cut)}${asym ? ' (one way)' : ''}`,
      );
    } else if (x < 0.62) {
      // Cut the leader off from everyone (one way or both): the stale-leader window.
      const l = leaderNode();
      if (l) {
        const asym = rnd() < 0.5;
        net.heal();
        net.partition(
          [l.id],
          ids.filter((i) => i !== l.id),
          asym,
        );
        stats.partitions++;
        if (asym) stats.oneWayPartitions++;
        log(`isolate leader ${l.id}${asym ? ' (one way)' : ''}`);
      }
    } else if (x < 0.7) {
      net.heal();
      log('heal');
    } else if (x < 0.85 && spare > 0) {
      confChange();
    } else {
      const l = leaderNode();
      const to = l ? pick(l.raft?.membership.voters ?? []) : undefined;
      if (l && to && l.raft?.transferLeadership(to)) {
        l.process();
        stats.transfers++;
        log(`transfer ${l.id} -> ${to}`);
      }
    }
    q.after(50 + Math.floor(rnd() * 300), faultStep);
  };
  const confChange = () => {
    const l = leaderNode();
    const raft = l?.raft;
    if (!l || !raft) return;
    const { voters, learners } = raft.membership;
    const outside = ids.filter((i) => !voters.includes(i) && !learners.includes(i));
    const y = rnd();
    let ok = false;
    let what = '';
    if (y < 0.35 && outside.length > 0) {
      const n = pick(outside);
      ok = raft.proposeConf({ type: 'addLearner', node: n }) !== null;
      const node = nodes.get(n);
      if (ok && node && !node.up) node.start();
      what = `addLearner ${n}`;
    } else if (y < 0.7 && learners.length > 0) {
      const n = pick(learners);
      ok = raft.proposeConf({ type: 'promote', node: n }) !== null;
      what = `promote ${n}`;
    } else if (voters.length > 2 || learners.length > 0) {
      const n = pick([...voters, ...learners]);
      ok = raft.proposeConf({ type: 'remove', node: n }) !== null;
      what = `remove ${n}`;
    }
    if (ok) {
      stats.confChanges++;
      log(`${l.id}: ${what}`);
    }
    l.process();
  };
  q.after(100, faultStep);

  stats.events += q.runUntil(faultMs, MAX_EVENTS);

  // ---- heal: every member back up, network reliable; the cluster must make progress.
  net.heal();
  net.healthy = true;
  const members = () => {
    const l = leaderNode();
    const conf = l?.raft?.membership;
    return conf ? [...conf.voters, ...conf.learners] : ids;
  };
  for (const n of nodes.values()) if (!n.up && n.everStarted) n.start();
  const healMs = opts.healMs ?? 3000;
  const okBefore = stats.okOps;
  stats.events += q.runUntil(faultMs + healMs, MAX_EVENTS);
  clientsRunning = false;
  stats.events += q.runUntil(faultMs + healMs + 1000, MAX_EVENTS);
  if (stats.okOps === okBefore) violate('liveness: no client operation succeeded after healing');
  const l = leaderNode();
  if (!l?.raft) violate('liveness: no leader after healing');
  else {
    const commit = l.raft.commitIndex;
    for (const id of members()) {
      const n = nodes.get(id);
      if (n?.up && n.appliedIndex !== commit) {
        violate(`liveness: ${id} applied ${n.appliedIndex}, leader ${l.id} committed ${commit}`);
      }
      if (n?.up && JSON.stringify([...n.state].sort()) !== JSON.stringify([...l.state].sort())) {
        violate(`state machines differ: ${id} vs ${l.id}`);
      }
    }
  }

  // ---- log matching over what every node has on disk
  const disks = [...nodes.values()].map((n) => n.disk);
  for (let a = 0; a < disks.length; a++) {
    for (let b = a + 1; b < disks.length; b++) {
      const x = disks[a] as SimNode['disk'];
      const y = disks[b] as SimNode['disk'];
      const ex = new Map(x.entries.map((e) => [e.index, e]));
      let matched = false;
      for (let k = y.entries.length - 1; k >= 0; k--) {
        const e = y.entries[k] as Entry;
        const o = ex.get(e.index);
        if (!o) continue;
        if (o.term === e.term) matched = true;
        if (matched && fingerprint(o) !== fingerprint(e)) {
          violate(`log matching: index ${e.index} differs below a matching entry`);
          break;
        }
      }
    }
  }

  const lin = checkLinearizable(history, { maxStates: opts.maxStates });
  if (opts.dumpHistory) opts.dumpHistory(history);
  if (!lin.ok) violate(`linearizability (key ${lin.key}): ${lin.reason}`);
  stats.terms = leaders.size;
  Object.assign(stats, net.stats);
  stats.snapshotsInstalled = [...nodes.values()].reduce((s, n) => s + n.snapshotsInstalled, 0);
  stats.leaseReads = [...nodes.values()].reduce((s, n) => s + n.leaseReads, 0);
  return { seed, ok: violations.length === 0, violations, stats };
}
