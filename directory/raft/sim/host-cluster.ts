// One seeded run of REAL RaftHosts (host.ts: the loop, group commit, compaction, snapshot
// staging and swap, proposal bookkeeping) on the simulator's faulty network, with virtual
// clocks, in-memory disks and crashes at any await (host-world.ts). cluster.ts checks the
// pure core this way; this checks what the host adds on top:
// - linearizability of what clients saw (gets through readBarrier, writes through propose),
// - honest proposal outcomes: a proposal the host reported as not applied (NotLeaderError,
//   DroppedProposalError) never shows up applied, an acknowledged one is never lost, and
//   none is applied twice,
// - liveness and identical state machines once healed, and no failed host loop.
import type { InternalAuth } from '../../../common/internal-auth.ts';
import type { Logger } from '../../../common/log.ts';
import { mulberry32 } from '../../../common/payload.ts';
import { RaftHost } from '../host.ts';
import type { NodeId } from '../types.ts';
import { SimClients, type SimHost } from './host-clients.ts';
import {
  kvMachines,
  Life,
  type LogDisk,
  memLog,
  newSmDisk,
  type SmDisk,
  simClock,
  simTransport,
} from './host-world.ts';
import { checkLinearizable } from './linearizability.ts';
import { EventQueue, randomNetwork, runLog } from './network.ts';
import { TICK_MS } from './node.ts';

export interface HostSimOptions {
  faultMs?: number;
  healMs?: number;
  clients?: number;
  verbose?: boolean;
}

export interface HostSimResult {
  seed: number;
  ok: boolean;
  violations: string[];
  stats: {
    ops: number;
    okOps: number;
    indefinite: number;
    failed: number;
    /** Proposals the host reported not applied (not leader, or lost to a leader change). */
    notApplied: number;
    /** Proposals the host reported as of unknown outcome (overtaken by a snapshot). */
    unknownOutcome: number;
    crashes: number;
    partitions: number;
    transfers: number;
    confChanges: number;
    snapshotsSent: number;
    snapshotsInstalled: number;
    events: number;
  };
}

const MAX_EVENTS = 400_000;

class Replica {
  host: SimHost | null = null;
  life: Life | null = null;
  readonly log: LogDisk = { hard: { term: 0, vote: null, commit: 0 }, snap: null, entries: [] };
  readonly sm: SmDisk = newSmDisk();
  everStarted = false;
  sent = 0;
  installed = 0;
  constructor(
    readonly id: NodeId,
    readonly pace: number,
  ) {}

  get up(): boolean {
    return this.life?.alive === true;
  }

  /** kill -9: the disks stay, the process and all it scheduled are gone. */
  crash(): void {
    if (this.life) this.life.alive = false;
    this.count();
    this.host = null;
  }

  count(): void {
    if (!this.host) return;
    this.sent += this.host.stats.snapshotsSent;
    this.installed += this.host.stats.snapshotsInstalled;
  }
}

export async function runHostSeed(seed: number, opts: HostSimOptions = {}): Promise<HostSimResult> {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const q = new EventQueue();
  const net = randomNetwork(q, rnd, 0.1, 10);
  const { violations, violate, trace } = runLog(q, opts.verbose);
  const stats: HostSimResult['stats'] = {
    ops: 0,
    okOps: 0,
    indefinite: 0,
    failed: 0,
    notApplied: 0,
    unknownOutcome: 0,
    crashes: 0,
    partitions: 0,
    transfers: 0,
    confChanges: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
    events: 0,
  };
  const voters = rnd() < 0.7 ? 3 : 5;
  const spare = rnd() < 0.4 ? 1 : 0;
  const lease = rnd() < 0.5;
  const snapshotEvery = 5 + Math.floor(rnd() * 30);
  const maxBatch = 1 + Math.floor(rnd() * 6);
  const ids = Array.from({ length: voters + spare }, (_, i) => `n${i + 1}`);
  const initial = ids.slice(0, voters);
  const urls = new Map(initial.map((id) => [id, `sim://${id}`]));
  // Within the host's own assumption: clocks up to 20 % apart (host.ts leaseMs default).
  const replicas = new Map(ids.map((id) => [id, new Replica(id, 0.92 + rnd() * 0.16)]));

  const logger = (id: NodeId): Logger => {
    const quiet = () => {};
    const bad = (what: string) => (o: unknown, msg?: string) =>
      violate(`${id} logged ${what}: ${msg ?? ''} ${JSON.stringify(o, errText)}`);
    const l = { info: quiet, warn: quiet, debug: quiet, trace: quiet };
    return { ...l, error: bad('error'), fatal: bad('fatal') } as unknown as Logger;
  };

  const start = (r: Replica): void => {
    const life = new Life(q, r.pace);
    r.life = life;
    const join = !initial.includes(r.id);
    r.everStarted = true;
    RaftHost.open(
      {
        id: r.id,
        dataDir: `/sim/${r.id}`,
        peers: urls,
        join,
        auth: {} as InternalAuth,
        logger: logger(r.id),
        tickMs: TICK_MS,
        electionTicks: 10,
        heartbeatTicks: 2,
        snapshotEvery,
        maxBatch,
        leaseMs: lease ? undefined : 0,
      },
      {
        machines: kvMachines(r.sm, life, rnd),
        storage: memLog(r.log, life, rnd),
        transport: simTransport(r.id, life, net, (to) => replicas.get(to)?.host ?? undefined),
        clock: simClock(life),
        random: rnd,
      },
    ).then(
      (h) => {
        if (life.alive) r.host = h;
      },
      (e) => violate(`${r.id} failed to open: ${(e as Error).message}`),
    );
  };

  const clients = new SimClients(
    {
      q,
      net,
      rnd,
      ids,
      stats,
      violate,
      trace,
      replica: (id) => replicas.get(id),
    },
    opts.clients ?? 6,
  );

  for (const id of initial) start(replicas.get(id)!);
  clients.start();

  // ---- faults
  const leader = (): Replica | undefined =>
    [...replicas.values()].find((r) => r.up && r.host?.isLeader);
  const faultMs = opts.faultMs ?? 4000;
  const faultStep = () => {
    if (q.now >= faultMs) return;
    let next = 50 + Math.floor(rnd() * 250);
    const x = rnd();
    const up = [...replicas.values()].filter((r) => r.up);
    const down = [...replicas.values()].filter((r) => !r.up && r.everStarted);
    if (x < 0.2 && up.length > 0) {
      const r = rnd() < 0.5 ? (leader() ?? pick(up)) : pick(up);
      r.crash();
      stats.crashes++;
      trace(`crash ${r.id}`);
    } else if (x < 0.4 && down.length > 0) {
      const r = pick(down);
      start(r);
      trace(`restart ${r.id}`);
    } else if (x < 0.5) {
      const shuffled = ids.slice().sort(() => rnd() - 0.5);
      const cut = 1 + Math.floor(rnd() * (ids.length - 1));
      const asym = rnd() < 0.4;
      net.heal();
      net.partition(shuffled.slice(0, cut), shuffled.slice(cut), asym);
      stats.partitions++;
      trace(
        `partition ${shuffled.slice(0, cut)} | ${shuffled.slice(cut)}${asym ? ' (one way)' : ''}`,
      );
    } else if (x < 0.68) {
      // The leader cut off with its own proposals in its log: they are overwritten or
      // overtaken by the new leader's snapshot when it comes back.
      const l = leader();
      if (l) {
        net.heal();
        net.partition(
          [l.id],
          ids.filter((i) => i !== l.id),
          rnd() < 0.5,
        );
        stats.partitions++;
        // Long enough for a new leader to be elected and to compact its log.
        next += 300 + Math.floor(rnd() * 500);
        trace(`isolate leader ${l.id}`);
      }
    } else if (x < 0.78) {
      net.heal();
      trace('heal');
    } else if (x < 0.88 && spare > 0) {
      confChange();
    } else {
      const l = leader();
      const s = l?.host?.status();
      const to = s ? pick(s.conf.voters) : undefined;
      if (l?.host && to) {
        l.host.transferLeadership(to).then(
          () => stats.transfers++,
          () => {},
        );
        trace(`transfer ${l.id} -> ${to}`);
      }
    }
    q.after(next, faultStep);
  };
  const confChange = () => {
    const l = leader();
    const s = l?.host?.status();
    if (!l?.host || !s) return;
    const members = [...s.conf.voters, ...s.conf.learners];
    const outside = ids.filter((i) => !members.includes(i));
    const change =
      outside.length > 0
        ? (() => {
            const n = pick(outside);
            const r = replicas.get(n)!;
            if (!r.up) start(r);
            return l.host.addNode(n, `sim://${n}`).then(() => `add ${n}`);
          })()
        : s.conf.voters.length > 2
          ? (() => {
              const n = pick(members);
              return l.host.removeNode(n).then(() => `remove ${n}`);
            })()
          : null;
    change?.then(
      (what) => {
        stats.confChanges++;
        trace(`${l.id}: ${what}`);
      },
      () => {},
    );
  };
  q.after(300, faultStep);

  const run = async (until: number) => {
    // One event at a time, then every promise callback it set off: the host's awaits
    // interleave with the network as they would with real I/O.
    while (stats.events < MAX_EVENTS && q.runUntil(until, 1) === 1) {
      stats.events++;
      await new Promise((r) => setImmediate(r));
    }
  };
  await run(faultMs);

  // ---- heal: everything back up, network reliable; the group must make progress.
  net.heal();
  net.healthy = true;
  for (const r of replicas.values()) if (!r.up && r.everStarted) start(r);
  const okBefore = stats.okOps;
  const healMs = opts.healMs ?? 1500;
  await run(faultMs + healMs);
  clients.running = false;
  await run(faultMs + healMs + 1000);
  if (stats.events >= MAX_EVENTS) violate('event budget exhausted');
  if (stats.okOps === okBefore) violate('liveness: no client operation succeeded after healing');

  const l = leader();
  const lh = l?.host;
  if (!l || !lh) violate('liveness: no leader after healing');
  else {
    const s = lh.status();
    const sm = lh.stateMachine;
    for (const id of [...s.conf.voters, ...s.conf.learners]) {
      const h = replicas.get(id)?.host;
      if (!h) {
        violate(`liveness: member ${id} not running after healing`);
        continue;
      }
      if (h.status().appliedIndex !== s.commitIndex) {
        violate(
          `liveness: ${id} applied ${h.status().appliedIndex}, ${l.id} committed ${s.commitIndex}`,
        );
      } else if (JSON.stringify(h.stateMachine.ids) !== JSON.stringify(sm.ids)) {
        violate(`state-machine safety: ${id} applied other proposals than ${l.id}`);
      } else if (
        JSON.stringify([...h.stateMachine.kv].sort()) !== JSON.stringify([...sm.kv].sort())
      ) {
        violate(`state machines differ: ${id} vs ${l.id}`);
      }
    }
    // ---- honesty of proposal outcomes, against the leader's (complete) state machine
    const applied = new Set<string>();
    for (const id of sm.ids) {
      if (applied.has(id)) violate(`proposal ${id} applied twice`);
      applied.add(id);
    }
    for (const id of clients.acked)
      if (!applied.has(id)) violate(`acknowledged proposal ${id} lost`);
    for (const [id, why] of clients.notApplied) {
      if (applied.has(id)) violate(`proposal ${id} reported not applied (${why}) but applied`);
    }
  }

  const lin = checkLinearizable(clients.history);
  if (!lin.ok) violate(`linearizability (key ${lin.key}): ${lin.reason}`);
  // Stop every process, so nothing of this run fires during the next one.
  for (const r of replicas.values()) r.crash();
  stats.snapshotsSent = [...replicas.values()].reduce((n, r) => n + r.sent, 0);
  stats.snapshotsInstalled = [...replicas.values()].reduce((n, r) => n + r.installed, 0);
  return { seed, ok: violations.length === 0, violations, stats };
}

function errText(_k: string, v: unknown): unknown {
  return v instanceof Error ? v.message : v;
}
