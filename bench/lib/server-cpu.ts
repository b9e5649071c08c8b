// The server side of a bench target's cost: the CPU time (user+sys, every thread) its
// processes spend during one phase, from /proc. A target's processes are roots — the
// embedded server, PIDs or a pidfile given on the command line — and everything they
// started (node:cluster workers, nginx workers), found again at each reading since workers
// may be respawned; or the processes of a `kubestorage cluster up` (cache-events' readers).
import fs from 'node:fs';
import type { ClusterFile } from '../../cli/cluster.ts';
import {
  type CpuByRole,
  clusterCpu,
  clusterCpuSeconds,
  clusterPids,
  cpuMsPerRequest,
} from '../workloads/cache-events.ts';
import { CLK_TCK, procStat } from './proc.ts';

/** A process tree larger than this is not a server we started: stop walking. */
const MAX_PROCESSES = 4096;

let childrenFiles: boolean | undefined;

/** Whether the kernel lists children in /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN). */
function hasChildrenFiles(): boolean {
  childrenFiles ??= fs.existsSync(`/proc/${process.pid}/task/${process.pid}/children`);
  return childrenFiles;
}

/** Direct children of `pid`, from the children list of each of its threads (a fork's parent is the thread). */
export function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const t of tasks) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8');
    } catch {
      continue; // the thread exited meanwhile
    }
    for (const c of text.split(' ')) if (c.trim()) out.push(Number(c));
  }
  return out;
}

/** Parent → children of every process in /proc: the way without children files. */
export function childrenByScan(): Map<number, number[]> {
  const out = new Map<number, number[]>();
  let names: string[] = [];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const s = procStat(Number(n));
    if (!s) continue;
    let kids = out.get(s.ppid);
    if (!kids) out.set(s.ppid, (kids = []));
    kids.push(Number(n));
  }
  return out;
}

/**
 * `roots` and all their descendants that are alive, each once, roots first. `scan` forces
 * the walk over all of /proc (the fallback, also tested on kernels that have both).
 */
export function processTree(roots: readonly number[], scan = !hasChildrenFiles()): number[] {
  const byScan = scan ? childrenByScan() : undefined;
  const kids = (pid: number) => (byScan ? (byScan.get(pid) ?? []) : childrenOf(pid));
  const seen = new Set<number>();
  const queue = roots.filter((p) => p > 0 && procStat(p) !== null);
  for (let i = 0; i < queue.length && seen.size < MAX_PROCESSES; i++) {
    const pid = queue[i]!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    for (const c of kids(pid)) if (!seen.has(c)) queue.push(c);
  }
  return [...seen];
}

/** CPU of a set of processes at one moment: pid → its start and CPU seconds so far. */
export interface CpuSnapshot {
  /** Clock ticks since boot when it was taken. */
  atTicks: number;
  procs: Map<number, { startTicks: number; cpuSeconds: number }>;
}

function uptimeTicks(): number {
  try {
    return Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * CLK_TCK;
  } catch {
    return 0;
  }
}

export function snapshot(pids: readonly number[]): CpuSnapshot {
  const atTicks = uptimeTicks();
  const procs: CpuSnapshot['procs'] = new Map();
  for (const pid of pids) {
    const s = procStat(pid);
    if (s) procs.set(pid, { startTicks: s.startTicks, cpuSeconds: s.cpuSeconds });
  }
  return { atTicks, procs };
}

/**
 * CPU seconds spent between two snapshots. A process in both counts its difference; one
 * started after `before` (a respawned worker) counts all of its CPU; one that was running
 * at `before` but not seen then (a PID reused, a child missed) counts nothing rather than
 * its whole life. A process gone by `after` loses what it spent since `before`.
 */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): number {
  let s = 0;
  for (const [pid, a] of after.procs) {
    const b = before.procs.get(pid);
    if (b && b.startTicks === a.startTicks) s += Math.max(0, a.cpuSeconds - b.cpuSeconds);
    // One tick of slack: starttime and uptime are rounded differently.
    else if (a.startTicks >= before.atTicks - 1) s += a.cpuSeconds;
  }
  return s;
}

/** What one phase cost the server. */
export interface ServerCpuSpent {
  /** CPU seconds of the server's processes across the phase. */
  seconds: number;
  /** µs of server CPU per completed request (null: no request completed). */
  usPerReq: number | null;
  /** Processes counted at the end of the phase. */
  processes: number;
  /** A cluster's share by kind of process, µs per request. */
  byRoleUsPerReq?: CpuByRole;
}

/** Where a target's server CPU comes from. */
export interface ServerCpuProbe {
  /** For the log and the JSON: which processes. */
  what: string;
  /** Starts a measurement; the function it returns ends it, given the requests completed. */
  begin(): (requests: number) => ServerCpuSpent;
}

/** µs per request, to a thousandth (the float noise of a division hidden from the JSON). */
const perReq = (seconds: number, requests: number) =>
  requests > 0 ? Math.round((1e9 * seconds) / requests) / 1000 : null;

/** The processes `roots` and all their descendants. */
export function pidTreeProbe(roots: readonly number[], what = `pids ${roots.join(',')}`) {
  const probe: ServerCpuProbe = {
    what: `${what} (and descendants)`,
    begin() {
      const before = snapshot(processTree(roots));
      return (requests) => {
        const after = snapshot(processTree(roots));
        const seconds = cpuBetween(before, after);
        // /proc counts 10 ms ticks: more digits would be float noise.
        const rounded = Math.round(seconds * 1000) / 1000;
        return {
          seconds: rounded,
          usPerReq: perReq(seconds, requests),
          processes: after.procs.size,
        };
      };
    },
  };
  return probe;
}

/** Every process of a local cluster (cluster.json), by kind as well. */
export function clusterProbe(c: ClusterFile, dir: string): ServerCpuProbe {
  return {
    what: `cluster ${dir}: pids ${clusterPids(c).join(',')}`,
    begin() {
      const total0 = clusterCpuSeconds(c);
      const roles0 = clusterCpu(c);
      return (requests) => {
        const seconds = clusterCpuSeconds(c) - total0;
        const ms = cpuMsPerRequest(roles0, clusterCpu(c), requests);
        const byRoleUsPerReq = {
          directories: 1000 * ms.directories,
          stores: 1000 * ms.stores,
          gateways: 1000 * ms.gateways,
          redis: 1000 * ms.redis,
        };
        const processes = clusterPids(c).filter((p) => procStat(p) !== null).length;
        return { seconds, usPerReq: perReq(seconds, requests), processes, byRoleUsPerReq };
      };
    },
  };
}

/** The PID in a pidfile (nginx.pid): its first number. */
export function readPidfile(file: string): number {
  const text = fs.readFileSync(file, 'utf8');
  const pid = Number(/\d+/.exec(text)?.[0]);
  if (!(pid > 0)) throw new Error(`${file}: no PID in ${JSON.stringify(text.slice(0, 40))}`);
  return pid;
}
