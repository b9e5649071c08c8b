// Latency percentiles and a concurrency-limited driver with a time cap and progress lines.
import { performance } from 'node:perf_hooks';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Percentiles (nearest-rank) of the first `n` samples; sorts a copy. */
export function percentiles(samples: Float64Array, n: number): Percentiles {
  if (n === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  const s = samples.slice(0, n).sort();
  const at = (p: number) => s[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[n - 1]!, mean: sum / n };
}

export interface RunResult {
  /** Operations that completed. */
  done: number;
  seconds: number;
  /** CPU time of the whole process (all threads, user + system) during the phase. */
  cpuSeconds: number;
  /** True when the time cap stopped the phase before all operations ran. */
  capped: boolean;
}

/**
 * Runs op(0..total-1) with `concurrency` in flight until all are done or `capSeconds`
 * pass (operations already started still finish). Per-op latency in ms goes to
 * `latencies[k]` for the k-th completion. A progress line goes to stderr every few seconds.
 */
export async function runConcurrent(opts: {
  label: string;
  total: number;
  concurrency: number;
  capSeconds: number;
  latencies: Float64Array;
  /** If given, the completion time (ms since the phase began) of the k-th completion. */
  ends?: Float64Array;
  op: (i: number) => Promise<void>;
  progressEveryMs?: number;
  /** Replaces the periodic progress line (e.g. to drive a progress bar). */
  onTick?: (done: number) => void;
}): Promise<RunResult> {
  const { label, total, concurrency, latencies, op } = opts;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + opts.capSeconds * 1000;
  let next = 0;
  let done = 0;
  let capped = false;
  let failed: unknown = null;
  const timer = setInterval(
    () => {
      if (opts.onTick) return opts.onTick(done);
      const s = (performance.now() - t0) / 1000;
      const pct = ((100 * done) / total).toFixed(1);
      progress(
        `[${label}] ${done}/${total} (${pct}%) ${fmtInt(done / s)}/s after ${s.toFixed(0)} s`,
      );
    },
    opts.progressEveryMs ?? (opts.onTick ? 200 : 5000),
  );
  timer.unref();
  const worker = async () => {
    while (next < total && failed === null) {
      if (performance.now() >= deadline) {
        capped = true;
        return;
      }
      const i = next++;
      const start = performance.now();
      try {
        await op(i);
      } catch (e) {
        failed ??= e;
        return;
      }
      const end = performance.now();
      if (opts.ends) opts.ends[done] = end - t0;
      latencies[done++] = end - start;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, total)) }, worker));
  } finally {
    clearInterval(timer);
  }
  if (failed !== null) throw failed;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { done, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, capped };
}

/** What a phase reports of its requests, in the order its JSON lists them. */
export interface Counts {
  requests: number;
  ok: number;
  errors: number;
  firstError?: string;
  seconds: number;
  reqPerSec: number;
  mbPerSec: number;
}

/**
 * runConcurrent where a failing op is counted (its first message kept) rather than ending
 * the phase; `size` bytes per successful op give the MB/s.
 */
export async function runCounting(
  opts: Parameters<typeof runConcurrent>[0] & { size: number },
): Promise<{ run: RunResult; counts: Counts }> {
  let errors = 0;
  let firstError: string | undefined;
  const run = await runConcurrent({
    ...opts,
    op: async (i) => {
      try {
        await opts.op(i);
      } catch (e) {
        errors++;
        firstError ??= (e as Error)?.message ?? String(e);
      }
    },
  });
  const ok = run.done - errors;
  const counts: Counts = {
    requests: run.done,
    ok,
    errors,
    firstError,
    seconds: run.seconds,
    reqPerSec: run.done / run.seconds,
    mbPerSec: (ok * opts.size) / run.seconds / 1e6,
  };
  return { run, counts };
}

export function progress(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

export function fmtInt(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}
