// Benchmark of the Raft metadata directory: 3 real `kubestorage directory` replicas on
// loopback, driven over HTTP by MetadataClient (what gateways use).
//
//   npm run bench:directory -- --json /tmp/dir.json
//   npm run bench:directory -- --phases commit --commit-duration 10 --tick-ms 20
//   npm run bench:directory -- --phases list --keys 1000000 --reuse /tmp/dir1m
//
// commit: N proposals in flight (--concurrency, spread over --clients MetadataClient
//   instances of --connections each) putObject small realistic object records to the
//   LEADER, then to a FOLLOWER (which forwards to the leader), each for --commit-duration
//   seconds after --warmup seconds. Reported: acknowledged records/s in the measured
//   window, per-call latency, the Raft entries used (the leader's commitIndex delta from
//   GET /status) and so records per entry, and CPU use of every process.
// list: a bucket of --keys keys (preloaded through the leader as fast as it takes them,
//   or kept from an earlier run with --reuse DIR), then ListObjectsV2-style pages of 1000
//   keys: (a) MetadataClient.listObjects against a follower and the leader (linearizable
//   ReadIndex reads), walking the whole bucket and at random start-after points; (b) the
//   same through the S3 API of a `kubestorage server --directory …` child (SigV4-signed
//   GETs by gateway/auth/sign.ts, continuation tokens and start-after).
//
// Every process started is stopped by PID (finally blocks and SIGINT/SIGTERM handlers);
// every loop is bounded in time and count; everything listens on 127.0.0.1 only.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { SERVER_NODE_FLAGS } from '../cli/node-flags.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import type { ObjectRecord } from '../directory/model/api.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import { signRequest } from '../gateway/auth/sign.ts';
import { uriEncode } from '../gateway/auth/sigv4-canonical.ts';
import { calibrate } from './lib/calibrate.ts';
import { mix32, Prng } from './lib/prng.ts';
import { waitFor } from './lib/proc.ts';
import { fmtInt, progress } from './lib/stats.ts';
import { type LatencySummary, summarize } from './lib/summary.ts';

const USAGE = `usage: npm run bench:directory -- [options]
  --phases LIST            commit,list (default both)
  --concurrency C          commit: proposals in flight (default 256)
  --clients K              commit: MetadataClient instances sharing them (default 8)
  --connections N          connections per client and replica (default ceil(C/K))
  --commit-duration SEC    commit: measured seconds per target (default 20)
  --warmup SEC             commit: unmeasured seconds first (default 3)
  --commit-targets LIST    leader,follower (default both)
  --replicas N             directory replicas (default 3; 1 = no replication, for comparison)
  --tick-ms N              Raft tick of the replicas (default: the directory's, 50)
  --keys N                 list: keys in the listed bucket (default 1000000)
  --preload-concurrency C  list: putObject calls in flight while preloading (default 512)
  --preload-cap SEC        list: stop preloading after this long and list what is there
                           (default 600)
  --walk-pages N           list: pages per whole-bucket walk at most (default: all)
  --random-pages N         list: pages at random start-after points per target (default 300)
  --list-warmup N          list: unmeasured random pages per target first (default 200): JIT,
                           caches and connections warm, as in a server that has been up a while
  --list-cap SEC           list: each walk stops after this long (default 120)
  --page-size N            list: keys per page (default 1000)
  --no-s3                  list: skip the S3 gateway part
  --reuse DIR              keep the replicas' data (and the preloaded bucket) in DIR and reuse
                           it next time (same ports); default: a fresh temp dir, removed
  --directory-node-args=S  extra node flags for the replicas (note the "="; after the
                           servers' own, cli/node-flags.ts), e.g.
                           --directory-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
                           (profiles are written when the replicas stop)
  --gateway-node-args=S    extra node flags for the S3 gateway process, likewise
  --seed S                 PRNG seed (default 1)
  --json FILE              write the results as JSON`;

const BIN = path.resolve(import.meta.dirname, '../bin/kubestorage.js');
const COMMIT_BUCKET = 'commitbench';
const LIST_BUCKET = 'listbench';
const ACCESS_KEY = 'DIRBENCHKEY00000';
const SECRET_KEY = 'dirbenchsecret000000000000000000000000000';
const STATE_FILE = 'bench-directory.json';

// ------------------------------------------------------------------ pure helpers

/** Fixed-width keys, so key order is index order: obj/000123456. */
export function objectKey(i: number): string {
  return `obj/${String(i).padStart(9, '0')}`;
}

/** A small object record as the gateway would commit it after storing one needle. */
export function objectRecord(i: number, owner: string, now: number): ObjectRecord {
  const h = mix32(i);
  const size = 512 + (h % (64 * 1024));
  return {
    key: objectKey(i),
    size,
    etag: crypto.createHash('md5').update(`etag-${i}`).digest('hex'),
    lastModified: now,
    contentType: 'application/octet-stream',
    userMeta: {
      app: 'bench',
      uploader: `client-${h % 97}`,
      'trace-id': h.toString(16).padStart(8, '0'),
    },
    chunks: [
      {
        volumeId: 1 + (h % 64),
        needleId: String(1_000_000_000_000 + i),
        cookie: mix32(h ^ 0x5bd1e995),
        size,
      },
    ],
    owner,
  };
}

/** What a ListObjectsV2 answer holds, read with regexes (the bench's own XML is simple). */
export function parseListV2(xml: string): {
  keys: number;
  first?: string;
  last?: string;
  truncated: boolean;
  next?: string;
} {
  const keys = xml.match(/<Key>/g)?.length ?? 0;
  const first = /<Key>([^<]*)<\/Key>/.exec(xml)?.[1];
  const li = xml.lastIndexOf('<Key>');
  const last = li >= 0 ? xml.slice(li + 5, xml.indexOf('</Key>', li)) : undefined;
  const truncated = /<IsTruncated>true<\/IsTruncated>/.test(xml);
  const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
  return { keys, first, last, truncated, next };
}

/** A growable array of latency samples (ms). */
export class Samples {
  private buf = new Float64Array(1024);
  n = 0;
  push(x: number): void {
    if (this.n === this.buf.length) {
      const b = new Float64Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.n++] = x;
  }
  summary(): LatencySummary {
    return summarize(this.buf, this.n);
  }
}

const round = (x: number, d = 2) => +x.toFixed(d);
const loadAvg = () => os.loadavg().map((x) => round(x));
/** % of the last 10 s in which some task waited for a CPU (Linux PSI), or null. */
function cpuPressure(): number | null {
  try {
    const m = /some avg10=([\d.]+)/.exec(fs.readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ arguments

function parse() {
  const { values } = parseArgs({
    options: {
      phases: { type: 'string', default: 'commit,list' },
      concurrency: { type: 'string', default: '256' },
      clients: { type: 'string', default: '8' },
      connections: { type: 'string' },
      'commit-duration': { type: 'string', default: '20' },
      warmup: { type: 'string', default: '3' },
      'commit-targets': { type: 'string', default: 'leader,follower' },
      'tick-ms': { type: 'string' },
      replicas: { type: 'string', default: '3' },
      keys: { type: 'string', default: '1000000' },
      'preload-concurrency': { type: 'string', default: '512' },
      'preload-cap': { type: 'string', default: '600' },
      'walk-pages': { type: 'string' },
      'list-warmup': { type: 'string', default: '200' },
      'random-pages': { type: 'string', default: '300' },
      'list-cap': { type: 'string', default: '120' },
      'page-size': { type: 'string', default: '1000' },
      'no-s3': { type: 'boolean', default: false },
      reuse: { type: 'string' },
      'directory-node-args': { type: 'string', default: '' },
      'gateway-node-args': { type: 'string', default: '' },
      seed: { type: 'string', default: '1' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const num = (name: string, v: string | undefined, min: number, int = true): number => {
    const n = Number(v?.replace(/_/g, ''));
    if (!Number.isFinite(n) || n < min || (int && !Number.isSafeInteger(n))) {
      process.stderr.write(`--${name} must be ${int ? 'an integer' : 'a number'} ≥ ${min}\n`);
      process.exit(2);
    }
    return n;
  };
  const list = (name: string, v: string, allowed: string[]): string[] => {
    const xs = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const x of xs) {
      if (!allowed.includes(x)) {
        process.stderr.write(`--${name}: one or more of ${allowed.join(',')}\n`);
        process.exit(2);
      }
    }
    return xs;
  };
  const concurrency = num('concurrency', values.concurrency, 1);
  const clients = Math.min(concurrency, num('clients', values.clients, 1));
  return {
    phases: list('phases', values.phases, ['commit', 'list']),
    concurrency,
    clients,
    connections:
      values.connections === undefined
        ? Math.ceil(concurrency / clients)
        : num('connections', values.connections, 1),
    commitSeconds: num('commit-duration', values['commit-duration'], 1, false),
    warmupSeconds: num('warmup', values.warmup, 0, false),
    commitTargets: list('commit-targets', values['commit-targets'], ['leader', 'follower']),
    replicas: num('replicas', values.replicas, 1),
    tickMs: values['tick-ms'] === undefined ? undefined : num('tick-ms', values['tick-ms'], 1),
    keys: num('keys', values.keys, 1),
    preloadConcurrency: num('preload-concurrency', values['preload-concurrency'], 1),
    preloadCapSeconds: num('preload-cap', values['preload-cap'], 1, false),
    walkPages:
      values['walk-pages'] === undefined ? Infinity : num('walk-pages', values['walk-pages'], 0),
    randomPages: num('random-pages', values['random-pages'], 0),
    listWarmup: num('list-warmup', values['list-warmup'], 0),
    listCapSeconds: num('list-cap', values['list-cap'], 1, false),
    pageSize: num('page-size', values['page-size'], 1),
    s3: !values['no-s3'],
    reuse: values.reuse,
    nodeArgs: values['directory-node-args'].split(/\s+/).filter(Boolean),
    gatewayNodeArgs: values['gateway-node-args'].split(/\s+/).filter(Boolean),
    seed: num('seed', values.seed, 0),
    json: values.json,
  };
}
type Args = ReturnType<typeof parse>;

// ------------------------------------------------------------------ processes

/** Every child started, so signal handlers and finally blocks can stop them by PID. */
const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (or signal name). */
function stopProcess(child: ChildProcess, graceMs = 15_000): Promise<number | string | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode ?? child.signalCode);
      return;
    }
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    }, graceMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
    if (child.pid) process.kill(child.pid, 'SIGTERM');
  });
}

function installSignalHandlers(cleanup: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    progress(`${sig}: stopping ${children.size} child process(es)`);
    cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  // Last resort (an uncaught error): nothing survives the bench.
  process.on('exit', () => {
    for (const c of children) if (c.pid && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
  });
}

/** Ports free right now on 127.0.0.1 (bound to :0 together, then released). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** user+system CPU seconds of a process so far (Linux /proc), or null elsewhere. */
function procCpuSeconds(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 3, utime 14, stime 15 → indexes 11, 12 here.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

interface Status {
  id: string;
  role: string;
  leaderId: string | null;
  term?: number;
  commitIndex: number;
  appliedIndex: number;
}

interface Replica {
  id: string;
  url: string;
  port: number;
  dataDir: string;
  child?: ChildProcess;
}

class Cluster {
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
        ...SERVER_NODE_FLAGS,
        ...this.a.nodeArgs,
        BIN,
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
      r.child = track(
        spawn(process.execPath, args, {
          env: {
            ...process.env,
            KUBESTORAGE_CLUSTER_SECRET: this.secret,
            KUBESTORAGE_LOG_LEVEL: process.env.KUBESTORAGE_LOG_LEVEL ?? 'warn',
          },
          stdio: ['ignore', log, log],
        }),
      );
      fs.closeSync(log);
    }
  }

  async status(r: Replica): Promise<Status> {
    const res = await fetch(`${r.url}/status`, { signal: AbortSignal.timeout(3_000) });
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
    return Object.fromEntries(this.replicas.map((r) => [r.id, procCpuSeconds(r.child?.pid)]));
  }

  async stop(): Promise<Record<string, number | string | null>> {
    const out: Record<string, number | string | null> = {};
    await Promise.all(
      this.replicas.map(async (r) => {
        out[r.id] = r.child ? await stopProcess(r.child) : null;
      }),
    );
    return out;
  }
}

// ------------------------------------------------------------------ load driver

interface DriveResult {
  /** Calls acknowledged inside the measured window. */
  acked: number;
  /** All calls acknowledged, window or not. */
  ackedTotal: number;
  errors: number;
  firstError?: string;
  seconds: number;
  latency: Samples;
}

/**
 * `concurrency` loops call op(i) with i = 0, 1, … until `maxOps` calls started or the
 * clock passes `stopAt` (performance.now() ms). A completion counts (and its latency is
 * kept) when it ends in [measureFrom, stopAt]. After an error a loop pauses 20 ms.
 */
async function drive(o: {
  concurrency: number;
  maxOps: number;
  measureFrom: number;
  stopAt: number;
  op: (i: number) => Promise<void>;
}): Promise<DriveResult> {
  const latency = new Samples();
  let next = 0;
  let acked = 0;
  let ackedTotal = 0;
  let errors = 0;
  let firstError: string | undefined;
  let lastEnd = o.measureFrom;
  const loop = async () => {
    while (next < o.maxOps && performance.now() < o.stopAt) {
      const i = next++;
      const t = performance.now();
      try {
        await o.op(i);
      } catch (e) {
        errors++;
        firstError ??= (e as Error)?.message ?? String(e);
        await sleep(20);
        continue;
      }
      const end = performance.now();
      ackedTotal++;
      if (end >= o.measureFrom && end <= o.stopAt) {
        acked++;
        latency.push(end - t);
        lastEnd = Math.max(lastEnd, end);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, o.maxOps)) }, loop));
  // A count-bound run ends at its last completion; a time-bound one at stopAt.
  const end = next >= o.maxOps ? lastEnd : o.stopAt;
  return {
    acked,
    ackedTotal,
    errors,
    firstError,
    seconds: Math.max(1e-3, (end - o.measureFrom) / 1000),
    latency,
  };
}

interface Sample {
  t: number;
  commitIndex: number;
  term?: number;
  leaderId: string | null;
  cpu: Record<string, number | null>;
  generatorCpu: number;
}

async function sampleState(cluster: Cluster, leader: Replica): Promise<Sample> {
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
function cpuPercent(a: Sample, b: Sample): Record<string, number | null> {
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

function makeClients(url: string, cluster: Cluster, n: number, connections: number) {
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

// ------------------------------------------------------------------ commit phase

interface CommitResult {
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

async function commitPhase(
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

function roundSummary(s: LatencySummary): LatencySummary {
  return {
    ...s,
    mean: round(s.mean, 3),
    variance: round(s.variance, 3),
    p50: round(s.p50, 3),
    p90: round(s.p90, 3),
    p99: round(s.p99, 3),
    p999: round(s.p999, 3),
    max: round(s.max, 3),
    under: Object.fromEntries(Object.entries(s.under).map(([k, v]) => [k, round(v, 4)])),
  };
}

// ------------------------------------------------------------------ list phase

interface SavedState {
  ports: number[];
  secret: string;
  loaded: number;
}

interface ListResult {
  via: string;
  /** walk: whole bucket by continuation; random: at random start-after points; floor: getBucket. */
  mode: 'walk' | 'random' | 'floor';
  pages: number;
  keys: number;
  seconds: number;
  pagesPerSec: number;
  keysPerSec: number;
  latencyMs: LatencySummary;
  errors: number;
  firstError?: string;
  capped: boolean;
  complete?: boolean;
  loadAvgEnd: number[];
  cpuPressureEnd: number | null;
}

function report(r: ListResult): ListResult {
  const l = r.latencyMs;
  progress(
    `list ${r.via} ${r.mode}: ${r.pages} pages, ${fmtInt(r.keys)} keys, p50 ${l.p50} ms, ` +
      `p90 ${l.p90} ms, p99 ${l.p99} ms, ${fmtInt(r.keysPerSec)} keys/s, errors ${r.errors}` +
      `${r.firstError ? ` (first: ${r.firstError})` : ''}${r.capped ? ' [time cap]' : ''}` +
      `${r.complete === false ? ' [INCOMPLETE WALK]' : ''}, load ${r.loadAvgEnd.join(' ')}`,
  );
  return r;
}

type PageFn = (
  after: string | undefined,
  token: string | undefined,
) => Promise<{
  keys: number;
  first?: string;
  last?: string;
  truncated: boolean;
  token?: string;
  /** The page's latency when the caller measured it itself (to leave out its own parsing). */
  ms?: number;
}>;

/** Unmeasured pages at random points; errors are left to the measured runs to report. */
async function warmUp(a: Args, loaded: number, rng: Prng, page: PageFn): Promise<void> {
  const deadline = performance.now() + a.listCapSeconds * 1000;
  for (let i = 0; i < a.listWarmup && performance.now() < deadline; i++) {
    await page(objectKey(rng.below(loaded)), undefined).catch(() => {});
  }
}

/** Pages from the start by continuation until the end, `maxPages` or the time cap. */
async function walk(a: Args, via: string, loaded: number, page: PageFn): Promise<ListResult> {
  const lat = new Samples();
  const t0 = performance.now();
  const deadline = t0 + a.listCapSeconds * 1000;
  let token: string | undefined;
  let after: string | undefined;
  let keys = 0;
  let pages = 0;
  let errors = 0;
  let firstError: string | undefined;
  let capped = false;
  let ordered = true;
  let expect = 0;
  let reachedEnd = false;
  const maxPages = Math.min(a.walkPages, Math.ceil(loaded / a.pageSize) + 1);
  while (pages < maxPages) {
    if (performance.now() > deadline) {
      capped = true;
      break;
    }
    const s = performance.now();
    let p: Awaited<ReturnType<PageFn>>;
    try {
      p = await page(after, token);
    } catch (e) {
      errors++;
      firstError ??= (e as Error).message;
      if (errors > 20) break;
      continue;
    }
    lat.push(p.ms ?? performance.now() - s);
    pages++;
    keys += p.keys;
    if (p.first !== undefined && p.first !== objectKey(expect)) ordered = false;
    expect += p.keys;
    if (!p.truncated) {
      reachedEnd = true;
      break;
    }
    after = p.last;
    token = p.token;
  }
  const seconds = (performance.now() - t0) / 1000;
  return report({
    via,
    mode: 'walk',
    pages,
    keys,
    seconds: round(seconds, 3),
    pagesPerSec: round(pages / seconds, 1),
    keysPerSec: round(keys / seconds, 0),
    latencyMs: roundSummary(lat.summary()),
    errors,
    firstError,
    capped,
    // Only a walk that reached the end can be checked: every key, in order, once.
    complete: reachedEnd ? ordered && keys === loaded : undefined,
    loadAvgEnd: loadAvg(),
    cpuPressureEnd: cpuPressure(),
  });
}

/** Pages starting after random existing keys; checks each page's size and first key. */
async function randomPages(
  a: Args,
  via: string,
  loaded: number,
  rng: Prng,
  page: PageFn,
): Promise<ListResult> {
  const lat = new Samples();
  const t0 = performance.now();
  const deadline = t0 + a.listCapSeconds * 1000;
  let keys = 0;
  let pages = 0;
  let errors = 0;
  let firstError: string | undefined;
  let capped = false;
  for (let n = 0; n < a.randomPages; n++) {
    if (performance.now() > deadline) {
      capped = true;
      break;
    }
    const at = rng.below(loaded);
    const s = performance.now();
    try {
      const p = await page(objectKey(at), undefined);
      lat.push(p.ms ?? performance.now() - s);
      pages++;
      keys += p.keys;
      const want = Math.min(a.pageSize, loaded - at - 1);
      if (p.keys !== want || (want > 0 && p.first !== objectKey(at + 1))) {
        throw new Error(`start-after ${objectKey(at)}: ${p.keys} keys from ${p.first}`);
      }
    } catch (e) {
      errors++;
      firstError ??= (e as Error).message;
      if (errors > 20) break;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return report({
    via,
    mode: 'random',
    pages,
    keys,
    seconds: round(seconds, 3),
    pagesPerSec: round(pages / seconds, 1),
    keysPerSec: round(keys / seconds, 0),
    latencyMs: roundSummary(lat.summary()),
    errors,
    firstError,
    capped,
    loadAvgEnd: loadAvg(),
    cpuPressureEnd: cpuPressure(),
  });
}

/** Sequential small reads (a.randomPages of them, at least 50): the per-read floor. */
async function readFloor(a: Args, via: string, read: () => Promise<void>): Promise<ListResult> {
  const lat = new Samples();
  const t0 = performance.now();
  const deadline = t0 + a.listCapSeconds * 1000;
  let errors = 0;
  let firstError: string | undefined;
  let capped = false;
  const n = Math.max(50, a.randomPages);
  for (let i = 0; i < n; i++) {
    if (performance.now() > deadline) {
      capped = true;
      break;
    }
    const s = performance.now();
    try {
      await read();
      lat.push(performance.now() - s);
    } catch (e) {
      errors++;
      firstError ??= (e as Error).message;
      if (errors > 20) break;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return report({
    via,
    mode: 'floor',
    pages: lat.n,
    keys: 0,
    seconds: round(seconds, 3),
    pagesPerSec: round(lat.n / seconds, 1),
    keysPerSec: 0,
    latencyMs: roundSummary(lat.summary()),
    errors,
    firstError,
    capped,
    loadAvgEnd: loadAvg(),
    cpuPressureEnd: cpuPressure(),
  });
}

async function startGateway(
  root: string,
  cluster: Cluster,
  secret: string,
  nodeArgs: string[],
): Promise<{ endpoint: string; child: ChildProcess; dataDir: string }> {
  const dataDir = path.join(root, 'gateway');
  fs.mkdirSync(dataDir, { recursive: true });
  const child = track(
    spawn(
      process.execPath,
      [
        ...SERVER_NODE_FLAGS,
        ...nodeArgs,
        BIN,
        'server',
        '--directory',
        cluster.urls.join(','),
        '--data',
        dataDir,
        '--listen',
        '127.0.0.1:0',
      ],
      {
        env: {
          ...process.env,
          KUBESTORAGE_CLUSTER_SECRET: secret,
          KUBESTORAGE_ROOT_ACCESS_KEY: ACCESS_KEY,
          KUBESTORAGE_ROOT_SECRET_KEY: SECRET_KEY,
          KUBESTORAGE_LOG_LEVEL: process.env.KUBESTORAGE_LOG_LEVEL ?? 'warn',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    ),
  );
  const m = await waitFor(child, /S3 endpoint: (http:\/\/\S+)/, 'kubestorage server --directory');
  return { endpoint: m[1]!, child, dataDir };
}

class S3 {
  readonly pool: Pool;
  private readonly host: string;
  constructor(endpoint: string) {
    const u = new URL(endpoint);
    this.host = u.host;
    this.pool = new Pool(u.origin, { connections: 4, keepAliveTimeout: 60_000 });
  }
  async request(method: string, rawPath: string, query: [string, string][] = []) {
    const headers = signRequest({
      method,
      rawPath,
      query,
      headers: { host: this.host },
      accessKey: ACCESS_KEY,
      secretKey: SECRET_KEY,
    }).headers;
    const qs = query.map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).join('&');
    const res = await this.pool.request({
      method: method as 'GET',
      path: qs ? `${rawPath}?${qs}` : rawPath,
      headers,
    });
    const text = await res.body.text();
    return { status: res.statusCode, text };
  }
}

async function listPhase(
  a: Args,
  root: string,
  cluster: Cluster,
  secret: string,
  leader: Replica,
  followers: Replica[],
  initiallyLoaded: number,
  results: Record<string, unknown>,
): Promise<void> {
  const rng = new Prng(a.seed);
  const out: Record<string, unknown> = {};
  results.list = out;
  // The gateway first: it creates the root user and key, and the bucket gets its owner.
  let gw: Awaited<ReturnType<typeof startGateway>> | undefined;
  const client = makeClients(leader.url, cluster, 1, a.preloadConcurrency)[0]!;
  try {
    let owner = 'bench-owner';
    if (a.s3) {
      gw = await startGateway(root, cluster, secret, a.gatewayNodeArgs);
      progress(`kubestorage server --directory … on ${gw.endpoint}`);
      const s3 = new S3(gw.endpoint);
      const r = await s3.request('PUT', `/${LIST_BUCKET}`);
      if (r.status !== 200 && !/BucketAlreadyOwnedByYou/.test(r.text)) {
        throw new Error(`create bucket: HTTP ${r.status} ${r.text.slice(0, 200)}`);
      }
      owner = (await client.getBucket(LIST_BUCKET))?.owner ?? owner;
      await s3.pool.close();
    } else if (!(await client.getBucket(LIST_BUCKET))) {
      await client.createBucket({
        name: LIST_BUCKET,
        owner,
        createdAt: Date.now(),
        region: 'us-east-1',
      });
    }

    // Preload.
    let loaded = initiallyLoaded;
    if (loaded < a.keys) {
      const from = loaded;
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
      loaded = from + r.ackedTotal;
      const entries = s1.commitIndex - s0.commitIndex;
      out.preload = {
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
      progress(`preload: ${JSON.stringify(out.preload)}`);
      if (r.errors > 0) {
        // Failed keys leave holes: the walk's completeness check would then fail.
        progress(`preload had ${r.errors} errors: the bucket may have holes`);
      }
      if (a.reuse) {
        const st: SavedState = { ports: cluster.replicas.map((x) => x.port), secret, loaded };
        if (r.errors === 0) fs.writeFileSync(path.join(root, STATE_FILE), JSON.stringify(st));
      }
    } else {
      out.preload = { reused: true, records: loaded };
    }
    out.keys = loaded;
    progress(`listing a bucket of ${fmtInt(loaded)} keys, pages of ${a.pageSize}`);

    // (a) MetadataClient.listObjects, follower then leader.
    const clientsToClose: MetadataClient[] = [];
    const viaClient = (r: Replica): PageFn & { floor: () => Promise<void> } => {
      const c = new MetadataClient([r.url], cluster.auth, { connections: 4, timeoutMs: 60_000 });
      clientsToClose.push(c);
      const fn = async (after: string | undefined) => {
        const p = await c.listObjects(LIST_BUCKET, { after, maxKeys: a.pageSize });
        return {
          keys: p.objects.length,
          first: p.objects[0]?.key,
          last: p.last,
          truncated: p.isTruncated,
        };
      };
      // The smallest linearizable read (one ReadIndex round plus a point get): the floor
      // under every page's latency.
      return Object.assign(fn, {
        floor: async () => {
          if (!(await c.getBucket(LIST_BUCKET))) throw new Error('getBucket: no bucket');
        },
      });
    };
    const runs: ListResult[] = [];
    try {
      for (const [role, r] of [
        ['follower', followers[0]],
        ['leader', leader],
      ] as const) {
        if (!r) continue;
        const fn = viaClient(r);
        await warmUp(a, loaded, rng, fn);
        runs.push(await readFloor(a, `client→${role} (${r.id})`, fn.floor));
        runs.push(await walk(a, `client→${role} (${r.id})`, loaded, fn));
        runs.push(await randomPages(a, `client→${role} (${r.id})`, loaded, rng, fn));
      }
    } finally {
      await Promise.all(clientsToClose.map((c) => c.close()));
    }

    // (b) ListObjectsV2 through the S3 gateway.
    if (gw) {
      const s3 = new S3(gw.endpoint);
      const base: [string, string][] = [
        ['list-type', '2'],
        ['max-keys', String(a.pageSize)],
      ];
      const fn: PageFn = async (after, token) => {
        const q = [...base];
        if (token !== undefined) q.push(['continuation-token', token]);
        else if (after !== undefined) q.push(['start-after', after]);
        // Request sent → whole response received: what any S3 client waits for. Our own
        // regex reading of the XML afterwards is not the server's latency.
        const s = performance.now();
        const r = await s3.request('GET', `/${LIST_BUCKET}`, q);
        const ms = performance.now() - s;
        if (r.status !== 200)
          throw new Error(`ListObjectsV2: HTTP ${r.status} ${r.text.slice(0, 200)}`);
        const p = parseListV2(r.text);
        return { ...p, token: p.next, ms };
      };
      try {
        await warmUp(a, loaded, rng, fn);
        runs.push(await walk(a, 'S3 ListObjectsV2', loaded, fn));
        runs.push(await randomPages(a, 'S3 ListObjectsV2', loaded, rng, fn));
      } finally {
        await s3.pool.close();
      }
      out.s3Gateway = {
        endpoint: gw.endpoint,
        directoryUrls: cluster.urls,
        note: 'kubestorage server --directory (single process); its MetadataClient starts at the first URL',
      };
    }
    out.runs = runs;
  } finally {
    await client.close();
    if (gw) out.gatewayExit = await stopProcess(gw.child);
  }
}

// ------------------------------------------------------------------ main

function table(results: Record<string, unknown>): string {
  const rows: string[][] = [['what', 'rate', 'p50 ms', 'p90 ms', 'p99 ms', 'extra']];
  for (const c of (results.commit as CommitResult[] | undefined) ?? []) {
    rows.push([
      `commit → ${c.target} (${c.targetId})`,
      `${fmtInt(c.recordsPerSec)} rec/s`,
      String(c.latencyMs.p50),
      String(c.latencyMs.p90),
      String(c.latencyMs.p99),
      `${c.recordsPerEntry ?? '-'} rec/entry, err ${c.errors}, load ${c.loadAvgEnd[0]} psi ${c.cpuPressureEnd ?? '-'}`,
    ]);
  }
  const list = results.list as
    | { preload?: Record<string, unknown>; runs?: ListResult[] }
    | undefined;
  const pre = list?.preload as
    | { recordsPerSec?: number; records?: number; latencyMs?: LatencySummary; reused?: boolean }
    | undefined;
  if (pre && !pre.reused && pre.latencyMs) {
    rows.push([
      `preload ${fmtInt(pre.records ?? 0)} keys`,
      `${fmtInt(pre.recordsPerSec ?? 0)} rec/s`,
      String(pre.latencyMs.p50),
      String(pre.latencyMs.p90),
      String(pre.latencyMs.p99),
      '',
    ]);
  }
  for (const r of list?.runs ?? []) {
    const floor = r.mode === 'floor';
    rows.push([
      floor ? `getBucket ${r.via} (read floor)` : `list ${r.via} ${r.mode}`,
      `${r.pagesPerSec} ${floor ? 'reads' : 'pages'}/s`,
      String(r.latencyMs.p50),
      String(r.latencyMs.p90),
      String(r.latencyMs.p99),
      `${r.pages} ${floor ? 'reads' : 'pages'}, err ${r.errors}${r.complete === false ? ' INCOMPLETE' : r.complete ? ' complete' : ''}, load ${r.loadAvgEnd[0]} psi ${r.cpuPressureEnd ?? '-'}`,
    ]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n');
}

const calibrationRecord = (i: number) => objectRecord(i, 'root', 1_700_000_000_000);

async function main(): Promise<void> {
  const a = parse();
  const results: Record<string, unknown> = {
    command: `npm run bench:directory -- ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: {
      cores: os.availableParallelism?.() ?? os.cpus().length,
      cpu: os.cpus()[0]?.model,
      memGiB: round(os.totalmem() / 1024 ** 3, 1),
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
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
    await Promise.all([...children].map((c) => stopProcess(c, 5_000)));
    if (!a.reuse) fs.rmSync(root, { recursive: true, force: true });
  };
  installSignalHandlers(cleanup);

  try {
    cluster.start();
    let { leader, followers } = await cluster.waitForLeader();
    progress(
      `directory up in ${root}: leader ${leader.id} (${leader.url}), followers ${followers
        .map((f) => f.id)
        .join(', ')}; load ${loadAvg().join(' ')}`,
    );
    results.replicas = cluster.replicas.map((r) => ({ id: r.id, url: r.url, pid: r.child?.pid }));

    if (a.phases.includes('commit')) {
      const c = makeClients(leader.url, cluster, 1, 4)[0]!;
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
      results.commit = commit;
      // Keys differ per run and target (fresh inserts, not overwrites): a run starting a
      // minute after another used to reuse most of its keys (seconds × 1000 + i).
      let keyBase = Date.now() * 1000;
      for (const t of a.commitTargets) {
        ({ leader, followers } = await cluster.waitForLeader());
        const target = t === 'leader' ? leader : followers[0];
        if (!target) continue;
        commit.push(await commitPhase(a, cluster, leader, target, t, keyBase));
        keyBase += 50_000_000;
      }
    }

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

const invoked = process.argv[1] ? path.resolve(process.argv[1]) : '';
if (invoked === fileURLToPath(import.meta.url)) await main();
