// The load side of the cache benchmarks: a closed loop of `concurrency` workers over
// request indexes 0..count-1, stopped by count or time, that keeps each request's latency,
// start and end by its index (the hot-spot run needs "the n-th read of an object", not
// only the n-th completion), and S3 targets on every gateway of a cluster.
import { performance } from 'node:perf_hooks';
import type { ClusterFile } from '../../cli/cluster.ts';
import { fmtInt, progress } from '../lib/stats.ts';
import { Target } from '../lib/target.ts';

export interface LoadRun {
  /** Requests started (all of them finished: the loop waits for them). */
  sent: number;
  ok: number;
  errors: number;
  firstError?: string;
  /** From the first start to the last end. */
  seconds: number;
  capped: boolean;
  /** CPU of this process (the generator) during the run, seconds. */
  generatorCpuSeconds: number;
  /** Per request index < sent: latency (ms), start and end (ms since `t0`), 1 = ok. */
  latencyMs: Float64Array;
  startMs: Float64Array;
  endMs: Float64Array;
  ok1: Uint8Array;
  /** performance.now() of the start. */
  t0: number;
}

export async function runLoad(o: {
  label: string;
  /** Most requests; the arrays are this long. */
  count: number;
  concurrency: number;
  capSeconds: number;
  op: (i: number) => Promise<void>;
  /** performance.now() that times count from (default: now). */
  t0?: number;
  quiet?: boolean;
}): Promise<LoadRun> {
  const latencyMs = new Float64Array(o.count);
  const startMs = new Float64Array(o.count);
  const endMs = new Float64Array(o.count);
  const ok1 = new Uint8Array(o.count);
  const t0 = o.t0 ?? performance.now();
  const begin = performance.now();
  const deadline = begin + o.capSeconds * 1000;
  const cpu0 = process.cpuUsage();
  let next = 0;
  let done = 0;
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  let capped = false;
  const timer = o.quiet
    ? undefined
    : setInterval(() => {
        const s = (performance.now() - begin) / 1000;
        progress(
          `[${o.label}] ${done}/${o.count} ${fmtInt(done / s)}/s after ${s.toFixed(0)} s, ${errors} errors`,
        );
      }, 5_000);
  timer?.unref();
  const worker = async () => {
    while (next < o.count) {
      const now = performance.now();
      if (now >= deadline) {
        capped = true;
        return;
      }
      const i = next++;
      startMs[i] = now - t0;
      try {
        await o.op(i);
        ok1[i] = 1;
        ok++;
      } catch (e) {
        errors++;
        firstError ??= (e as Error)?.message ?? String(e);
      }
      const end = performance.now();
      endMs[i] = end - t0;
      latencyMs[i] = end - now;
      done++;
    }
  };
  try {
    await Promise.all(
      Array.from({ length: Math.max(1, Math.min(o.concurrency, o.count)) }, worker),
    );
  } finally {
    if (timer) clearInterval(timer);
  }
  const cpu = process.cpuUsage(cpu0);
  return {
    sent: next,
    ok,
    errors,
    firstError,
    seconds: (performance.now() - begin) / 1000,
    capped,
    generatorCpuSeconds: (cpu.user + cpu.system) / 1e6,
    latencyMs,
    startMs,
    endMs,
    ok1,
    t0,
  };
}

/** One S3 target per gateway, `connections` split between them (at least one each). */
export function gatewayTargets(c: ClusterFile, connections: number): Target[] {
  const per = Math.max(1, Math.ceil(connections / c.gateways.length));
  return c.gateways.map(
    (endpoint) =>
      new Target({
        endpoint,
        mode: 's3',
        connections: per,
        accessKey: c.accessKey,
        secretKey: c.secretKey,
      }),
  );
}

/** GET `key` from target `i mod n`; throws on an error status or a wrong length. */
export async function getFrom(
  targets: Target[],
  i: number,
  key: string,
  size: number,
): Promise<void> {
  const n = await targets[i % targets.length]!.request('GET', key);
  if (n !== size) throw new Error(`GET ${key}: ${n} B, want ${size}`);
}

export async function closeTargets(targets: Target[]): Promise<void> {
  await Promise.all(targets.map((t) => t.close()));
}
