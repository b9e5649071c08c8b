// The fault experiment's figures, from the completed operations alone (pure: unit-tested in
// faults.test.ts): per-second windows, the baseline before the kill, recovery after it.
import { summarize } from '../../lib/summary.ts';

/** One completed operation of the load. */
export interface OpSample {
  /** Completion time, ms since the load began. */
  end: number;
  /** Latency incl. retries and backoff, ms. */
  ms: number;
  op: 'GET' | 'PUT';
  attempts: number;
  ok: boolean;
}

export interface SecondStat {
  /** Window start, seconds since the load began. */
  t: number;
  reads: number;
  writes: number;
  readMean: number;
  readP50: number;
  readP99: number;
  readMax: number;
  writeP99: number;
  /** Operations that failed after every attempt. */
  readErrors: number;
  writeErrors: number;
  /** Operations that needed more than one attempt. */
  retried: number;
}

/** Operations grouped by completion second; windows t = 0 .. ceil(durationS) - 1 all present. */
export function perSecond(samples: readonly OpSample[], durationS: number): SecondStat[] {
  const n = Math.max(1, Math.ceil(durationS));
  const reads: number[][] = Array.from({ length: n }, () => []);
  const writes: number[][] = Array.from({ length: n }, () => []);
  const out: SecondStat[] = Array.from({ length: n }, (_, t) => ({
    t,
    reads: 0,
    writes: 0,
    readMean: 0,
    readP50: 0,
    readP99: 0,
    readMax: 0,
    writeP99: 0,
    readErrors: 0,
    writeErrors: 0,
    retried: 0,
  }));
  for (const s of samples) {
    // Requests in flight when the load stops finish late: they count in the last second.
    const t = Math.min(n - 1, Math.max(0, Math.floor(s.end / 1000)));
    const w = out[t]!;
    if (s.attempts > 1) w.retried++;
    if (s.op === 'GET') {
      w.reads++;
      if (!s.ok) w.readErrors++;
      reads[t]!.push(s.ms);
    } else {
      w.writes++;
      if (!s.ok) w.writeErrors++;
      writes[t]!.push(s.ms);
    }
  }
  for (let t = 0; t < n; t++) {
    const r = summarize(Float64Array.from(reads[t]!), reads[t]!.length);
    const w = summarize(Float64Array.from(writes[t]!), writes[t]!.length);
    Object.assign(out[t]!, {
      readMean: r.mean,
      readP50: r.p50,
      readP99: r.p99,
      readMax: r.max,
      writeP99: w.p99,
    });
  }
  return out;
}

export interface FaultsAnalysis {
  killAtS: number;
  /** Read latency over the seconds before the kill (the first second, warm-up, left out). */
  baseline: { reads: number; mean: number; p50: number; p99: number };
  /** Threshold: factor × baseline p99. */
  thresholdMs: number;
  /**
   * Seconds from the kill to the start of the first window from which every window's read
   * p99 stays under the threshold (0: it never went over); null if it never came back.
   */
  recoveryS: number | null;
  /** Windows at or after the kill whose read p99 is over the threshold. */
  slowSeconds: number[];
  worstSecond: { t: number; readP99: number; readMean: number; readMax: number } | null;
  failedReads: number;
  failedWrites: number;
  retriedOps: number;
  readsPerSecBefore: number;
  readsPerSecAfter: number;
  writesPerSecBefore: number;
  writesPerSecAfter: number;
  /** Acked writes per second in the first 5 s after the kill. */
  writesPerSecFirst5sAfter: number;
  /** Acked writes sent after the kill (the others may have reached the dead stores first). */
  writesStartedAfterKill: number;
}

function pooled(samples: readonly OpSample[], from: number, to: number) {
  const xs = samples.filter((s) => s.op === 'GET' && s.end >= from && s.end < to).map((s) => s.ms);
  const r = summarize(Float64Array.from(xs), xs.length);
  return { reads: r.count, mean: r.mean, p50: r.p50, p99: r.p99 };
}

/** The experiment's figures from the samples (`killAtS`: when the kill actually happened). */
export function analyze(
  samples: readonly OpSample[],
  durationS: number,
  killAtS: number,
  factor: number,
): FaultsAnalysis {
  const secs = perSecond(samples, durationS);
  const warm = killAtS > 2 ? 1000 : 0;
  const baseline = pooled(samples, warm, killAtS * 1000);
  const thresholdMs = factor * baseline.p99;
  const k = Math.min(secs.length - 1, Math.floor(killAtS));
  // The last window also holds the stragglers of the stop: judged like the others.
  const after = secs.slice(k);
  const slow = after.filter((w) => w.reads === 0 || w.readP99 >= thresholdMs).map((w) => w.t);
  let recoveryS: number | null;
  if (slow.length === 0) recoveryS = 0;
  else {
    const last = slow[slow.length - 1]!;
    recoveryS = last + 1 >= secs.length ? null : Math.max(0, last + 1 - killAtS);
  }
  let worst: SecondStat | null = null;
  for (const w of after) if (!worst || w.readP99 > worst.readP99) worst = w;
  const ok = samples.filter((s) => s.ok);
  const rate = (op: 'GET' | 'PUT', from: number, to: number) =>
    to > from
      ? ok.filter((s) => s.op === op && s.end >= from && s.end < to).length / ((to - from) / 1000)
      : 0;
  const killMs = killAtS * 1000;
  const endMs = durationS * 1000;
  return {
    killAtS,
    baseline,
    thresholdMs,
    recoveryS,
    slowSeconds: slow,
    worstSecond: worst
      ? { t: worst.t, readP99: worst.readP99, readMean: worst.readMean, readMax: worst.readMax }
      : null,
    failedReads: samples.filter((s) => s.op === 'GET' && !s.ok).length,
    failedWrites: samples.filter((s) => s.op === 'PUT' && !s.ok).length,
    retriedOps: samples.filter((s) => s.attempts > 1).length,
    readsPerSecBefore: rate('GET', warm, killMs),
    readsPerSecAfter: rate('GET', killMs, endMs),
    writesPerSecBefore: rate('PUT', warm, killMs),
    writesPerSecAfter: rate('PUT', killMs, endMs),
    writesPerSecFirst5sAfter: rate('PUT', killMs, Math.min(endMs, killMs + 5000)),
    writesStartedAfterKill: ok.filter((s) => s.op === 'PUT' && s.end - s.ms >= killMs).length,
  };
}
