// Shared helpers for the real-client scenario tests: an embedded gateway in a temp dir,
// bounded child processes (killed by PID on timeout), an isolated HOME per client, and
// file-tree generation/comparison.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { down, up } from '../cli/cluster.ts';
import { startTestServer, type TestServer } from '../test/kit/test-server.ts';

/** What a client scenario needs of the server under test. */
export type ScenarioServer = Pick<TestServer, 'endpoint' | 'accessKey' | 'secretKey'>;

export interface Scenario {
  srv: ScenarioServer;
  /** Scratch space for this client (HOME, config files, trees); removed by close(). */
  dir: string;
  /** A minimal environment for child processes: PATH, a private HOME, no AWS_* leakage. */
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

/** Fails with the exact install command when a client binary is not there. */
export function requireBinary(bin: string, debianPackage: string): void {
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(
      `missing ${bin}: apt-get install ${debianPackage} (.ci/run installs it automatically)`,
    );
  }
}

export async function startScenario(name: string): Promise<Scenario> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ks-conf-${name}-`));
  const home = path.join(dir, 'home');
  fs.mkdirSync(home);
  const srv =
    process.env.KUBESTORAGE_TEST_TARGET === 'cluster'
      ? await startLocalCluster(path.join(dir, 'cluster'))
      : await startTestServer(path.join(dir, 'server'), { chunkSize: 1024 * 1024 });
  const env: NodeJS.ProcessEnv = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TMPDIR: os.tmpdir(),
    // Loopback only: no proxy may capture the requests.
    NO_PROXY: '*',
    no_proxy: '*',
  };
  return {
    srv,
    dir,
    env,
    async close() {
      await srv.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The vitest project `cluster`: a real local cluster (`kubestorage cluster up`: 3 directory
 * replicas, 4 stores in 2 zones, 2 gateways as separate processes); the scenario talks to
 * its first gateway.
 */
/** Clusters still starting: killAll() stops them (a timed-out beforeAll never gets one). */
const starting = new Set<{ pids: Set<number>; abandoned: boolean }>();

async function startLocalCluster(
  dir: string,
): Promise<ScenarioServer & { close(): Promise<void> }> {
  const base = await freePortBase(30);
  const s = { pids: new Set<number>(), abandoned: false };
  starting.add(s);
  try {
    const c = await up(['--data', dir, '--port-base', String(base)], (pid) => s.pids.add(pid));
    if (s.abandoned) {
      await down(['--data', dir]);
      throw new Error('cluster start abandoned: the test gave up waiting');
    }
    return {
      endpoint: c.gateways[0] as string,
      accessKey: c.accessKey,
      secretKey: c.secretKey,
      close: async () => {
        await down(['--data', dir]);
      },
    };
  } finally {
    starting.delete(s);
  }
}

/** A base port P with P+1 .. P+span all free a moment ago (cluster up uses fixed offsets). */
async function freePortBase(span: number): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (let p = base + 1; p <= base + span && ok; p++) ok = await free(p);
    if (ok) return base;
  }
  throw new Error('no free block of loopback ports');
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const live = new Set<ChildProcess>();

function killChild(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // The child leads its own process group (detached): kill the group by its PID.
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {}
  }
}

/** Kills every child still running (for afterAll after a failed test). */
export function killAll(): void {
  for (const c of live) killChild(c);
  live.clear();
  for (const s of starting) {
    s.abandoned = true;
    for (const pid of s.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}

/**
 * Runs a command with a hard timeout; the process (and its group) is killed by PID on
 * timeout. Rejects unless the exit code is 0 (or `allowFail`).
 */
export function run(
  cmd: string,
  args: string[],
  opts: {
    env: NodeJS.ProcessEnv;
    cwd?: string;
    timeoutMs?: number;
    allowFail?: boolean;
    input?: string;
  },
): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env,
      cwd: opts.cwd,
      detached: true,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    live.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killChild(child);
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      live.delete(child);
      const r = {
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      const line = `${cmd} ${args.join(' ')}`;
      if (timedOut) {
        reject(new Error(`timed out after ${timeoutMs} ms: ${line}\n${r.stdout}\n${r.stderr}`));
      } else if (code !== 0 && !opts.allowFail) {
        reject(new Error(`exit ${code}: ${line}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`));
      } else {
        resolve(r);
      }
    });
  });
}

/** Deterministic pseudo-random bytes (fast, seeded). */
export function randomBytes(seed: string, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let counter = 0;
  for (let off = 0; off < length; off += 32) {
    const h = crypto.createHash('sha256').update(`${seed}:${counter++}`).digest();
    h.copy(out, off, 0, Math.min(32, length - off));
  }
  return out;
}

/** Writes `count` small random files (0–8 KiB) in nested directories; returns their paths. */
export function makeTree(root: string, count: number, seed = 'tree'): string[] {
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const depth = i % 4;
    const parts: string[] = [];
    for (let d = 0; d < depth; d++) parts.push(`d${d}-${(i >> (d + 2)) % 3}`);
    const rel = path.join(...parts, `file-${String(i).padStart(4, '0')}.bin`);
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    const size = i % 50 === 0 ? 0 : (i * 7919) % 8192;
    fs.writeFileSync(abs, randomBytes(`${seed}:${i}`, size));
    files.push(rel.split(path.sep).join('/'));
  }
  return files.sort();
}

/** Relative path → sha256 of every regular file under root. */
export function hashTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, e.name);
      if (e.isDirectory()) walk(abs);
      else if (e.isFile()) {
        const rel = path.relative(root, abs).split(path.sep).join('/');
        out.set(rel, crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex'));
      }
    }
  };
  walk(root);
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Prints how long a client's scenarios took (vitest shows console output per file). */
export function timer(client: string): () => void {
  const t0 = performance.now();
  return () => {
    console.log(`[conformance] ${client}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  };
}

/**
 * Per-test bound. The scenarios take seconds on an idle machine, but the aws-cli's Python
 * start-up alone grows to seconds per command when the 2 cores are shared with the rest of
 * the suite; every child process is bounded separately by run()'s timeout.
 */
export const SCENARIO_TIMEOUT_MS = 240_000;

export const AWS = '/usr/bin/aws';

/**
 * Environment for the Debian aws-cli v2: config and credentials in temp files (path-style
 * addressing, us-east-1), nothing read from the real HOME, no retries — a server error
 * must fail the scenario, not be papered over.
 */
export function awsEnv(sc: Scenario): NodeJS.ProcessEnv {
  const config = path.join(sc.dir, 'aws-config');
  fs.writeFileSync(
    config,
    '[default]\nregion = us-east-1\noutput = json\ns3 =\n  addressing_style = path\n',
  );
  const creds = path.join(sc.dir, 'aws-credentials');
  fs.writeFileSync(
    creds,
    `[default]\naws_access_key_id = ${sc.srv.accessKey}\naws_secret_access_key = ${sc.srv.secretKey}\n`,
  );
  return {
    ...sc.env,
    AWS_CONFIG_FILE: config,
    AWS_SHARED_CREDENTIALS_FILE: creds,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
    AWS_RETRY_MODE: 'standard',
    AWS_MAX_ATTEMPTS: '1',
  };
}

/** `aws --endpoint-url <server> …args`, bounded. */
export function aws(
  sc: Scenario,
  env: NodeJS.ProcessEnv,
  args: string[],
  timeoutMs = 60_000,
): Promise<RunResult> {
  return run(AWS, ['--endpoint-url', sc.srv.endpoint, ...args], { env, timeoutMs });
}

/** Keys from `aws s3 ls --recursive` output (date, time, size, key), directory markers dropped. */
export function lsKeys(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.replace(/^\S+\s+\S+\s+\d+\s+/, ''))
    .filter((k) => !k.endsWith('/'))
    .sort();
}
