// The single writer of a LevelMetadata database, with group commit.
//
// Every mutation is a job: a read-modify-write function run against a transaction view.
// Jobs run one after another, never interleaved, so each sees the effects of all jobs before
// it (strict serial order). All jobs that queue while a batch is on disk form the next batch:
// their point reads are prefetched with one getMany, each job runs against the committed
// state plus the writes of the jobs before it in the batch, and the writes of the whole
// batch go to LevelDB in one atomic `batch(..., { sync: true })`. No job's promise resolves
// before that write has been synced; if it fails, every job of the batch is rejected. A job
// that throws contributes no writes and is rejected alone.
//
// Raft replicas apply committed log entries with applyBatch instead: a run of commands goes
// through the same queue (so it is ordered with local jobs) as one batch of its own, plus
// extra writes such as the applied index, in one atomic LevelDB batch that is not synced:
// the Raft log is, and a replica replays it from the applied index that survived. What
// must not happen is the log being compacted past an applied index that is not on disk, so
// the host calls LevelMetadata.sync() (a memtable flush) first. A killed process loses
// nothing unsynced (the OS has the writes); a lost machine replays some log. There a
// command's error is its outcome (deterministic, identical on every replica), but a failed
// read or write, or a command this build does not know, is not: it rejects the whole run,
// which then has written nothing.
import { MetadataError } from '../model/api.ts';
import type { Command } from '../model/methods.ts';
import { applyCommand, isKnownCommand, prefetchKeys } from './commands.ts';
import type { DB, Outcome, Tx } from './tx.ts';

export type { DB, Outcome, Tx } from './tx.ts';

interface Unit {
  prefetch: string[];
  run: (tx: Tx) => Promise<unknown>;
}

interface Job extends Unit {
  kind: 'job';
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface Replicated {
  kind: 'replicated';
  cmds: Command[];
  extra: Array<[string, string]>;
  resolve: (v: Outcome[]) => void;
  reject: (e: unknown) => void;
}

/** Written value, or null for a delete. */
type Overlay = Map<string, string | null>;

class JobTx implements Tx {
  readonly own: Overlay = new Map();
  /** Set when a database read failed: not a deterministic outcome of the job. */
  ioError: unknown;

  constructor(
    private readonly db: DB,
    private readonly batch: Overlay,
    private readonly cache: Map<string, string | undefined>,
  ) {}

  async get(key: string): Promise<string | undefined> {
    for (const m of [this.own, this.batch]) {
      const o = m.get(key);
      if (o !== undefined) return o ?? undefined;
    }
    if (this.cache.has(key)) return this.cache.get(key);
    const v = await this.io(this.db.get(key));
    this.cache.set(key, v);
    return v;
  }

  put(key: string, value: string): void {
    this.own.set(key, value);
  }

  del(key: string): void {
    this.own.set(key, null);
  }

  async range(gte: string, lt: string, limit = Infinity): Promise<Array<[string, string]>> {
    if (limit <= 0) return [];
    // This batch's writes in the range shadow the committed entries.
    const shadow: Overlay = new Map();
    for (const m of [this.batch, this.own]) {
      for (const [k, v] of m) if (k >= gte && k < lt) shadow.set(k, v);
    }
    const out: Array<[string, string]> = [];
    const it = this.db.iterator({ gte, lt });
    try {
      while (out.length < limit) {
        const n = Math.min(1000, limit - out.length + shadow.size);
        const chunk = await this.io(it.nextv(n));
        if (chunk.length === 0) break;
        for (const [k, v] of chunk) if (!shadow.has(k)) out.push([k, v]);
      }
    } finally {
      await this.io(it.close());
    }
    for (const [k, v] of shadow) if (v !== null) out.push([k, v]);
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return out.length > limit ? out.slice(0, limit) : out;
  }

  private async io<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      this.ioError ??= e;
      throw e;
    }
  }
}

export interface WriterStats {
  batches: number;
  jobs: number;
  largestBatch: number;
}

export class Writer {
  private queue: Array<Job | Replicated> = [];
  private loop: Promise<void> | null = null;
  private closed = false;
  readonly stats: WriterStats = { batches: 0, jobs: 0, largestBatch: 0 };

  constructor(
    private readonly db: DB,
    private readonly maxBatchJobs = 1024,
  ) {}

  /**
   * Runs `run` in the serial order of all mutations and resolves with its result once its
   * writes are durable. `prefetch` names the keys it will read, fetched for the whole batch.
   */
  submit<T>(prefetch: string[], run: (tx: Tx) => Promise<T>): Promise<T> {
    if (this.closed)
      return Promise.reject(new MetadataError('Unavailable', 'metadata store closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        kind: 'job',
        prefetch,
        run,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      this.loop ??= this.drain();
    });
  }

  /**
   * Applies `cmds` in order, each seeing the ones before it, after every mutation queued
   * before this call and before every one queued after it. Their writes and `extra` (puts,
   * written last) go to disk in one synced batch; resolves with each command's outcome once
   * that batch is durable. A command that throws contributes no writes. Rejects, having
   * written nothing, when a read or the write fails.
   */
  applyBatch(cmds: Command[], extra: Array<[string, string]>): Promise<Outcome[]> {
    if (this.closed)
      return Promise.reject(new MetadataError('Unavailable', 'metadata store closed'));
    return new Promise<Outcome[]>((resolve, reject) => {
      this.queue.push({ kind: 'replicated', cmds, extra, resolve, reject });
      this.loop ??= this.drain();
    });
  }

  /** Lets queued jobs finish, then refuses new ones. */
  async close(): Promise<void> {
    this.closed = true;
    await this.loop;
  }

  private async drain(): Promise<void> {
    // Let the jobs submitted in the same tick join the first batch.
    await null;
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0]!;
        if (head.kind === 'replicated') {
          this.queue.shift();
          await this.runReplicated(head);
          continue;
        }
        let n = 1;
        while (n < this.queue.length && n < this.maxBatchJobs && this.queue[n]!.kind === 'job') n++;
        await this.runBatch(this.queue.splice(0, n) as Job[]);
      }
    } finally {
      this.loop = null;
    }
  }

  private async runBatch(jobs: Job[]): Promise<void> {
    let outcomes: Outcome[];
    try {
      outcomes = await this.execute(jobs, [], false, true);
    } catch (e) {
      // Reads or the write failed: nothing of this batch is known to be durable.
      for (const job of jobs) job.reject(e);
      return;
    }
    for (const [i, o] of outcomes.entries()) {
      if (o.ok) jobs[i]!.resolve(o.value);
      else jobs[i]!.reject(o.error);
    }
  }

  private async runReplicated(r: Replicated): Promise<void> {
    // A command this build does not know came from a newer leader: recording "unknown
    // command" as its outcome would let this replica silently diverge. Refuse the run; the
    // Raft loop stops this replica until it is upgraded.
    const unknown = r.cmds.find((c) => !isKnownCommand(c));
    if (unknown) {
      r.reject(
        new Error(
          `unknown command ${String(unknown.op)} in the log: this replica's build is older ` +
            "than the leader's; upgrade it",
        ),
      );
      return;
    }
    const units = r.cmds.map((cmd) => ({
      // A command whose keys cannot be encoded throws the same error when applied.
      prefetch: tryOr(() => prefetchKeys(cmd), []),
      run: (tx: Tx) => applyCommand(tx, cmd),
    }));
    try {
      r.resolve(await this.execute(units, r.extra, true, false));
    } catch (e) {
      r.reject(e);
    }
  }

  /**
   * Runs `units` in order against one batch view, then writes their writes and `extra` in
   * one atomic batch (synced if `sync`). Throws when the prefetch or the write fails, and with `strictIo` when
   * any unit's read failed (its error would not be the same on another replica).
   */
  private async execute(
    units: Unit[],
    extra: Array<[string, string]>,
    strictIo: boolean,
    sync: boolean,
  ): Promise<Outcome[]> {
    const batch: Overlay = new Map();
    const cache = new Map<string, string | undefined>();
    const outcomes: Outcome[] = [];
    const keys = [...new Set(units.flatMap((u) => u.prefetch))];
    if (keys.length > 0) {
      const values = await this.db.getMany(keys);
      for (let i = 0; i < keys.length; i++) cache.set(keys[i]!, values[i]);
    }
    for (const unit of units) {
      const tx = new JobTx(this.db, batch, cache);
      let outcome: Outcome;
      try {
        outcome = { ok: true, value: await unit.run(tx) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      if (strictIo && tx.ioError !== undefined) throw tx.ioError;
      if (outcome.ok) for (const [k, v] of tx.own) batch.set(k, v);
      outcomes.push(outcome);
    }
    for (const [k, v] of extra) batch.set(k, v);
    if (batch.size > 0) {
      // A chained batch: the array form costs several times more CPU per operation
      // (abstract-level clones and normalizes every op object). Same atomic synced write.
      const b = this.db.batch();
      try {
        for (const [key, value] of batch) {
          if (value === null) b.del(key);
          else b.put(key, value);
        }
      } catch (e) {
        await b.close();
        throw e;
      }
      await b.write({ sync });
    }
    this.stats.batches++;
    this.stats.jobs += units.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, units.length);
    return outcomes;
  }
}

function tryOr<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}
