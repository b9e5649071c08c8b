// Shared by the paper workloads: object keys, random-ASCII payloads, and the phase runner
// (concurrency-limited, time-capped, progress bar, full figures).
import { SingleBar } from 'cli-progress';
import { mix32, Prng } from '../lib/prng.ts';
import type { ServerCpuProbe, ServerCpuSpent } from '../lib/server-cpu.ts';
import { type Counts, fmtInt, progress, runCounting } from '../lib/stats.ts';
import {
  cdfPoints,
  type LatencySummary,
  latencyWindows,
  summarize,
  type WindowStat,
} from '../lib/summary.ts';
import type { Target } from '../lib/target.ts';

/** Key of preloaded object i of the given size (sizes share a bucket). */
export const objectKey = (bucket: string, size: number, i: number) =>
  `${bucket}/p${size}/${i.toString(16).padStart(8, '0')}`;

/** Key of new object i written by the write phase (`tag` keeps repeated runs' writes new). */
export const writeKey = (bucket: string, size: number, tag: string, i: number) =>
  `${bucket}/p${size}/w${tag}/${i.toString(16).padStart(8, '0')}`;

const SLACK = 4096;

/** Random printable-ASCII payloads, precomputed: object i is a window of one seeded buffer. */
export class Payloads {
  private readonly buf: Buffer;

  constructor(
    readonly size: number,
    private readonly seed: number,
  ) {
    this.buf = Buffer.allocUnsafe(size + SLACK);
    new Prng(seed ^ 0x5eed).fill(this.buf, true);
  }

  get(i: number): Buffer {
    const off = mix32(i ^ this.seed) % SLACK;
    return this.buf.subarray(off, off + this.size);
  }
}

/** What a phase sends: request i is `op` on `key(i)`. */
export interface Plan {
  phase: string;
  op: 'GET' | 'PUT';
  count: number;
  size: number;
  key: (i: number) => string;
  body?: (i: number) => Buffer;
}

/** GETs of preloaded objects: request i reads object `ids[i]`. */
export function readsOf(
  phase: string,
  o: { bucket: string; size: number; requests: number },
  ids: ArrayLike<number>,
): Plan {
  return {
    phase,
    op: 'GET',
    count: o.requests,
    size: o.size,
    key: (i) => objectKey(o.bucket, o.size, ids[i]!),
  };
}

export interface PhaseResult extends Counts {
  phase: string;
  op: string;
  concurrency: number;
  latencyMs: LatencySummary;
  /** Latency per time window (by completion time). */
  windows: WindowStat[];
  windowSeconds: number;
  /** Empirical CDF, ≤ 200 points [ms, share]. */
  cdf: [number, number][];
  generatorCpuPercent: number;
  /**
   * The server's CPU (user+sys of its processes) across exactly this phase, per completed
   * request, in µs; null when the target's processes are not known.
   */
  serverCpuUsPerReq: number | null;
  /** That CPU in seconds, the processes counted, a cluster's split by role. */
  serverCpu?: Omit<ServerCpuSpent, 'usPerReq'>;
  capped: boolean;
}

export async function runPlan(
  target: Target,
  plan: Plan,
  o: {
    concurrency: number;
    capSeconds: number;
    windowSeconds: number;
    quiet?: boolean;
    /** The target's server processes, measured around the requests only. */
    serverCpu?: ServerCpuProbe;
  },
): Promise<PhaseResult> {
  const latencies = new Float64Array(plan.count);
  const ends = new Float64Array(plan.count);
  const label = `${plan.phase} c=${o.concurrency}`;
  const bar =
    process.stderr.isTTY && !o.quiet
      ? new SingleBar({
          format: `${label} [{bar}] {percentage}% {value}/{total} {eta}s left`,
          stream: process.stderr,
          hideCursor: true,
        })
      : undefined;
  bar?.start(plan.count, 0);
  let r: Awaited<ReturnType<typeof runCounting>>;
  let endCpu: ((requests: number) => ServerCpuSpent) | undefined;
  let spent: ServerCpuSpent | undefined;
  try {
    endCpu = o.serverCpu?.begin();
    r = await runCounting({
      label,
      total: plan.count,
      concurrency: o.concurrency,
      capSeconds: o.capSeconds,
      latencies,
      ends,
      size: plan.size,
      onTick: bar ? (d) => bar.update(d) : undefined,
      op: async (i) => {
        const n = await target.request(plan.op, plan.key(i), plan.body?.(i));
        if (plan.op === 'GET' && n !== plan.size) throw new Error(`GET ${plan.key(i)}: ${n} B`);
      },
    });
    spent = endCpu?.(r.counts.requests);
  } finally {
    bar?.stop();
  }
  const { run, counts } = r;
  const res: PhaseResult = {
    phase: plan.phase,
    op: plan.op,
    concurrency: o.concurrency,
    ...counts,
    latencyMs: summarize(latencies, run.done),
    windows: latencyWindows(latencies, ends, run.done, o.windowSeconds),
    windowSeconds: o.windowSeconds,
    cdf: cdfPoints(latencies, run.done),
    generatorCpuPercent: (100 * run.cpuSeconds) / run.seconds,
    serverCpuUsPerReq: spent?.usPerReq ?? null,
    serverCpu: spent && {
      seconds: spent.seconds,
      processes: spent.processes,
      byRoleUsPerReq: spent.byRoleUsPerReq,
    },
    capped: run.capped,
  };
  if (!o.quiet) progress(describe(res));
  if (!o.quiet && plan.phase === 'hotspot') {
    for (const w of res.windows) {
      progress(
        `  hotspot t=${w.t.toFixed(2)} s: ${w.count} req, mean ${w.mean.toFixed(2)} ms, ` +
          `p50 ${w.p50.toFixed(2)} ms, p99 ${w.p99.toFixed(2)} ms`,
      );
    }
  }
  return res;
}

export function describe(r: PhaseResult): string {
  const l = r.latencyMs;
  const u = l.under;
  return (
    `${r.phase} c=${r.concurrency}: ${r.requests} req in ${r.seconds.toFixed(1)} s, ` +
    `${fmtInt(r.reqPerSec)} req/s, ${r.mbPerSec.toFixed(1)} MB/s; mean ${l.mean.toFixed(2)} ms ` +
    `var ${l.variance.toFixed(1)} ms²; p50 ${l.p50.toFixed(2)} p90 ${l.p90.toFixed(2)} ` +
    `p99 ${l.p99.toFixed(2)} p99.9 ${l.p999.toFixed(1)} max ${l.max.toFixed(1)} ms; ` +
    `<1/5/10/50/100/500 ms: ${[1, 5, 10, 50, 100, 500]
      .map((t) => `${(100 * u[`<${t}ms`]!).toFixed(1)}%`)
      .join(' ')}; errors ${r.errors}${r.firstError ? ` (first: ${r.firstError})` : ''}; ` +
    `generator CPU ${r.generatorCpuPercent.toFixed(0)}%` +
    (r.serverCpuUsPerReq === null ? '' : `; server CPU ${fmtUs(r.serverCpuUsPerReq)} µs/req`) +
    (r.capped ? ' [duration cap]' : '')
  );
}

/** µs with 3 significant digits at least (a cached GET may cost < 10 µs of server CPU). */
export function fmtUs(us: number): string {
  return us >= 100 ? fmtInt(us) : us.toPrecision(3);
}
