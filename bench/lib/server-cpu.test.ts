import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ClusterFile, writeClusterFile } from '../../cli/cluster.ts';
import { loadClusterTarget } from './cluster-target.ts';
import { procStat, sigkill } from './proc.ts';
import {
  type CpuSnapshot,
  clusterProbe,
  cpuBetween,
  pidTreeProbe,
  processTree,
  readPidfile,
  snapshot,
} from './server-cpu.ts';

// A chain of DEPTH node processes (each the parent of the next): on "go" each burns MS of
// its own CPU, in turn, and the last one says "burned" (passed back up the chain).
const BURNER = `
const { spawn } = require('node:child_process');
const depth = Number(process.argv[1]);
const ms = Number(process.argv[2]);
const burn = () => {
  const t = process.cpuUsage();
  for (;;) {
    const u = process.cpuUsage(t);
    if ((u.user + u.system) / 1000 >= ms) return;
  }
};
const lines = (stream, on) => {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (c) => {
    buf += c;
    for (let i = buf.indexOf('\\n'); i >= 0; i = buf.indexOf('\\n')) {
      on(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
};
let child;
lines(process.stdin, (l) => {
  if (l !== 'go') return;
  burn();
  if (child) child.stdin.write('go\\n');
  else console.log('burned');
});
process.stdin.on('end', () => process.exit(0));
if (depth > 1) {
  child = spawn(process.execPath, ['-e', process.env.BURNER, String(depth - 1), String(ms)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  lines(child.stdout, (l) =>
    console.log(l.startsWith('ready ') ? 'ready ' + process.pid + ' ' + l.slice(6) : l),
  );
} else console.log('ready ' + process.pid);
`;

const started: number[] = [];

afterAll(() => {
  for (const pid of started) sigkill(pid);
});

/** Starts the chain; resolves to its PIDs, root first, once every one of them is up. */
function startChain(depth: number, ms: number): Promise<{ root: ChildProcess; pids: number[] }> {
  const root = spawn(process.execPath, ['-e', BURNER, String(depth), String(ms)], {
    env: { ...process.env, BURNER },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  if (root.pid) started.push(root.pid);
  return new Promise((resolve, reject) => {
    let out = '';
    root.stdout!.setEncoding('utf8');
    root.stdout!.on('data', (c: string) => {
      out += c;
      const m = /ready ([\d ]+)\n/.exec(out);
      if (m) {
        const pids = m[1]!.trim().split(' ').map(Number);
        started.push(...pids);
        resolve({ root, pids });
      }
    });
    root.once('exit', (code) => reject(new Error(`burner exited ${code}: ${out}`)));
  });
}

/** Sends "go" and waits for the whole chain to have burned. */
function burn(root: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const onData = (c: string) => {
      if (c.includes('burned')) {
        root.stdout!.off('data', onData);
        resolve();
      }
    };
    root.stdout!.on('data', onData);
    root.stdin!.write('go\n');
  });
}

describe('server CPU from /proc', () => {
  it('counts a process tree (child and grandchild) with children files and by scan', async () => {
    const MS = 200;
    const { root, pids } = await startChain(3, MS);
    expect(pids).toHaveLength(3);
    expect(pids[0]).toBe(root.pid);
    // Each is the parent of the next: the last is the root's grandchild.
    expect(procStat(pids[2]!)!.ppid).toBe(pids[1]);
    expect(procStat(pids[1]!)!.ppid).toBe(pids[0]);
    const byFiles = processTree([root.pid!], false);
    const byScan = processTree([root.pid!], true);
    expect([...byFiles].sort()).toEqual([...pids].sort());
    expect([...byScan].sort()).toEqual([...pids].sort());

    const before = {
      files: snapshot(byFiles),
      scan: snapshot(byScan),
      root: snapshot([root.pid!]),
    };
    const end = pidTreeProbe([root.pid!]).begin();
    await burn(root);
    const spent = end(1000);
    const after = {
      files: snapshot(processTree([root.pid!], false)),
      scan: snapshot(processTree([root.pid!], true)),
      root: snapshot([root.pid!]),
    };
    const burned = (3 * MS) / 1000;
    // /proc counts in 10 ms ticks per process; node does a little besides the burn.
    for (const k of ['files', 'scan'] as const) {
      const s = cpuBetween(before[k], after[k]);
      expect(s).toBeGreaterThanOrEqual(burned - 0.04);
      expect(s).toBeLessThan(burned + 0.3);
    }
    expect(spent.processes).toBe(3);
    expect(spent.seconds).toBeGreaterThanOrEqual(burned - 0.04);
    expect(spent.usPerReq).toBeCloseTo((1e6 * spent.seconds) / 1000, 2);
    // The root alone burned a third: the rest is its child's and grandchild's.
    const rootOnly = cpuBetween(before.root, after.root);
    expect(rootOnly).toBeGreaterThanOrEqual(MS / 1000 - 0.02);
    expect(rootOnly).toBeLessThan(spent.seconds - MS / 1000);
    for (const pid of pids) sigkill(pid);
  });

  it('counts a process new since the first reading whole, a missed or reused PID not at all', () => {
    const snap = (atTicks: number, procs: [number, number, number][]): CpuSnapshot => ({
      atTicks,
      procs: new Map(
        procs.map(([pid, startTicks, cpuSeconds]) => [pid, { startTicks, cpuSeconds }]),
      ),
    });
    const before = snap(1000, [
      [10, 50, 4],
      [11, 60, 1],
      [12, 70, 2],
    ]);
    const after = snap(1500, [
      [10, 50, 4.5], // +0.5
      // 11 gone: what it spent since is lost
      [12, 1200, 0.25], // PID reused by a process started during the phase: all of it
      [13, 1300, 0.125], // a new worker: all of it
      [14, 900, 7], // running before the phase but not seen then: nothing
    ]);
    expect(cpuBetween(before, after)).toBeCloseTo(0.875, 9);
    expect(cpuBetween(before, before)).toBe(0);
  });

  it('measures a cluster by role from its cluster.json, keys opened with its secret', async () => {
    const { root, pids } = await startChain(1, 150);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ks-server-cpu-'));
    try {
      const c: ClusterFile = {
        gateways: ['http://127.0.0.1:19021', 'http://127.0.0.1:19022'],
        directories: [{ id: 'd1', url: 'http://127.0.0.1:19001', pid: pids[0]! }],
        stores: [],
        gatewayPids: [],
        accessKey: 'KSTESTACCESS',
        secretKey: 'test-secret-key',
        secret: 'cluster-secret-of-the-test',
      };
      writeClusterFile(dir, c);
      fs.writeFileSync(path.join(dir, 'cluster.secret'), `${c.secret}\n`);
      const t = loadClusterTarget(dir);
      expect(t.endpoint).toBe('http://127.0.0.1:19021');
      expect(t.accessKey).toBe('KSTESTACCESS');
      expect(t.secretKey).toBe('test-secret-key');

      const end = clusterProbe(t.cluster, dir).begin();
      await burn(root);
      const spent = end(100);
      expect(spent.seconds).toBeGreaterThanOrEqual(0.14);
      expect(spent.seconds).toBeLessThan(0.4);
      expect(spent.byRoleUsPerReq!.directories).toBeCloseTo(spent.usPerReq!, 2);
      expect(spent.byRoleUsPerReq!.stores).toBe(0);

      // Without cluster.secret the keys must come as flags.
      fs.rmSync(path.join(dir, 'cluster.secret'));
      expect(() => loadClusterTarget(dir)).toThrow(/cluster\.secret/);
      const k = loadClusterTarget(dir, { accessKey: 'AK', secretKey: 'SK' });
      expect([k.endpoint, k.accessKey, k.secretKey]).toEqual([
        'http://127.0.0.1:19021',
        'AK',
        'SK',
      ]);
    } finally {
      sigkill(pids[0]!);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads a pidfile', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ks-pidfile-'));
    try {
      fs.writeFileSync(path.join(dir, 'nginx.pid'), '4242\n');
      expect(readPidfile(path.join(dir, 'nginx.pid'))).toBe(4242);
      fs.writeFileSync(path.join(dir, 'bad.pid'), '\n');
      expect(() => readPidfile(path.join(dir, 'bad.pid'))).toThrow(/no PID/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
