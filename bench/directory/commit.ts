// Commit phase: putObject records with N calls in flight to one replica, the leader or a
// follower (which forwards to the leader); records/s, latency and records per Raft entry.
import { performance } from 'node:perf_hooks';
import { cpuPressure, loadAvg } from '../lib/machine.ts';
import { fmtInt, progress } from '../lib/stats.ts';
import type { LatencySummary } from '../lib/summary.ts';
import type { Args } from './args.ts';
import {
  type Cluster,
  cpuPercent,
  makeClients,
  type Replica,
  type Sample,
  sampleState,
} from './cluster.ts';
import { COMMIT_BUCKET, objectRecord, round, roundSummary } from './common.ts';
import { type DriveResult, drive } from './drive.ts';

export interface CommitResult {
  target: string;
  targetId: string;
  leaderId: string;
  concurrency: number;
  clients: number;
  connectionsPerClient: number;
  warmupSeconds: number;
  seconds: number;
  committed: number;
  recordsPerSec: number;
  errors: number;
  firstError?: string;
  latencyMs: LatencySummary;
  raftEntries: number;
  recordsPerEntry: number | null;
  leaderChanged: boolean;
  cpuPercent: Record<string, number | null>;
  loadAvgStart: number[];
  loadAvgEnd: number[];
  cpuPressureEnd: number | null;
}

export async function commitPhase(
  a: Args,
  cluster: Cluster,
  leader: Replica,
  target: Replica,
  label: string,
  keyBase: number,
): Promise<CommitResult> {
  const clients = makeClients(target.url, cluster, a.clients, a.connections);
  const loadAvgStart = loadAvg();
  const now = Date.now();
  try {
    const t0 = performance.now();
    const measureFrom = t0 + a.warmupSeconds * 1000;
    const stopAt = measureFrom + a.commitSeconds * 1000;
    let s0: Promise<Sample | undefined> | undefined;
    const t1 = setTimeout(() => {
      // A failed /status sample must not become an unhandled rejection mid-run.
      s0 = sampleState(cluster, leader).catch((e) => {
        progress(`[commit ${label}] /status sample failed: ${(e as Error).message}`);
        return undefined;
      });
    }, measureFrom - t0);
    const ticker = setInterval(() => progress(`[commit ${label}] running…`), 5_000);
    let r: DriveResult;
    try {
      r = await drive({
        concurrency: a.concurrency,
        maxOps: 100_000_000,
        measureFrom,
        stopAt,
        op: async (i) => {
          await clients[i % clients.length]!.putObject(
            COMMIT_BUCKET,
            objectRecord(keyBase + i, 'bench-owner', now),
          );
        },
      });
    } finally {
      clearTimeout(t1);
      clearInterval(ticker);
    }
    // The sample at stopAt is taken once the last loop is back (in-flight calls finish
    // a few ms late); their entries are few next to the window's.
    const s1 = await sampleState(cluster, leader);
    // Without the window-start sample the entries are not known (reported as 0).
    const first = (s0 && (await s0)) ?? s1;
    const entries = s1.commitIndex - first.commitIndex;
    const res: CommitResult = {
      target: label,
      targetId: target.id,
      leaderId: leader.id,
      concurrency: a.concurrency,
      clients: a.clients,
      connectionsPerClient: a.connections,
      warmupSeconds: a.warmupSeconds,
      seconds: round(r.seconds, 3),
      committed: r.acked,
      recordsPerSec: round(r.acked / r.seconds, 0),
      errors: r.errors,
      firstError: r.firstError,
      latencyMs: roundSummary(r.latency.summary()),
      raftEntries: entries,
      recordsPerEntry: entries > 0 ? round(r.acked / entries, 1) : null,
      leaderChanged: s1.leaderId !== leader.id || s1.term !== first.term,
      cpuPercent: cpuPercent(first, s1),
      loadAvgStart,
      loadAvgEnd: loadAvg(),
      cpuPressureEnd: cpuPressure(),
    };
    const l = res.latencyMs;
    progress(
      `commit → ${label} (${target.id}): ${fmtInt(res.recordsPerSec)} records/s, ` +
        `p50 ${l.p50} ms, p99 ${l.p99} ms, ${fmtInt(entries)} entries ` +
        `(${res.recordsPerEntry ?? '-'} records/entry), errors ${r.errors}` +
        `${r.firstError ? ` (first: ${r.firstError})` : ''}, CPU% ${JSON.stringify(res.cpuPercent)}, ` +
        `load ${res.loadAvgEnd.join(' ')}, cpu pressure ${res.cpuPressureEnd ?? '-'}%`,
    );
    return res;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** The commit phase against each of --commit-targets, on a commit bucket made if missing. */
export async function commitPhases(
  a: Args,
  cluster: Cluster,
  leaderNow: Replica,
): Promise<CommitResult[]> {
  const c = makeClients(leaderNow.url, cluster, 1, 4)[0]!;
  try {
    if (!(await c.getBucket(COMMIT_BUCKET))) {
      await c.createBucket({
        name: COMMIT_BUCKET,
        owner: 'bench-owner',
        createdAt: Date.now(),
        region: 'us-east-1',
      });
    }
  } finally {
    await c.close();
  }
  const commit: CommitResult[] = [];
  // Keys differ per run and target (fresh inserts, not overwrites): a run starting a
  // minute after another used to reuse most of its keys (seconds × 1000 + i).
  let keyBase = Date.now() * 1000;
  for (const t of a.commitTargets) {
    const { leader, followers } = await cluster.waitForLeader();
    const target = t === 'leader' ? leader : followers[0];
    if (!target) continue;
    commit.push(await commitPhase(a, cluster, leader, target, t, keyBase));
    keyBase += 50_000_000;
  }
  return commit;
}
