// The directory bench from start to end: the replicas (fresh, or kept with --reuse), the
// phases asked for, every process stopped by PID, then the JSON and the table.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { calibrate } from '../lib/calibrate.ts';
import { cpuPressure, loadAvg, machineInfo } from '../lib/machine.ts';
import { freePorts, stopAll, stopChildrenOnSignal } from '../lib/proc.ts';
import { progress } from '../lib/stats.ts';
import { parse } from './args.ts';
import { Cluster } from './cluster.ts';
import { commitPhases } from './commit.ts';
import { objectRecord, type SavedState, STATE_FILE } from './common.ts';
import { listPhase } from './list.ts';
import { table } from './report.ts';

const calibrationRecord = (i: number) => objectRecord(i, 'root', 1_700_000_000_000);

export async function main(): Promise<void> {
  const a = parse();
  const results: Record<string, unknown> = {
    command: `npm run bench:directory -- ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: {
      ...machineInfo(),
      loadAvgAtStart: loadAvg(),
      cpuPressureAtStart: cpuPressure(),
      // Before anything starts, and again at the end (bench/lib/calibrate.ts).
      calibrationAtStart: calibrate(calibrationRecord),
    },
    settings: {
      replicas: a.replicas,
      tickMs: a.tickMs ?? 'default (50)',
      concurrency: a.concurrency,
      clients: a.clients,
      connectionsPerClient: a.connections,
      commitSeconds: a.commitSeconds,
      warmupSeconds: a.warmupSeconds,
      keys: a.keys,
      pageSize: a.pageSize,
      directoryNodeArgs: a.nodeArgs,
    },
  };

  // Data dir and ports: fresh, or what an earlier --reuse run left.
  let root: string;
  let saved: SavedState | undefined;
  if (a.reuse) {
    root = path.resolve(a.reuse);
    fs.mkdirSync(root, { recursive: true });
    try {
      saved = JSON.parse(fs.readFileSync(path.join(root, STATE_FILE), 'utf8')) as SavedState;
    } catch {
      saved = undefined;
    }
    if (!saved && fs.readdirSync(root).some((f) => /^d\d$/.test(f))) {
      throw new Error(`${root} has replica data but no ${STATE_FILE}: use an empty dir`);
    }
  } else root = fs.mkdtempSync(path.join(os.tmpdir(), 'ks-bench-dir-'));
  const secret = saved?.secret ?? crypto.randomBytes(24).toString('base64url');
  const ports = saved?.ports ?? (await freePorts(a.replicas));
  if (a.reuse && !saved) {
    fs.writeFileSync(path.join(root, STATE_FILE), JSON.stringify({ ports, secret, loaded: 0 }));
  }
  const cluster = new Cluster(root, ports, secret, a);
  const cleanup = async () => {
    await stopAll(5_000);
    if (!a.reuse) fs.rmSync(root, { recursive: true, force: true });
  };
  stopChildrenOnSignal(cleanup);

  try {
    cluster.start();
    let { leader, followers } = await cluster.waitForLeader();
    progress(
      `directory up in ${root}: leader ${leader.id} (${leader.url}), followers ${followers
        .map((f) => f.id)
        .join(', ')}; load ${loadAvg().join(' ')}`,
    );
    results.replicas = cluster.replicas.map((r) => ({ id: r.id, url: r.url, pid: r.child?.pid }));

    if (a.phases.includes('commit')) results.commit = await commitPhases(a, cluster, leader);

    if (a.phases.includes('list')) {
      ({ leader, followers } = await cluster.waitForLeader());
      await listPhase(a, root, cluster, secret, leader, followers, saved?.loaded ?? 0, results);
    }
  } finally {
    results.replicaExit = await cluster.stop();
    await cleanup();
  }
  (results.machine as Record<string, unknown>).loadAvgAtEnd = loadAvg();
  (results.machine as Record<string, unknown>).calibrationAtEnd = calibrate(calibrationRecord);
  const text = JSON.stringify(results, null, 2);
  if (a.json) fs.writeFileSync(a.json, `${text}\n`);
  process.stdout.write(`\n${table(results)}\n`);
  const m = results.machine as Record<string, { usPerRecord: number }>;
  process.stdout.write(
    `calibration (µs per stored record checked; lower = faster VM): ` +
      `${m.calibrationAtStart?.usPerRecord} at start, ${m.calibrationAtEnd?.usPerRecord} at end\n`,
  );
  if (a.json) process.stdout.write(`results: ${a.json}\n`);
}
