// The outside world of a real RaftHost (host.ts) in the simulator: a virtual clock that
// drifts per replica, a log disk and a key-value state machine held in memory that survive
// crashes as a disk would (a write is durable once its promise resolves, not before; a
// state machine's applies only once synced), and the simulated network as transport.
// Every callback runs from the seeded event queue, so a seed replays exactly.
import type { Clock, HostTransport, LogState, LogStorage } from '../host-io.ts';
import type { SnapshotExport, StateMachine, StateMachineStore } from '../state-machine.ts';
import type { SnapshotMessage, SnapshotReceiver, SnapshotSource } from '../transport.ts';
import type { Entry, HardState, Message, NodeId, SnapshotMeta } from '../types.ts';
import type { KvOp } from './linearizability.ts';
import type { EventQueue, Network } from './network.ts';

/** One incarnation of a replica's process: a crash kills it and everything it scheduled. */
export class Life {
  alive = true;
  constructor(
    readonly q: EventQueue,
    /** q time per ms of this replica's clock (its drift). */
    readonly pace: number,
  ) {}

  /** fn after `ms` of queue time, unless the process died meanwhile. */
  after(ms: number, fn: () => void): void {
    this.q.after(ms, () => {
      if (this.alive) fn();
    });
  }
}

export function simClock(life: Life): Clock {
  return {
    now: () => life.q.now / life.pace,
    every(ms, fn) {
      let on = true;
      const loop = () => {
        if (!on) return;
        fn();
        life.after(Math.max(1, Math.round(ms * life.pace)), loop);
      };
      life.after(Math.max(1, Math.round(ms * life.pace)), loop);
      return () => {
        on = false;
      };
    },
    soon: (fn) => life.after(0, fn),
    sleep: (ms) => new Promise((r) => life.after(Math.round(ms * life.pace), r)),
  };
}

/**
 * Disk writes in order, each taking a little queue time; a write is on the disk once done
 * (a crash before that loses it, and its promise never settles: the process is gone).
 */
function diskQueue(life: Life, rnd: () => number) {
  let busyUntil = 0;
  return <T>(write: () => T): Promise<T> =>
    new Promise((resolve, reject) => {
      busyUntil = Math.max(busyUntil, life.q.now) + Math.floor(rnd() * 3);
      life.after(busyUntil - life.q.now, () => {
        try {
          resolve(write());
        } catch (e) {
          reject(e);
        }
      });
    });
}

/** The Raft log's disk: survives crashes. */
export interface LogDisk {
  hard: HardState;
  snap: SnapshotMeta | null;
  entries: Entry[];
}

/** LogStorage with RaftStorage's contract (no holes, atomic suffix and snapshot replacement). */
export function memLog(disk: LogDisk, life: Life, rnd: () => number): LogStorage {
  const io = diskQueue(life, rnd);
  const base = () => disk.snap?.index ?? 0;
  const last = () => base() + disk.entries.length;
  return {
    load: () =>
      io(
        (): LogState => ({
          hardState: { ...disk.hard },
          snapshot: disk.snap,
          entries: disk.entries.slice(),
        }),
      ),
    save: (hard, entries) =>
      io(() => {
        const es = entries.filter((e) => e.index > base());
        if (es.length > 0) {
          const first = es[0]!.index;
          if (first > last() + 1)
            throw new Error(`log: entry ${first} leaves a gap after ${last()}`);
          es.forEach((e, i) => {
            if (e.index !== first + i) throw new Error(`log: not contiguous at ${e.index}`);
          });
          disk.entries = disk.entries.slice(0, first - base() - 1).concat(es);
        }
        if (hard) disk.hard = { ...hard };
      }),
    compact: (meta) =>
      io(() => {
        if (meta.index <= base()) return;
        disk.entries = meta.index >= last() ? [] : disk.entries.slice(meta.index - base());
        disk.snap = meta;
      }),
    resetToSnapshot: (meta) =>
      io(() => {
        disk.snap = meta;
        disk.entries = [];
      }),
    close: async () => {},
  };
}

// ---- the state machine: registers, plus every proposal id applied (for honesty checks)

export interface KvCmd {
  /** Unique per proposal attempt: applied at most once, or the host proposed it twice. */
  id: string;
  op: KvOp;
}
export type KvOutcome = { ok: true; result?: boolean };

interface KvData {
  applied: number;
  peers: Array<[NodeId, string]>;
  kv: Array<[string, string]>;
  ids: string[];
}

const emptyData = (): KvData => ({ applied: 0, peers: [], kv: [], ids: [] });

/** A replica's state-machine disk: the current copy as last synced, and staged imports. */
export interface SmDisk {
  cur: KvData;
  next: KvData | null;
  incoming: Map<string, KvData>;
}

export const newSmDisk = (): SmDisk => ({ cur: emptyData(), next: null, incoming: new Map() });

const SNAP_CHUNK = 200;

export class KvMachine implements StateMachine<KvCmd, KvOutcome> {
  readonly kv: Map<string, string>;
  readonly ids: string[];
  private peerList: Array<[NodeId, string]>;
  private applied: number;
  closed = false;

  constructor(
    data: KvData,
    private readonly disk: SmDisk,
    private readonly io: <T>(w: () => T) => Promise<T>,
  ) {
    this.kv = new Map(data.kv);
    this.ids = data.ids.slice();
    this.peerList = data.peers;
    this.applied = data.applied;
  }

  private data(): KvData {
    return { applied: this.applied, peers: this.peerList, kv: [...this.kv], ids: this.ids.slice() };
  }

  async appliedIndex(): Promise<number> {
    return this.applied;
  }

  async peers(): Promise<Array<[NodeId, string]>> {
    return this.peerList;
  }

  async apply(cmds: KvCmd[], index: number, peers: Array<[NodeId, string]>) {
    if (this.closed) throw new Error('state machine closed');
    if (index <= this.applied)
      throw new Error(`apply at ${index}, already applied ${this.applied}`);
    const out: KvOutcome[] = [];
    for (const c of cmds) {
      this.ids.push(c.id);
      const cur = this.kv.get(c.op.key) ?? null;
      if (c.op.kind === 'put') {
        this.kv.set(c.op.key, c.op.value);
        out.push({ ok: true });
      } else if (c.op.kind === 'cas') {
        const result = cur === c.op.expect;
        if (result) this.kv.set(c.op.key, c.op.value);
        out.push({ ok: true, result });
      } else out.push({ ok: true });
    }
    this.applied = index;
    this.peerList = peers;
    return out;
  }

  sync(): Promise<void> {
    const d = this.data();
    return this.io(() => {
      if (!this.closed) this.disk.cur = d;
    });
  }

  exportSnapshot(): SnapshotExport {
    const text = JSON.stringify(this.data());
    return {
      async *chunks() {
        for (let i = 0; i < text.length; i += SNAP_CHUNK) {
          yield Buffer.from(text.slice(i, i + SNAP_CHUNK));
        }
      },
      close: async () => {},
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export function kvMachines(
  disk: SmDisk,
  life: Life,
  rnd: () => number,
): StateMachineStore<KvCmd, KvOutcome, KvMachine, string> {
  const io = diskQueue(life, rnd);
  return {
    encode: (cmds) => JSON.stringify(cmds),
    decode: (data) => JSON.parse(data) as KvCmd[],
    stable: () => true,
    open: (snapIndex) =>
      io(() => {
        // What the directory's recoverSwap does: a swap cut short is finished if the log
        // was already reset to the snapshot, else undone; unfinished transfers go.
        if (disk.next && disk.cur.applied < snapIndex) disk.cur = disk.next;
        disk.next = null;
        disk.incoming.clear();
        return new KvMachine(disk.cur, disk, io);
      }),
    async import(id, chunks) {
      const parts: Buffer[] = [];
      for await (const c of chunks) parts.push(Buffer.from(c));
      const data = JSON.parse(Buffer.concat(parts).toString()) as KvData;
      return io(() => {
        disk.incoming.set(id, data);
        return id;
      });
    },
    drop: (id) => io(() => void disk.incoming.delete(id)),
    discard: (id) => io(() => void disk.incoming.delete(id)),
    prepare: (id) =>
      io(() => {
        const d = disk.incoming.get(id);
        if (!d) throw new Error(`staged snapshot ${id} is gone`);
        disk.incoming.delete(id);
        disk.next = d;
      }),
    async swapIn(cur) {
      await cur.close();
      return io(() => {
        if (!disk.next) throw new Error('no prepared snapshot to swap in');
        disk.cur = disk.next;
        disk.next = null;
        return new KvMachine(disk.cur, disk, io);
      });
    },
  };
}

// ---- the network as transport

/** What the transport reaches on the other side: the peer's current process, if up. */
export interface SimPeer {
  deliver(msgs: Message[]): void;
  snapshotReceiver: SnapshotReceiver;
}

const RPC_TIMEOUT_MS = 200;

export function simTransport(
  self: NodeId,
  life: Life,
  net: Network,
  peer: (id: NodeId) => SimPeer | undefined,
): HostTransport {
  let closed = false;
  const snapshotting = new Set<NodeId>();
  /** A request and its reply over the network, as one HTTP call: lost = times out. */
  const rpc = <T>(to: NodeId, call: (p: SimPeer) => Promise<T>): Promise<T> =>
    new Promise((resolve, reject) => {
      let done = false;
      const settle = (f: () => void) => {
        if (!done) {
          done = true;
          f();
        }
      };
      life.after(RPC_TIMEOUT_MS, () => settle(() => reject(new Error('rpc timeout'))));
      net.send(
        self,
        to,
        () => {
          const p = peer(to);
          if (!p) return;
          call(p).then(
            (v) => net.send(to, self, () => life.alive && settle(() => resolve(v)), true),
            (e) => net.send(to, self, () => life.alive && settle(() => reject(e)), true),
          );
        },
        true,
      );
    });
  return {
    send(msgs) {
      if (closed) return;
      // Through JSON, as on the wire: no object is shared between two replicas.
      for (const m of msgs) {
        const text = JSON.stringify(m);
        net.send(self, m.to, () => peer(m.to)?.deliver([JSON.parse(text) as Message]));
      }
    },
    async sendSnapshot(msg: SnapshotMessage, source: SnapshotSource) {
      if (closed) throw new Error('transport closed');
      if (snapshotting.has(msg.to)) return false;
      snapshotting.add(msg.to);
      let id: string | undefined;
      try {
        id = await rpc(msg.to, (p) => p.snapshotReceiver.begin(self, msg.meta));
        for await (const chunk of source.open()) {
          const tid = id;
          await rpc(msg.to, (p) => p.snapshotReceiver.chunk(tid, chunk));
        }
        const tid = id;
        const text = JSON.stringify(msg);
        await rpc(msg.to, (p) => p.snapshotReceiver.finish(tid, JSON.parse(text)));
        return true;
      } catch (e) {
        const tid = id;
        if (tid !== undefined)
          void rpc(msg.to, (p) => p.snapshotReceiver.abort(tid)).catch(() => {});
        throw e;
      } finally {
        snapshotting.delete(msg.to);
      }
    },
    setPeer() {},
    async close() {
      closed = true;
    },
  };
}
