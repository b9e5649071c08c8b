// The listed bucket's keys, put through the leader as fast as it takes them; with --reuse
// what an earlier run loaded is kept and only the rest is added.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { MetadataClient } from '../../directory/wire/client.ts';
import { cpuPressure, loadAvg } from '../lib/machine.ts';
import { fmtInt, progress } from '../lib/stats.ts';
import type { Args } from './args.ts';
import { type Cluster, cpuPercent, type Replica, sampleState } from './cluster.ts';
import {
  LIST_BUCKET,
  objectRecord,
  round,
  roundSummary,
  type SavedState,
  STATE_FILE,
} from './common.ts';
import { type DriveResult, drive } from './drive.ts';

/** Loads keys `loaded` .. a.keys - 1; returns how many the bucket holds and the figures. */
export async function preload(o: {
  a: Args;
  cluster: Cluster;
  leader: Replica;
  client: MetadataClient;
  owner: string;
  root: string;
  secret: string;
  loaded: number;
}): Promise<{ loaded: number; preload: Record<string, unknown> }> {
  const { a, cluster, leader, client, owner } = o;
  const from = o.loaded;
  if (from >= a.keys) return { loaded: from, preload: { reused: true, records: from } };
  const want = a.keys - from;
  const now = Date.now();
  const s0 = await sampleState(cluster, leader);
  const loadAvgStart = loadAvg();
  const t0 = performance.now();
  let done = 0;
  const ticker = setInterval(() => {
    const s = (performance.now() - t0) / 1000;
    progress(
      `[preload] ${fmtInt(done)}/${fmtInt(want)} in ${s.toFixed(0)} s (${fmtInt(done / s)}/s)`,
    );
  }, 5_000);
  let r: DriveResult;
  try {
    // Keys are handed out in order, so what is acknowledged is (nearly) a prefix.
    r = await drive({
      concurrency: a.preloadConcurrency,
      maxOps: want,
      measureFrom: t0,
      stopAt: t0 + a.preloadCapSeconds * 1000,
      op: async (i) => {
        await client.putObject(LIST_BUCKET, objectRecord(from + i, owner, now));
        done++;
      },
    });
  } finally {
    clearInterval(ticker);
  }
  const s1 = await sampleState(cluster, leader);
  // What is really there: the count of keys from `from` on, found by listing would be
  // slow; the acknowledged count is exact unless calls failed.
  const loaded = from + r.ackedTotal;
  const entries = s1.commitIndex - s0.commitIndex;
  const figures = {
    records: r.ackedTotal,
    from,
    seconds: round(r.seconds, 2),
    recordsPerSec: round(r.ackedTotal / r.seconds, 0),
    latencyMs: roundSummary(r.latency.summary()),
    raftEntries: entries,
    recordsPerEntry: entries > 0 ? round(r.ackedTotal / entries, 1) : null,
    errors: r.errors,
    firstError: r.firstError,
    capped: r.ackedTotal + r.errors < want,
    concurrency: a.preloadConcurrency,
    cpuPercent: cpuPercent(s0, s1),
    loadAvgStart,
    loadAvgEnd: loadAvg(),
    cpuPressureEnd: cpuPressure(),
  };
  progress(`preload: ${JSON.stringify(figures)}`);
  if (r.errors > 0) {
    // Failed keys leave holes: the walk's completeness check would then fail.
    progress(`preload had ${r.errors} errors: the bucket may have holes`);
  }
  if (a.reuse) {
    const st: SavedState = { ports: cluster.replicas.map((x) => x.port), secret: o.secret, loaded };
    if (r.errors === 0) fs.writeFileSync(path.join(o.root, STATE_FILE), JSON.stringify(st));
  }
  return { loaded, preload: figures };
}
