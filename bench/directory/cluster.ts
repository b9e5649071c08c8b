// The directory under test: N `kubestorage directory` replicas on loopback, their /status
// (signed with the cluster secret), and CPU use sampled from the outside so the replicas'
// own figures are not disturbed.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { SERVER_NODE_FLAGS } from '../../cli/node-flags.ts';
import { AUTH_HEADER, InternalAuth } from '../../common/internal-auth.ts';
import { MetadataClient } from '../../directory/wire/client.ts';
import { cpuSecondsOf, type ExitStatus, spawnKubestorage, stopProcess } from '../lib/proc.ts';
import type { Args } from './args.ts';
import { round } from './common.ts';

export interface Status {
  id: string;
  role: string;
  leaderId: string | null;
  term?: number;
  commitIndex: number;
  appliedIndex: number;
}

export interface Replica {
  id: string;
  url: string;
  port: number;
  dataDir: string;
  child?: ChildProcess;
}

export class Cluster {
  readonly replicas: Replica[];
  readonly auth: InternalAuth;

  constructor(
    private readonly root: string,
    ports: number[],
    private readonly secret: string,
    private readonly a: Args,
  ) {
    this.auth = new InternalAuth(secret);
    this.replicas = ports.map((port, i) => ({
      id: `d${i + 1}`,
      port,
      url: `http://127.0.0.1:${port}`,
      dataDir: path.join(root, `d${i + 1}`),
    }));
  }

  get urls(): string[] {
    return this.replicas.map((r) => r.url);
  }

  start(): void {
    const peers = this.replicas.map((r) => `${r.id}=${r.url}`).join(',');
    for (const r of this.replicas) {
      fs.mkdirSync(r.dataDir, { recursive: true });
      const log = fs.openSync(path.join(this.root, `${r.id}.log`), 'a');
      const args = [
        'directory',
        '--id',
        r.id,
        '--listen',
        `127.0.0.1:${r.port}`,
        '--peers',
        peers,
        '--data',
        r.dataDir,
      ];
      if (this.a.tickMs !== undefined) args.push('--tick-ms', String(this.a.tickMs));
      r.child = spawnKubestorage(args, {
        nodeArgs: [...SERVER_NODE_FLAGS, ...this.a.nodeArgs],
        env: { KUBESTORAGE_CLUSTER_SECRET: this.secret },
        stdio: ['ignore', log, log],
      });
      fs.closeSync(log);
    }
  }

  async status(r: Replica): Promise<Status> {
    const res = await fetch(`${r.url}/status`, {
      headers: { [AUTH_HEADER]: this.auth.sign('GET', '/status') },
      signal: AbortSignal.timeout(3_000),
    });
    if (!res.ok) throw new Error(`${r.url}/status: HTTP ${res.status}`);
    return (await res.json()) as Status;
  }

  /** Waits (≤ timeoutMs) until all replicas agree on one leader; returns it and the rest. */
  async waitForLeader(timeoutMs = 60_000): Promise<{ leader: Replica; followers: Replica[] }> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      for (const r of this.replicas) {
        if (r.child && r.child.exitCode !== null) {
          throw new Error(`replica ${r.id} exited ${r.child.exitCode}: ${this.logTail(r)}`);
        }
      }
      try {
        const ss = await Promise.all(this.replicas.map((r) => this.status(r)));
        const lead = ss[0]?.leaderId;
        const leader = this.replicas.find((r) => r.id === lead);
        if (lead && leader && ss.every((s) => s.leaderId === lead)) {
          const ls = ss[this.replicas.indexOf(leader)]!;
          if (ls.role === 'leader') {
            return { leader, followers: this.replicas.filter((r) => r !== leader) };
          }
        }
        last = JSON.stringify(ss.map((s) => [s.id, s.role, s.leaderId]));
      } catch (e) {
        last = (e as Error).message;
      }
      await sleep(100);
    }
    throw new Error(`no agreed leader within ${timeoutMs} ms: ${last}`);
  }

  logTail(r: Replica): string {
    try {
      return fs.readFileSync(path.join(this.root, `${r.id}.log`), 'utf8').slice(-2000);
    } catch {
      return '(no log)';
    }
  }

  cpu(): Record<string, number | null> {
    return Object.fromEntries(this.replicas.map((r) => [r.id, cpuSecondsOf(r.child?.pid)]));
  }

  async stop(): Promise<Record<string, ExitStatus>> {
    const out: Record<string, ExitStatus> = {};
    await Promise.all(
      this.replicas.map(async (r) => {
        out[r.id] = r.child ? await stopProcess(r.child) : null;
      }),
    );
    return out;
  }
}

export interface Sample {
  t: number;
  commitIndex: number;
  term?: number;
  leaderId: string | null;
  cpu: Record<string, number | null>;
  generatorCpu: number;
}

export async function sampleState(cluster: Cluster, leader: Replica): Promise<Sample> {
  const s = await cluster.status(leader);
  const cpu = process.cpuUsage();
  return {
    t: performance.now(),
    commitIndex: s.commitIndex,
    term: s.term,
    leaderId: s.leaderId,
    cpu: cluster.cpu(),
    generatorCpu: (cpu.user + cpu.system) / 1e6,
  };
}

/** CPU use (% of one core) of each process between two samples. */
export function cpuPercent(a: Sample, b: Sample): Record<string, number | null> {
  const secs = (b.t - a.t) / 1000;
  const out: Record<string, number | null> = {};
  for (const id of Object.keys(a.cpu)) {
    const x = a.cpu[id];
    const y = b.cpu[id];
    out[id] = x == null || y == null ? null : round((100 * (y - x)) / secs, 0);
  }
  out.generator = round((100 * (b.generatorCpu - a.generatorCpu)) / secs, 0);
  return out;
}

export function makeClients(url: string, cluster: Cluster, n: number, connections: number) {
  return Array.from(
    { length: n },
    () =>
      new MetadataClient([url], cluster.auth, {
        connections,
        timeoutMs: 60_000,
        deadlineMs: 10_000,
      }),
  );
}
