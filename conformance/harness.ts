// Shared helpers for the real-client scenario tests: an embedded gateway (or a local
// cluster) in a temp dir, an isolated HOME per client, the file's set-up and teardown, and
// file-tree generation/comparison. Child processes and client configs: test/kit.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { down, up } from '../cli/cluster.ts';
import { freePortBase } from '../common/ports.ts';
import { killChildren, killPid, type RunResult } from '../test/kit/processes.ts';
import { AWS, aws, awsEnv } from '../test/kit/s3-clients.ts';
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
 * The file's set-up: checks the client binaries (`[path, debian package]`), starts the
 * scenario and hands it to `onStart`; after all tests kills every child still running,
 * closes the scenario and prints how long the file took (as `label`).
 */
export function useScenario(
  name: string,
  opts: { label: string; binaries: Array<[string, string]> },
  onStart: (sc: Scenario) => void,
): void {
  let sc: Scenario | undefined;
  let done: (() => void) | undefined;
  beforeAll(async () => {
    for (const [bin, pkg] of opts.binaries) requireBinary(bin, pkg);
    done = timer(opts.label);
    sc = await startScenario(name);
    onStart(sc);
  });
  afterAll(async () => {
    killAll();
    await sc?.close();
    done?.();
  });
}

/**
 * useScenario for an aws-cli file: hands the scenario and the client's environment to
 * `onStart`, and returns `aws(args, timeoutMs)` against the scenario's server.
 */
export function useAwsScenario(
  name: string,
  label: string,
  onStart: (sc: Scenario, env: NodeJS.ProcessEnv) => void,
): (args: string[], timeoutMs?: number) => Promise<RunResult> {
  let sc: Scenario;
  let env: NodeJS.ProcessEnv;
  useScenario(name, { label, binaries: [[AWS, 'awscli']] }, (s) => {
    sc = s;
    env = awsEnv(s);
    onStart(sc, env);
  });
  return (args, timeoutMs = 60_000) => aws(sc, env, args, timeoutMs);
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
    const c = await up(['--data', dir, '--port-base', String(base)], (pid) =>
      s.pids.add(pid),
    ).catch((e: unknown) => {
      // up() has stopped what it started; its logs say why (a port taken, a crash).
      const logs = path.join(dir, 'logs');
      let tail = '';
      for (const f of fs.existsSync(logs) ? fs.readdirSync(logs) : []) {
        tail += `--- ${f}\n${fs.readFileSync(path.join(logs, f), 'utf8').slice(-1_500)}\n`;
      }
      throw new Error(`cluster up failed: ${(e as Error).message}\n${tail}`);
    });
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

/** Kills every child still running (for afterAll after a failed test). */
export function killAll(): void {
  killChildren();
  for (const s of starting) {
    s.abandoned = true;
    for (const pid of s.pids) killPid(pid);
  }
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

/** Keys from `aws s3 ls --recursive` output (date, time, size, key), directory markers dropped. */
export function lsKeys(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.replace(/^\S+\s+\S+\s+\d+\s+/, ''))
    .filter((k) => !k.endsWith('/'))
    .sort();
}
