// Every child process of the benchmarks goes through here: kubestorage processes started
// from this checkout's bin (servers, directory replicas), the null server, readiness by a
// stdout line, stopping by PID with a bounded wait, free loopback ports. Children are kept
// in one registry so a signal or an uncaught error leaves none of them running.
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { progress } from './stats.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/kubestorage.js');

/** How a child ended: its exit code, or the signal that ended it. */
export type ExitStatus = number | string | null;

/** Children started here that have not exited yet. */
const live = new Set<ChildProcess>();

export interface SpawnOptions {
  /** Node flags, before the script. */
  nodeArgs?: readonly string[];
  /** On top of process.env. */
  env?: Record<string, string>;
  /** Default: stdout piped (for readiness lines), stderr inherited. */
  stdio?: StdioOptions;
}

/** `node [nodeArgs] args…`, registered until it exits. */
function spawnNode(args: readonly string[], o: SpawnOptions = {}): ChildProcess {
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), ...args], {
    env: o.env && { ...process.env, ...o.env },
    stdio: o.stdio ?? ['ignore', 'pipe', 'inherit'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** `node [nodeArgs] bin/kubestorage.js args…`; logs at warn unless the caller's env says otherwise. */
export function spawnKubestorage(args: readonly string[], o: SpawnOptions = {}): ChildProcess {
  return spawnNode([BIN, ...args], {
    ...o,
    env: { ...o.env, KUBESTORAGE_LOG_LEVEL: process.env.KUBESTORAGE_LOG_LEVEL ?? 'warn' },
  });
}

/** Waits (≤ 30 s) for a line matching `re` on the child's stdout. */
export function waitFor(child: ChildProcess, re: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what}: nothing in 30 s: ${out}`)), 30_000);
    const onData = (c: Buffer) => {
      out += c.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited ${code}: ${out}`)));
  });
}

/** SIGTERM, then SIGKILL after `graceMs`, so a stuck child cannot hang the bench. */
export function stopProcess(child: ChildProcess, graceMs = 15_000): Promise<ExitStatus> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode ?? child.signalCode);
      return;
    }
    const timer = setTimeout(() => {
      if (child.pid) sigkill(child.pid);
    }, graceMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
    if (child.pid) process.kill(child.pid, 'SIGTERM');
  });
}

/** Stops every live child. */
export async function stopAll(graceMs: number): Promise<void> {
  await Promise.all([...live].map((c) => stopProcess(c, graceMs)));
}

/**
 * On SIGINT/SIGTERM runs `cleanup` (once) and exits 130; on any exit, SIGKILLs the children
 * still alive, the last resort after an uncaught error.
 */
export function stopChildrenOnSignal(cleanup: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    progress(`${sig}: stopping ${live.size} child process(es)`);
    cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  process.on('exit', () => {
    for (const c of live) if (c.pid && c.exitCode === null) sigkill(c.pid);
  });
}

/** kill -9 by PID; false when there was no such process (or no permission). */
export function sigkill(pid: number): boolean {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/** What the benches read of /proc/<pid>/stat (Linux). */
export interface ProcStat {
  ppid: number;
  /** user+system CPU seconds so far, all its threads (exited ones too). */
  cpuSeconds: number;
  /** When it started, clock ticks since boot: tells a reused PID apart. */
  startTicks: number;
}

/** Clock ticks per second of /proc times (USER_HZ, 100 on Linux's usual builds). */
export const CLK_TCK = 100;

/** The process's /proc/<pid>/stat, or null (no such process, or not Linux). */
export function procStat(pid: number): ProcStat | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3, ppid 4, utime 14, stime 15, starttime 22.
  return {
    ppid: Number(f[1]),
    cpuSeconds: (Number(f[11]) + Number(f[12])) / CLK_TCK,
    startTicks: Number(f[19]),
  };
}

/** user+system CPU seconds of a process so far (Linux /proc), or null elsewhere. */
export function cpuSecondsOf(pid: number | undefined): number | null {
  if (!pid) return null;
  return procStat(pid)?.cpuSeconds ?? null;
}

// Loopback ports: the same helpers the tests use.
export { freePortBase, freePorts } from '../../common/ports.ts';

/** A node script answering every request with 200 at once (GET: argv[1] bytes of body). */
const NULL_SERVER = `
const http = require('node:http');
const body = Buffer.alloc(Number(process.argv[1]), 97);
const s = http.createServer({ keepAliveTimeout: 65000 }, (req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.method === 'GET') res.writeHead(200, { 'content-length': body.length }).end(body);
    else res.writeHead(200, { 'content-length': 0 }).end();
  });
});
s.listen(0, '127.0.0.1', () => console.log('null server on ' + s.address().port));
process.on('SIGTERM', () => process.exit(0));
`;

export interface Running {
  endpoint: string;
  stop(): Promise<ExitStatus>;
}

/** Starts `child` and waits for `re`; a child that never gets ready is stopped, not left behind. */
async function ready(
  child: ChildProcess,
  re: RegExp,
  what: string,
  stop: () => Promise<unknown>,
): Promise<RegExpExecArray> {
  try {
    return await waitFor(child, re, what);
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The null server: the load generator's own ceiling, with no server work behind it. */
export async function startNullServer(bodySize: number): Promise<Running> {
  const ns = spawnNode(['-e', NULL_SERVER, String(bodySize)]);
  const stop = () => stopProcess(ns);
  const m = await ready(ns, /null server on (\d+)/, 'null server', stop);
  return { endpoint: `http://127.0.0.1:${m[1]}`, stop };
}

export interface S3Server extends Running {
  dataDir: string;
  child: ChildProcess;
}

/**
 * `kubestorage server [args…] --data DIR --listen 127.0.0.1:0`, ready once it prints its
 * S3 endpoint. Without `dir` the data goes to a fresh temp dir, removed on stop.
 */
export async function startS3Server(o: {
  accessKey: string;
  secretKey: string;
  args?: readonly string[];
  dir?: string;
  tmpPrefix?: string;
  nodeArgs?: readonly string[];
  env?: Record<string, string>;
  what?: string;
}): Promise<S3Server> {
  const dataDir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), o.tmpPrefix ?? 'ks-bench-'));
  fs.mkdirSync(dataDir, { recursive: true });
  const child = spawnKubestorage(
    ['server', ...(o.args ?? []), '--data', dataDir, '--listen', '127.0.0.1:0'],
    {
      nodeArgs: o.nodeArgs,
      env: {
        ...o.env,
        KUBESTORAGE_ROOT_ACCESS_KEY: o.accessKey,
        KUBESTORAGE_ROOT_SECRET_KEY: o.secretKey,
      },
    },
  );
  const stop = async () => {
    const code = await stopProcess(child);
    if (!o.dir) fs.rmSync(dataDir, { recursive: true, force: true });
    return code;
  };
  const m = await ready(child, /S3 endpoint: (http:\/\/\S+)/, o.what ?? 'kubestorage server', stop);
  return { endpoint: m[1]!, dataDir, child, stop };
}

/** `kubestorage server --workers N` on loopback: the embedded target of the benches. */
export function startEmbedded(o: {
  accessKey: string;
  secretKey: string;
  workers?: string;
  dir?: string;
  tmpPrefix?: string;
}): Promise<S3Server> {
  return startS3Server({ ...o, args: ['--workers', o.workers ?? '1'] });
}
