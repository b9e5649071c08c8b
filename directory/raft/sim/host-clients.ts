// The clients of the host-level simulation (host-cluster.ts), and each replica's front end
// between them and its RaftHost — RaftMetadata's part, reduced to a key-value register:
// writes are proposed on the leader (forwarded by a follower, retried while no leader is
// known), reads wait for readBarrier. Every proposal attempt has an id of its own, and what
// the host said of it is kept: the run then checks the host's word against the state.
import {
  DroppedProposalError,
  NotLeaderError,
  type RaftHost,
  UnknownOutcomeError,
} from '../host.ts';
import type { NodeId } from '../types.ts';
import type { KvCmd, KvMachine, KvOutcome, Life } from './host-world.ts';
import { type HistoryOp, type KvOp, randomOp } from './linearizability.ts';
import type { EventQueue, Network } from './network.ts';

export type SimHost = RaftHost<KvCmd, KvOutcome, KvMachine, string>;

const CLIENT_TIMEOUT_MS = 600;
/** A proposal's caller stops waiting after this (RaftMetadata's deadline). */
const PROPOSAL_DEADLINE_MS = 400;

export interface ClientWorld {
  q: EventQueue;
  net: Network;
  rnd: () => number;
  ids: NodeId[];
  stats: {
    ops: number;
    okOps: number;
    indefinite: number;
    failed: number;
    notApplied: number;
    unknownOutcome: number;
  };
  violate(m: string): void;
  trace(m: string): void;
  /** The replica's running process, if any. */
  replica(id: NodeId): { host: SimHost | null; life: Life | null } | undefined;
}

interface Client {
  idx: number;
  name: string;
  reqId: number;
  cur: null | { reqId: number; op: KvOp; invoke: number };
}

type Reply = { status: 'ok'; result?: string | null | boolean } | { status: 'unknown' | 'failed' };

export class SimClients {
  /** What the clients saw, for the linearizability check. */
  readonly history: HistoryOp[] = [];
  /** Proposals the host acknowledged as applied. */
  readonly acked = new Set<string>();
  /** Proposals the host said were not applied, and which error said so. */
  readonly notApplied = new Map<string, string>();
  running = true;
  private readonly clients: Client[];

  constructor(
    private readonly w: ClientWorld,
    count: number,
  ) {
    this.clients = Array.from({ length: count }, (_, i) => ({
      idx: i,
      name: `c${i + 1}`,
      reqId: 0,
      cur: null,
    }));
  }

  start(): void {
    for (const c of this.clients)
      this.w.q.after(200 + Math.floor(this.w.rnd() * 50), () => this.issue(c));
  }

  private pick<T>(xs: T[]): T {
    return xs[Math.floor(this.w.rnd() * xs.length)] as T;
  }

  private finish(c: Client, reqId: number, r: Reply): void {
    const { q, rnd, stats } = this.w;
    const cur = c.cur;
    if (!cur || cur.reqId !== reqId) return;
    c.cur = null;
    if (r.status === 'failed') stats.failed++;
    else if (r.status === 'ok' || cur.op.kind !== 'get') {
      const ret = r.status === 'ok' ? q.now : undefined;
      this.history.push({
        client: c.idx,
        op: cur.op,
        invoke: cur.invoke,
        ret,
        result: r.status === 'ok' ? r.result : undefined,
      });
      if (ret === undefined) stats.indefinite++;
      else stats.okOps++;
    }
    if (this.running) q.after(Math.floor(rnd() * 20), () => this.issue(c));
  }

  /** A replica's front end (RaftMetadata's part): propose on the leader, else forward or wait. */
  private serve(
    at: NodeId,
    c: Client,
    reqId: number,
    op: KvOp,
    attempt: number,
    hops: number,
    deadline: number,
  ): void {
    const { q, net, stats } = this.w;
    const reply = (r: Reply) => net.send(at, c.name, () => this.finish(c, reqId, r), true);
    const host = this.w.replica(at)?.host;
    if (!host) return;
    const life = this.w.replica(at)!.life!;
    const retry = (why: string) => {
      if (q.now + 20 >= deadline) return reply({ status: 'failed' });
      this.w.trace(`${at}: ${c.name}#${reqId} retried (${why})`);
      life.after(20, () => this.serve(at, c, reqId, op, attempt + 1, hops, deadline));
    };
    if (op.kind === 'get') {
      host.readBarrier().then(
        () => reply({ status: 'ok', result: host.stateMachine.kv.get(op.key) ?? null }),
        (e) =>
          e instanceof NotLeaderError ? retry('read: not leader') : reply({ status: 'failed' }),
      );
      return;
    }
    if (!host.isLeader) {
      const lead = host.leaderId;
      if (lead !== null && lead !== at && hops < 2) {
        net.send(at, lead, () => this.serve(lead, c, reqId, op, attempt, hops + 1, deadline), true);
      } else retry('no leader');
      return;
    }
    const id = `${c.name}.${reqId}.${at}.${attempt}`;
    let settled = false;
    life.after(PROPOSAL_DEADLINE_MS, () => {
      if (settled) return;
      settled = true;
      reply({ status: 'unknown' });
    });
    host.propose({ id, op }).then(
      (out) => {
        this.acked.add(id);
        if (settled) return;
        settled = true;
        reply({ status: 'ok', result: op.kind === 'cas' ? out.result : undefined });
      },
      (e) => {
        if (e instanceof NotLeaderError || e instanceof DroppedProposalError) {
          this.notApplied.set(id, (e as Error).constructor.name);
          stats.notApplied++;
          if (!settled) {
            settled = true;
            retry((e as Error).message);
          }
          return;
        }
        if (e instanceof UnknownOutcomeError) stats.unknownOutcome++;
        else this.w.violate(`${at}: proposal ${id} failed with ${(e as Error).message}`);
        if (settled) return;
        settled = true;
        reply({ status: 'unknown' });
      },
    );
  }

  private issue(c: Client): void {
    const { q, net, rnd, stats } = this.w;
    if (!this.running || c.cur) return;
    const reqId = ++c.reqId;
    const op = randomOp(rnd, c.name, reqId, this.clients.length);
    c.cur = { reqId, op, invoke: q.now };
    stats.ops++;
    const to = this.pick(this.w.ids);
    const deadline = q.now + PROPOSAL_DEADLINE_MS;
    net.send(c.name, to, () => this.serve(to, c, reqId, op, 0, 0, deadline), true);
    q.after(CLIENT_TIMEOUT_MS, () => this.finish(c, reqId, { status: 'unknown' }));
  }
}
