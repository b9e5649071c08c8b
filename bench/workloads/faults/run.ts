// The experiment on a running cluster: preload, the load with its kill, then every
// acknowledged object read back byte for byte, and where the writes after the kill went.
import { performance } from 'node:perf_hooks';
import type { ClusterFile } from '../../../cli/cluster.ts';
import { progress } from '../../lib/stats.ts';
import { analyze, type FaultsAnalysis, perSecond, type SecondStat } from './analysis.ts';
import { FaultClient } from './client.ts';
import { type Killed, type Placement, placementOf } from './cluster.ts';
import { faultKey, ObjectData, pool, runLoad } from './load.ts';
import type { FaultsOptions } from './options.ts';

export interface FaultsResult {
  settings: Omit<FaultsOptions, 'log'>;
  gateways: string[];
  preload: { objects: number; seconds: number; retried: number };
  killed: Killed[];
  /** Actual kill time, seconds since the load began. */
  killAtS: number;
  loadSeconds: number;
  reads: number;
  writes: number;
  ackedWrites: number;
  corruptReads: number;
  firstErrors: string[];
  seconds: SecondStat[];
  analysis: FaultsAnalysis;
  verify: {
    checked: number;
    /** Acknowledged (or preloaded) objects not read back byte-exactly after retries. */
    lost: number;
    retried: number;
    unverified: number;
    seconds: number;
    firstLost: string[];
  };
  writePlacement: Placement | null;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** The known objects every read picks from; any failure ends the run before the load. */
async function preloadObjects(
  client: FaultClient,
  data: ObjectData,
  prefix: string,
  opts: FaultsOptions,
  ng: number,
): Promise<FaultsResult['preload']> {
  const p0 = performance.now();
  let preRetried = 0;
  const preFail: string[] = [];
  await pool(opts.objects, Math.max(opts.concurrency, 16), Number.POSITIVE_INFINITY, async (i) => {
    const r = await client.call(i % ng, 'PUT', faultKey(prefix, i), { body: data.get(i) });
    if (r.attempts > 1) preRetried++;
    if (!r.ok) preFail.push(r.error ?? '?');
  });
  if (preFail.length > 0) throw new Error(`preload: ${preFail.length} failed: ${preFail[0]}`);
  return {
    objects: opts.objects,
    seconds: (performance.now() - p0) / 1000,
    retried: preRetried,
  };
}

/** Reads back `ids`, byte for byte, within a bounded time. */
async function readBack(
  client: FaultClient,
  data: ObjectData,
  prefix: string,
  ids: number[],
  concurrency: number,
  ng: number,
): Promise<FaultsResult['verify']> {
  const v0 = performance.now();
  let lost = 0;
  let vRetried = 0;
  const firstLost: string[] = [];
  const checked = await pool(
    ids.length,
    Math.max(concurrency, 16),
    v0 + Math.max(120_000, ids.length * 20),
    async (j) => {
      const id = ids[j]!;
      const r = await client.call(j % ng, 'GET', faultKey(prefix, id), {
        expect: data.get(id),
      });
      if (r.attempts > 1) vRetried++;
      if (!r.ok) {
        lost++;
        if (firstLost.length < 10) firstLost.push(r.error ?? '?');
      }
    },
  );
  return {
    checked,
    lost,
    retried: vRetried,
    unverified: ids.length - checked,
    seconds: (performance.now() - v0) / 1000,
    firstLost,
  };
}

export async function runFaults(c: ClusterFile, opts: FaultsOptions): Promise<FaultsResult> {
  const log = opts.log ?? progress;
  const { durationS, killAtS } = opts;
  if (!(killAtS > 0 && killAtS < durationS)) throw new Error('kill-at must be inside the duration');
  const data = new ObjectData(opts.size, opts.seed);
  const prefix = `${opts.bucket}/r${Date.now().toString(36)}`;
  const client = new FaultClient(
    c.gateways,
    { accessKey: c.accessKey, secretKey: c.secretKey },
    {
      connections: opts.concurrency,
      attempts: opts.attempts,
      attemptTimeoutMs: opts.attemptTimeoutMs,
      seed: opts.seed,
    },
  );
  const ng = c.gateways.length;
  try {
    await client.createBucket(opts.bucket);
    const preload = await preloadObjects(client, data, prefix, opts, ng);
    log(`preloaded ${opts.objects} objects of ${opts.size} B in ${preload.seconds.toFixed(1)} s`);

    const load = await runLoad(c, client, data, prefix, opts, log);
    const { samples, acked, killed } = load;
    const seconds = perSecond(samples, durationS);
    const analysis = analyze(samples, durationS, load.killAtS, opts.factor);

    const all = [...Array.from({ length: opts.objects }, (_, i) => i), ...acked];
    const verify = await readBack(client, data, prefix, all, opts.concurrency, ng);
    log(
      `read back ${verify.checked}/${all.length} acknowledged objects in ${verify.seconds.toFixed(1)} s: ${verify.lost} lost`,
    );
    let writePlacement: Placement | null = null;
    try {
      // A sample is enough to tell re-homed volumes from degraded writes.
      const step = Math.max(1, Math.floor(load.ackedAfterKill.length / 200));
      const keys = load.ackedAfterKill
        .filter((_, j) => j % step === 0)
        .map((id) => faultKey(prefix, id));
      const live = {
        ...c,
        directories: c.directories.filter((d) => !killed.some((k) => k.pid === d.pid)),
      };
      writePlacement = await withTimeout(
        placementOf(live, opts.bucket, keys, opts.killZone),
        20_000,
      );
    } catch (e) {
      log(`could not look up where the writes after the kill went: ${(e as Error).message}`);
    }
    const { log: _log, ...settings } = opts;
    return {
      settings,
      gateways: [...c.gateways],
      preload,
      killed,
      killAtS: load.killAtS,
      loadSeconds: load.loadSeconds,
      reads: samples.filter((s) => s.op === 'GET').length,
      writes: samples.filter((s) => s.op === 'PUT').length,
      ackedWrites: acked.length,
      corruptReads: load.corruptReads,
      firstErrors: load.firstErrors,
      seconds,
      analysis,
      verify,
      writePlacement,
    };
  } finally {
    await client.close();
  }
}
