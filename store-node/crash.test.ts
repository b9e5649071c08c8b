// Real-process crash test: "nothing acknowledged is lost" under kill -9.
//
// A child process (crash-child.ts) drives a Store with many concurrent writes, deletes
// and, in compaction trials, back-to-back online compactions, reporting every
// acknowledgement on stdout. At a random moment it gets SIGKILL (or kills itself at a
// named compaction step). This process then reopens the same directory and checks that
// every reported write reads back byte-exact and every reported delete is gone. The data
// directory and the expected model are kept across all trials, so volumes recovered by
// one trial are written to, compacted and recovered again by later ones.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../common/payload.ts';
import { payload } from '../test/kit/temp-dirs.ts';
import { StoreError } from './errors.ts';
import { Store } from './store.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const STORE_OPTS = { compactCheckMs: 0, scrubIntervalMs: 0, maxSize: 4 * 1024 * 1024 };
/** Compaction trials all work on this volume; write trials append to volumes 1, 2, … */
const COMPACT_VID = 1000;
const WRITE_TRIALS = 50;
/**
 * The write trials stop starting new ones past this budget (after at least
 * MIN_WRITE_TRIALS): on a slow day of the VM 50 trials took the whole 150 s test timeout,
 * and a timed-out trial left the shared directory to the next tests mid-way.
 */
const WRITE_BUDGET_MS = 100_000;
const MIN_WRITE_TRIALS = 20;
const COMPACT_TRIALS = 12;
const STEPS = [
  'compact:started',
  'compact:copied',
  'compact:tail-copied',
  'compact:synced',
  'compact:renamed-dat',
  'compact:renamed-idx',
] as const;
/** Steps before the .cpd → .dat rename, the commit point. */
const PRE_COMMIT = new Set<string>(STEPS.slice(0, 4));
const TRIAL_TIMEOUT_MS = 20_000;
const SAMPLE_PER_TRIAL = 200;

const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000_007);

const rand = mulberry32(SEED);
const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));

// ---- child processes -------------------------------------------------------------

const running = new Set<ChildProcess>();

interface ChildRun {
  /** Complete lines only: an unterminated last line was never fully reported. */
  lines: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  killedByUs: boolean;
  timedOut: boolean;
  stderr: string;
}

/**
 * Runs the child; `killAfterMs` after the first ack (or READY) sends SIGKILL. With
 * `killAfterMs` null the child is expected to kill itself. Resolves once it has exited
 * and its pipes are drained.
 */
function runChild(
  args: string[],
  plan: { trigger: 'ack' | 'ready' | 'opening'; killAfterMs: number | null },
): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    const run: ChildRun = {
      lines: [],
      code: null,
      signal: null,
      killedByUs: false,
      timedOut: false,
      stderr: '',
    };
    let partial = '';
    let killTimer: NodeJS.Timeout | undefined;
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const guard = setTimeout(() => {
      run.timedOut = true;
      kill();
    }, TRIAL_TIMEOUT_MS);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (run.stderr.length < 20_000) run.stderr += s;
    });
    child.stdout.on('data', (s: string) => {
      const parts = (partial + s).split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        run.lines.push(line);
        const armed =
          plan.trigger === 'ready'
            ? line === 'READY'
            : plan.trigger === 'opening'
              ? line === 'OPENING'
              : line[0] === 'W' || line[0] === 'D';
        if (armed && killTimer === undefined && plan.killAfterMs !== null) {
          killTimer = setTimeout(() => {
            run.killedByUs = true;
            kill();
          }, plan.killAfterMs);
        }
      }
    });
    child.on('error', (e) => {
      clearTimeout(guard);
      clearTimeout(killTimer);
      kill();
      running.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      clearTimeout(killTimer);
      running.delete(child);
      run.code = code;
      run.signal = signal;
      resolve(run);
    });
  });
}

// ---- the expected state ----------------------------------------------------------

type State = 'live' | 'deleting' | 'deleted';

interface Entry {
  vid: number;
  id: bigint;
  cookie: number;
  len: number;
  ascii: boolean;
  state: State;
}

interface TrialLog {
  touched: Set<Entry>;
  vids: Set<number>;
  writes: number;
  deletes: number;
  errors: string[];
  compactions: number[];
  generationBefore: number | null;
  ready: boolean;
}

class Model {
  readonly byKey = new Map<string, Entry>();
  readonly byVid = new Map<number, Entry[]>();
  readonly all: Entry[] = [];

  private add(e: Entry): void {
    this.byKey.set(`${e.vid}/${e.id}`, e);
    this.all.push(e);
    let list = this.byVid.get(e.vid);
    if (!list) this.byVid.set(e.vid, (list = []));
    list.push(e);
  }

  /** Applies one trial's reported lines in order. */
  apply(lines: string[]): TrialLog {
    const log: TrialLog = {
      touched: new Set(),
      vids: new Set(),
      writes: 0,
      deletes: 0,
      errors: [],
      compactions: [],
      generationBefore: null,
      ready: false,
    };
    for (const line of lines) {
      const f = line.split(' ');
      const vid = Number(f[1]);
      switch (f[0]) {
        case 'W': {
          const id = BigInt(f[2]!);
          if (this.byKey.has(`${vid}/${id}`)) throw new Error(`id reported twice: ${line}`);
          const e: Entry = {
            vid,
            id,
            cookie: Number(f[3]),
            len: Number(f[4]),
            ascii: f[5] === '1',
            state: 'live',
          };
          this.add(e);
          log.touched.add(e);
          log.vids.add(vid);
          log.writes++;
          break;
        }
        case 'd': {
          // Issued, not acknowledged: the needle may or may not survive.
          const e = this.byKey.get(`${vid}/${BigInt(f[2]!)}`);
          if (e && e.state === 'live') e.state = 'deleting';
          if (e) log.touched.add(e);
          log.vids.add(vid);
          break;
        }
        case 'D': {
          const id = BigInt(f[2]!);
          let e = this.byKey.get(`${vid}/${id}`);
          if (!e) {
            // A needle whose write ack was never reported (compaction trials delete
            // whatever they find in their volume): it must stay deleted all the same.
            e = { vid, id, cookie: 0, len: 0, ascii: false, state: 'deleted' };
            this.add(e);
          }
          e.state = 'deleted';
          log.touched.add(e);
          log.vids.add(vid);
          log.deletes++;
          break;
        }
        case 'C':
          log.compactions.push(Number(f[2]));
          break;
        case 'G':
          log.generationBefore = Number(f[2]);
          break;
        case 'READY':
          log.ready = true;
          break;
        case 'OPENING':
          break;
        case 'E':
          log.errors.push(line);
          break;
        default:
          throw new Error(`unexpected line from child: ${JSON.stringify(line)}`);
      }
    }
    return log;
  }

  /** What to check after a trial: everything it touched, its volumes, and a sample. */
  checkSet(log: TrialLog): Set<Entry> {
    const set = new Set(log.touched);
    for (const vid of log.vids) for (const e of this.byVid.get(vid) ?? []) set.add(e);
    for (let i = 0; i < SAMPLE_PER_TRIAL && this.all.length > 0; i++) {
      set.add(this.all[Math.floor(rand() * this.all.length)]!);
    }
    return set;
  }
}

// ---- verification ----------------------------------------------------------------

interface Tally {
  trials: number;
  ackedWrites: number;
  ackedDeletes: number;
  liveChecks: number;
  deleteChecks: number;
  midCompactionKills: number;
}

/** Checks entries against the reopened store; returns a description of each failure. */
async function verify(store: Store, entries: Iterable<Entry>, tally: Tally): Promise<string[]> {
  const problems: string[] = [];
  const check = async (e: Entry) => {
    let data: Buffer | null = null;
    let err: unknown = null;
    try {
      data = (await store.read(e.vid, e.id, e.cookie)).data;
    } catch (x) {
      err = x;
    }
    const gone = err instanceof StoreError && err.code === 'NoSuchNeedle';
    const intact = data?.equals(payload(e.id, e.len, e.ascii)) === true;
    const what = `${e.vid}/${e.id} (${e.state}, ${e.len} B${e.ascii ? ' ascii' : ''})`;
    const got =
      data !== null
        ? `${data.length} bytes${intact ? '' : ' that differ'}`
        : err instanceof StoreError
          ? err.code
          : String(err);
    if (e.state === 'live') {
      if (!intact) problems.push(`LOST acked write ${what}: got ${got}`);
      tally.liveChecks++;
    } else if (e.state === 'deleted') {
      if (!gone) problems.push(`RESURRECTED acked delete ${what}: got ${got}`);
      tally.deleteChecks++;
    } else if (intact) {
      e.state = 'live'; // the tombstone never made it; from now on it must stay
    } else if (gone) {
      e.state = 'deleted';
    } else {
      problems.push(`BROKEN in-flight delete ${what}: got ${got}`);
    }
  };
  const list = [...entries];
  for (let i = 0; i < list.length; i += 64) await Promise.all(list.slice(i, i + 64).map(check));
  return problems;
}

/** Names of leftover compaction or creation temp files in the directory. */
function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => /\.(cpd|cpx|dat\.tmp)$/.test(n));
}

describe('crash safety under kill -9 (real processes)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ks-crash-'));
  const model = new Model();
  const tally: Tally = {
    trials: 0,
    ackedWrites: 0,
    ackedDeletes: 0,
    liveChecks: 0,
    deleteChecks: 0,
    midCompactionKills: 0,
  };
  let nextSeed = 1;
  // Each test bumps `started` first and `passed` last: any difference means a failure,
  // and the data directory is then kept for inspection.
  let started = 0;
  let recoveryKills = 0;
  let writeTrials = 0;
  let passed = 0;

  afterAll(() => {
    for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    const failed = passed < started;
    console.log(
      `crash test (seed ${SEED}): ${tally.trials} kill -9 trials ` +
        `(${writeTrials} during writes, ${COMPACT_TRIALS} during compaction ` +
        `[${tally.midCompactionKills} left .cpd/.cpx behind], ${STEPS.length} at named steps, ${recoveryKills} during recovery); ` +
        `${tally.ackedWrites} acked writes, ${tally.ackedDeletes} acked deletes; ` +
        `${tally.liveChecks} byte-exact reads and ${tally.deleteChecks} delete checks; ` +
        (failed ? `FAILED, data left in ${dir}` : '0 lost, 0 unloadable'),
    );
    if (!failed) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Reopens the store in this process, checks the trial, and closes it again. */
  async function recoverAndCheck(
    label: string,
    log: TrialLog,
    extra?: (s: Store) => Promise<void>,
  ): Promise<void> {
    let store: Store;
    try {
      store = await Store.open(dir, STORE_OPTS);
    } catch (e) {
      throw new Error(`${label}: UNLOADABLE store after kill: ${(e as Error).stack}`);
    }
    try {
      expect(leftovers(dir), `${label}: temp files survive recovery`).toEqual([]);
      const ids = store.volumeIds();
      for (const vid of model.byVid.keys()) {
        expect(ids, `${label}: volume ${vid} missing`).toContain(vid);
      }
      const problems = await verify(store, model.checkSet(log), tally);
      for (const vid of log.vids) {
        const [r] = await store.scrub(vid);
        if (r!.corrupt.length > 0) problems.push(`volume ${vid}: corrupt needles ${r!.corrupt}`);
      }
      expect(problems, `${label} (seed ${SEED})`).toEqual([]);
      await extra?.(store);
    } finally {
      await store.close();
    }
  }

  function expectKilled(label: string, run: ChildRun, byUs: boolean): void {
    const why = `${label}: child code=${run.code} signal=${run.signal} timedOut=${run.timedOut}\n${run.stderr}`;
    expect(run.timedOut, why).toBe(false);
    expect(run.signal, why).toBe('SIGKILL');
    expect(run.killedByUs, why).toBe(byUs);
  }

  function expectNoErrors(label: string, log: TrialLog, allowed: string[]): void {
    const bad = log.errors.filter((l) => !allowed.includes(l.split(' ')[1]!));
    expect(bad, label).toEqual([]);
  }

  function account(log: TrialLog): void {
    tally.trials++;
    tally.ackedWrites += log.writes;
    tally.ackedDeletes += log.deletes;
  }

  it(`loses no acknowledged write or delete when killed during writes (${MIN_WRITE_TRIALS}–${WRITE_TRIALS} trials)`, async () => {
    started++;
    let writes = 0;
    const t0 = Date.now();
    for (let t = 0; t < WRITE_TRIALS; t++) {
      if (t >= MIN_WRITE_TRIALS && Date.now() - t0 > WRITE_BUDGET_MS) break;
      writeTrials++;
      const seed = nextSeed++;
      const label = `write trial ${t} (child seed ${seed})`;
      if (t % 5 === 4) {
        // Recovery itself (truncating torn tails, re-indexing) must survive a kill -9:
        // kill a child while it is still opening the store left by the previous trial.
        const early = await runChild([dir, 'write', String(nextSeed++)], {
          trigger: 'opening',
          killAfterMs: between(0, 40),
        });
        expectKilled(`${label} (during recovery)`, early, true);
        recoveryKills++;
        // If the kill landed after the open finished, its acks count like any trial's.
        const earlyLog = model.apply(early.lines);
        expectNoErrors(label, earlyLog, ['VolumeFull']);
        account(earlyLog);
        await recoverAndCheck(`${label} (after a kill during recovery)`, earlyLog);
      }
      const run = await runChild([dir, 'write', String(seed)], {
        trigger: 'ack',
        killAfterMs: between(50, 400),
      });
      expectKilled(label, run, true);
      const log = model.apply(run.lines);
      expectNoErrors(label, log, ['VolumeFull']);
      account(log);
      writes += log.writes;
      await recoverAndCheck(label, log);
    }
    // Not vacuous: the kills landed while plenty of acknowledged work had happened.
    expect(writes / writeTrials).toBeGreaterThan(50);
    expect(model.byVid.size).toBeGreaterThan(3); // rollover happened
    await recoverAndCheck('after write trials, full check', fullLog(model));
    passed++;
  }, 150_000);

  it(`loses nothing when killed at random moments of online compaction (${COMPACT_TRIALS} trials)`, async () => {
    started++;
    let compactions = 0;
    for (let t = 0; t < COMPACT_TRIALS; t++) {
      const seed = nextSeed++;
      const label = `compaction trial ${t} (child seed ${seed})`;
      const run = await runChild([dir, 'compact', String(seed), String(COMPACT_VID)], {
        trigger: 'ready',
        killAfterMs: between(50, 400),
      });
      expectKilled(label, run, true);
      const log = model.apply(run.lines);
      expect(log.ready, `${label}: never got READY\n${run.stderr}`).toBe(true);
      expectNoErrors(label, log, ['VolumeFull']);
      account(log);
      compactions += log.compactions.length;
      if (fs.readdirSync(dir).some((n) => n.startsWith(`${COMPACT_VID}.cp`))) {
        tally.midCompactionKills++;
      }
      log.vids.add(COMPACT_VID);
      await recoverAndCheck(label, log, async (s) => {
        const gen = s.volume(COMPACT_VID).stats().generation;
        // A compaction that returned has committed: recovery must not roll it back.
        expect(gen).toBeGreaterThanOrEqual(Math.max(log.generationBefore!, ...log.compactions));
      });
    }
    expect(compactions).toBeGreaterThan(0);
    expect(tally.midCompactionKills).toBeGreaterThan(0);
    await recoverAndCheck('after compaction trials, full check', fullLog(model), async (s) => {
      expect(s.volume(COMPACT_VID).stats().generation).toBeGreaterThan(0);
    });
    passed++;
  }, 90_000);

  it('recovers from a kill at each named compaction step, committing exactly past the rename', async () => {
    started++;
    for (const step of STEPS) {
      const seed = nextSeed++;
      const label = `crash at ${step} (child seed ${seed})`;
      const run = await runChild([dir, 'compact', String(seed), String(COMPACT_VID), step], {
        trigger: 'ready',
        killAfterMs: null,
      });
      expectKilled(label, run, false);
      const log = model.apply(run.lines);
      expect(log.ready, `${label}: never got READY\n${run.stderr}`).toBe(true);
      expect(log.compactions, `${label}: the first compaction must die`).toEqual([]);
      expectNoErrors(label, log, ['VolumeFull']);
      account(log);
      log.vids.add(COMPACT_VID);
      await recoverAndCheck(label, log, async (s) => {
        const before = log.generationBefore!;
        const want = PRE_COMMIT.has(step) ? before : before + 1;
        expect(s.volume(COMPACT_VID).stats().generation, label).toBe(want);
      });
    }
    await recoverAndCheck('final full check', fullLog(model));
    passed++;
  }, 60_000);
});

/** A log that makes recoverAndCheck look at every entry and every volume of the model. */
function fullLog(model: Model): TrialLog {
  return {
    touched: new Set(model.all),
    vids: new Set(model.byVid.keys()),
    writes: 0,
    deletes: 0,
    errors: [],
    compactions: [],
    generationBefore: null,
    ready: false,
  };
}
