// A local redis-server for the gateways' shared L2 (cache/README.md): started by tests
// (test/kit/redis-server.ts) and by `kubestorage cluster up --redis auto`. Nothing is
// persisted, so a restart is empty, as a real Redis may be after a failure.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const REDIS_SERVER_BIN = '/usr/bin/redis-server';

export interface RedisServerOptions {
  port: number;
  /** Its working directory, made if missing (default: the OS temp dir); nothing is written there. */
  dir?: string;
  /** Its output is appended here (mode 0600); default: kept in memory for error messages. */
  logFile?: string;
  /**
   * Its own process group, not waited for by this process: outlives it (`cluster up`).
   * Default: true when there is a logFile (a server logging to a file is meant to run on
   * its own; a child this process waited for would keep it from exiting), else false.
   */
  detached?: boolean;
  /** Bound on the wait for its first PONG (default 5 s). */
  readyMs?: number;
}

export interface RedisServer {
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** The PID of the current process (a restart changes it). */
  readonly pid: number;
  /** SIGKILL; resolves once it has exited. */
  kill9(): Promise<void>;
  /** Stops it if running, then starts it again on the same port: empty. */
  restart(): Promise<void>;
  /** SIGTERM (SIGKILL after 3 s); resolves once it has exited. */
  stop(): Promise<void>;
}

/** The redis-server binary; throws saying how to install it when there is none. */
export function redisServerBin(): string {
  const dirs = [path.dirname(REDIS_SERVER_BIN), ...(process.env.PATH ?? '').split(':')];
  for (const d of dirs) {
    const p = path.join(d, 'redis-server');
    if (d && fs.existsSync(p)) return p;
  }
  throw new Error(
    `no redis-server at ${REDIS_SERVER_BIN} nor on PATH: apt-get install redis-server`,
  );
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One PING over a fresh connection; true on +PONG. Bounded by `ms`. */
export function pingRedis(port: number, ms = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (b) => {
      got += b.toString('latin1');
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
  });
}

const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

/** Resolves once `child` has exited, or false after `ms`. */
function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (!running(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (!running(child) || child.pid === undefined) return;
  try {
    process.kill(child.pid, sig);
  } catch {
    // Already gone: the exit event is on its way.
  }
}

/** Starts redis-server on 127.0.0.1:`port` and waits until it answers PING. */
export async function startRedisServer(opts: RedisServerOptions): Promise<RedisServer> {
  const bin = redisServerBin();
  const dir = opts.dir ?? os.tmpdir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const readyMs = opts.readyMs ?? 5_000;
  const detached = opts.detached ?? opts.logFile !== undefined;
  const args = [
    ...['--port', String(opts.port), '--bind', '127.0.0.1'],
    ...['--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir],
  ];
  let child: ChildProcess;
  let output = '';

  const launch = async (): Promise<void> => {
    output = '';
    // Piped output would tie a detached server to this process: dropped unless logged.
    let out: number | 'pipe' | 'ignore' = detached ? 'ignore' : 'pipe';
    if (opts.logFile) {
      out = fs.openSync(opts.logFile, 'a', 0o600);
      fs.fchmodSync(out, 0o600);
    }
    const c = spawn(bin, args, {
      cwd: dir,
      stdio: ['ignore', out, out],
      detached,
    });
    if (typeof out === 'number') fs.closeSync(out);
    // Only the last few KB: enough to say why it would not start.
    const keep = (b: Buffer) => (output = (output + b.toString()).slice(-4_096));
    c.stdout?.on('data', keep);
    c.stderr?.on('data', keep);
    let spawnError: Error | undefined;
    c.once('error', (e) => (spawnError = e));
    if (detached) c.unref();
    child = c;
    const end = Date.now() + readyMs;
    for (let poll = 0; poll < Math.ceil(readyMs / 50) + 2; poll++) {
      if (spawnError) throw new Error(`redis-server did not start: ${spawnError.message}`);
      if (!running(c)) {
        const why = opts.logFile ? `see ${opts.logFile}` : output.trim() || 'no output';
        throw new Error(`redis-server on port ${opts.port} exited ${c.exitCode}: ${why}`);
      }
      if (await pingRedis(opts.port, 200)) return;
      if (Date.now() > end) break;
      await sleep(50);
    }
    signal(c, 'SIGKILL');
    await exited(c, 5_000);
    throw new Error(`redis-server on port ${opts.port} not answering PING after ${readyMs} ms`);
  };

  const kill9 = async (): Promise<void> => {
    signal(child, 'SIGKILL');
    if (!(await exited(child, 5_000)))
      throw new Error(`redis-server ${child.pid} survived SIGKILL`);
  };

  const stop = async (): Promise<void> => {
    signal(child, 'SIGTERM');
    if (await exited(child, 3_000)) return;
    await kill9();
  };

  await launch();
  return {
    url: `redis://127.0.0.1:${opts.port}`,
    port: opts.port,
    get pid() {
      return child.pid ?? 0;
    },
    kill9,
    stop,
    async restart() {
      await stop();
      await launch();
    },
  };
}
