// The fault experiment's settings and their defaults (those of the paper's run).

export interface FaultsOptions {
  durationS: number;
  killAtS: number;
  size: number;
  /** Objects preloaded before the load starts. */
  objects: number;
  /** Requests in flight (closed loop), spread over the gateways. */
  concurrency: number;
  /** Operations started per second over all workers; 0 = as fast as `concurrency` allows. */
  rate: number;
  readRatio: number;
  seed: number;
  bucket: string;
  /** Zone whose stores are all killed with the directory leader. */
  killZone: string;
  /** Attempts per request, the first included (the AWS SDK's standard mode: 3). */
  attempts: number;
  /** One attempt's time limit; the SDK has none by default, but the run must stay bounded. */
  attemptTimeoutMs: number;
  /** Read p99 must come back under `factor` × its baseline. */
  factor: number;
  /** Progress lines (per second of load); default stderr. */
  log?: (line: string) => void;
}

export const DEFAULTS: Omit<FaultsOptions, 'log'> = {
  durationS: 40,
  killAtS: 15,
  size: 40 * 1024,
  objects: 2000,
  concurrency: 32,
  rate: 200,
  readRatio: 0.8,
  seed: 42,
  bucket: 'faults',
  killZone: 'z1',
  attempts: 3,
  attemptTimeoutMs: 10_000,
  factor: 2,
};

/** "40s" → 40, "1.5m" → 90, "500ms" → 0.5, "12" → 12 (seconds). */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad duration ${JSON.stringify(s)}`);
  const v =
    Number(m[1]) *
    ({ ms: 0.001, s: 1, m: 60 } as Record<string, number>)[(m[2] ?? 's').toLowerCase()]!;
  if (!(v > 0)) throw new Error(`bad duration ${JSON.stringify(s)}`);
  return v;
}
