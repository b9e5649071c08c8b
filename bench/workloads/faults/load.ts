// The experiment's load: known objects, a paced random read/write mix over the gateways,
// the kill scheduled inside it, and a progress line per second of load.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterFile } from '../../../cli/cluster.ts';
import { mix32, Prng } from '../../lib/prng.ts';
import { type OpSample, perSecond } from './analysis.ts';
import type { FaultClient, Outcome } from './client.ts';
import { type Killed, killLeaderAndZone } from './cluster.ts';
import type { FaultsOptions } from './options.ts';

/**
 * Object `id`'s bytes: a window of one random buffer, stamped with the id so no two
 * objects are equal (a read answered with another object's bytes must not pass).
 */
export class ObjectData {
  private readonly base: Buffer;
  private static readonly SLACK = 4096;

  constructor(
    readonly size: number,
    private readonly seed: number,
  ) {
    this.base = Buffer.allocUnsafe(size + ObjectData.SLACK);
    new Prng(seed ^ 0xfa17).fill(this.base, false);
  }

  get(id: number): Buffer {
    const off = mix32(id ^ this.seed) % ObjectData.SLACK;
    const b = Buffer.from(this.base.subarray(off, off + this.size));
    const stamp = Buffer.alloc(8);
    stamp.writeUInt32LE(id >>> 0, 0);
    stamp.writeUInt32LE(mix32(id + 1), 4);
    stamp.copy(b, 0, 0, Math.min(8, b.length));
    return b;
  }
}

export const faultKey = (prefix: string, id: number) =>
  `${prefix}/${id.toString(16).padStart(8, '0')}`;

/** Runs `op(i)` for i in [0, n) with `concurrency` in flight; stops starting new ones at `deadline`. */
export async function pool(
  n: number,
  concurrency: number,
  deadline: number,
  op: (i: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < n && performance.now() < deadline) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, worker));
  return next;
}

/** The kill, `atS` seconds after `t0`, in the background of the load. */
class KillSchedule {
  killed: Killed[] = [];
  atMs = Number.NaN;
  private error: unknown = null;
  private readonly timer: NodeJS.Timeout;

  constructor(c: ClusterFile, zone: string, atS: number, t0: number, log: (line: string) => void) {
    this.timer = setTimeout(() => {
      killLeaderAndZone(c, zone).then(
        (k) => {
          this.killed = k;
          this.atMs = performance.now() - t0;
          log(
            `t=${(this.atMs / 1000).toFixed(1)} s: kill -9 ${k.map((x) => `${x.role === 'store' ? 'store' : 'directory leader'} ${x.id} (pid ${x.pid})`).join(', ')}`,
          );
        },
        (e) => {
          this.error = e;
        },
      );
    }, atS * 1000);
  }

  cancel(): void {
    clearTimeout(this.timer);
  }

  /** Throws unless the kill happened. */
  check(): void {
    if (this.error) throw this.error;
    if (this.killed.length === 0) throw new Error('the kill did not happen');
  }
}

/** Logs each second of load once it is over: its reads, writes, errors and retries. */
function perSecondLog(
  samples: readonly OpSample[],
  t0: number,
  durationS: number,
  log: (line: string) => void,
): NodeJS.Timeout {
  let lastLogged = 0;
  const ticker = setInterval(() => {
    const now = performance.now() - t0;
    const t = Math.floor(now / 1000) - 1;
    if (t < lastLogged || t >= durationS) return;
    lastLogged = t + 1;
    const w = perSecond(
      samples.filter((s) => Math.floor(s.end / 1000) === t),
      t + 1,
    )[t];
    if (w) {
      log(
        `t=${t} s: ${w.reads} reads (p50 ${w.readP50.toFixed(1)} p99 ${w.readP99.toFixed(1)} ms), ${w.writes} writes, ${w.readErrors + w.writeErrors} errors, ${w.retried} retried`,
      );
    }
  }, 250);
  ticker.unref();
  return ticker;
}

export interface LoadResult {
  samples: OpSample[];
  /** Writes acknowledged, by object id. */
  acked: number[];
  /** Of those, the ones sent after the kill. */
  ackedAfterKill: number[];
  firstErrors: string[];
  corruptReads: number;
  killed: Killed[];
  /** Actual kill time, seconds since the load began. */
  killAtS: number;
  loadSeconds: number;
}

/**
 * `opts.concurrency` workers for `opts.durationS` seconds, paced at `opts.rate`: reads of
 * known objects (byte-checked) and writes of new ones, with the kill at `opts.killAtS`.
 */
export async function runLoad(
  c: ClusterFile,
  client: FaultClient,
  data: ObjectData,
  prefix: string,
  opts: FaultsOptions,
  log: (line: string) => void,
): Promise<LoadResult> {
  const { durationS } = opts;
  const ng = c.gateways.length;
  // Objects a read may pick: preloaded ones, then writes as they are acknowledged.
  const known: number[] = Array.from({ length: opts.objects }, (_, i) => i);
  const acked: number[] = [];
  const ackedAfterKill: number[] = [];
  let nextWrite = opts.objects;
  const samples: OpSample[] = [];
  const firstErrors: string[] = [];
  let corruptReads = 0;
  const rng = new Prng(opts.seed ^ 0x10ad);
  const t0 = performance.now();
  const endAt = t0 + durationS * 1000;
  const kill = new KillSchedule(c, opts.killZone, opts.killAtS, t0, log);
  const ticker = perSecondLog(samples, t0, durationS, log);
  const interval = opts.rate > 0 ? 1000 / opts.rate : 0;
  let next = 0;
  let slot = t0 - interval;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (interval > 0) {
        // Paced: the load stays below what the cluster can take, so latency is service
        // time rather than the queue a closed loop builds. After a stall it catches up
        // by at most one second's worth, not by a flood of every missed slot.
        slot = Math.max(slot + interval, performance.now() - 1000);
        const wait = slot - performance.now();
        if (wait > 0) await sleep(wait);
      }
      if (performance.now() >= endAt) return;
      const gw = i % ng;
      const isRead = rng.u32() / 0x1_0000_0000 < opts.readRatio;
      let r: Outcome;
      if (isRead) {
        const id = known[rng.below(known.length)]!;
        r = await client.call(gw, 'GET', faultKey(prefix, id), { expect: data.get(id) });
        if (r.corrupt) corruptReads++;
      } else {
        const id = nextWrite++;
        const sentAfterKill = kill.killed.length > 0;
        r = await client.call(gw, 'PUT', faultKey(prefix, id), { body: data.get(id) });
        if (r.ok) {
          acked.push(id);
          known.push(id);
          if (sentAfterKill) ackedAfterKill.push(id);
        }
      }
      const end = performance.now() - t0;
      samples.push({ end, ms: r.ms, op: isRead ? 'GET' : 'PUT', attempts: r.attempts, ok: r.ok });
      if (!r.ok && firstErrors.length < 10) {
        firstErrors.push(`t=${(end / 1000).toFixed(2)} s: ${r.error}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    kill.cancel();
    clearInterval(ticker);
  }
  const loadSeconds = (performance.now() - t0) / 1000;
  kill.check();
  return {
    samples,
    acked,
    ackedAfterKill,
    firstErrors,
    corruptReads,
    killed: kill.killed,
    killAtS: kill.atMs / 1000,
    loadSeconds,
  };
}
