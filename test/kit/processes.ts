// Child processes for tests: every one is started through here, bounded in time, ended
// by its PID (SIGTERM, then SIGKILL), and killed when the test file ends if a failed test
// left it running.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll } from 'vitest';
import { sleep, until } from './until.ts';

/** bin/kubestorage.js, for spawning the CLI with process.execPath. */
export const KUBESTORAGE_BIN = path.resolve(import.meta.dirname, '../../bin/kubestorage.js');

const live = new Set<ChildProcess>();

/** Sends `signal` to `pid`; false when there is no such process any more. */
export function killPid(pid: number, signal: NodeJS.Signals | 0 = 'SIGKILL'): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Whether a process with this PID exists (signal 0 only checks). */
export function alive(pid: number): boolean {
  return killPid(pid, 0);
}

const running = (child: ChildProcess) =>
  child.pid !== undefined && child.exitCode === null && child.signalCode === null;

/**
 * SIGKILL by PID. A detached child leads its own process group: the group goes with it
 * (whatever it started itself too); any other child has no group of its own PID.
 */
export function killChild(child: ChildProcess): void {
  if (!running(child)) return;
  const pid = child.pid as number;
  if (!killPid(-pid)) killPid(pid);
}

/** Resolves with the exit code (null after a signal) once the child has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

/**
 * SIGTERM by PID, SIGKILL (see killChild) if it has not gone within `graceMs`; resolves
 * once it is gone.
 */
export async function stopChild(child: ChildProcess, graceMs = 3_000): Promise<void> {
  if (!running(child) || !killPid(child.pid as number, 'SIGTERM')) return;
  const gone = await Promise.race([
    exited(child).then(() => true),
    sleep(graceMs).then(() => false),
  ]);
  if (gone) return;
  killChild(child);
  await exited(child);
}

/** Waits for a process that is not our child (e.g. started detached by `cluster up`) to go. */
export async function pidGone(pid: number, what: string, ms = 10_000): Promise<void> {
  await until(what, () => !alive(pid), ms, { everyMs: 50 });
}

/** Kills every child started through this kit that is still running. */
export function killChildren(): void {
  for (const c of live) killChild(c);
  live.clear();
}

afterAll(() => killChildren());

export interface Proc {
  child: ChildProcess;
  /** What it wrote to stdout / stderr so far (empty when that stream is not piped). */
  out(): string;
  err(): string;
  /** Both, in arrival order. */
  output(): string;
  /**
   * The first match of `re` in `stream` (default stdout); rejects if the process exits
   * first or nothing matches within `ms`.
   */
  waitFor(re: RegExp, ms?: number, stream?: 'out' | 'all'): Promise<RegExpExecArray>;
}

/** Starts a long-running child with piped output; killChildren() ends it if the test does not. */
export function startProcess(cmd: string, args: string[], opts: SpawnOptions = {}): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let out = '';
  let err = '';
  let all = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
    all += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    err += b.toString();
    all += b.toString();
  });
  return {
    child,
    out: () => out,
    err: () => err,
    output: () => all,
    waitFor(re, ms = 20_000, stream = 'out') {
      const text = () => (stream === 'out' ? out : all);
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(text());
          if (m) finish(() => resolve(m));
        };
        const onExit = (code: number | null) => {
          finish(() => reject(new Error(`exited ${code} before ${re}: ${all}`)));
        };
        const timer = setTimeout(() => {
          finish(() => reject(new Error(`no ${re} in ${ms} ms: ${all}`)));
        }, ms);
        const finish = (then: () => void) => {
          clearTimeout(timer);
          child.stdout?.off('data', check);
          child.stderr?.off('data', check);
          child.off('exit', onExit);
          then();
        };
        child.stdout?.on('data', check);
        child.stderr?.on('data', check);
        child.once('exit', onExit);
        check();
        if (!running(child)) onExit(child.exitCode);
      });
    },
  };
}

/** `kubestorage ARGS` as a child process (see startProcess). */
export function startKubestorage(args: string[], opts: SpawnOptions = {}): Proc {
  return startProcess(process.execPath, [KUBESTORAGE_BIN, ...args], opts);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end with a hard timeout: on timeout the process (and its group)
 * is killed by PID. Rejects unless the exit code is 0 (or `allowFail`).
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
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
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
