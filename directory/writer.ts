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
import type { ClassicLevel } from 'classic-level';
import { MetadataError } from './api.ts';

export type DB = ClassicLevel<string, string>;

/** What a job may do. Keys are latin1 byte strings (see keys.ts). */
export interface Tx {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): void;
  del(key: string): void;
  /** Entries with gte ≤ key < lt in key order (at most `limit`), including this batch's writes. */
  range(gte: string, lt: string, limit?: number): Promise<Array<[string, string]>>;
}

interface Job {
  prefetch: string[];
  run: (tx: Tx) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Written value, or null for a delete. */
type Overlay = Map<string, string | null>;

class JobTx implements Tx {
  readonly own: Overlay = new Map();

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
    const v = await this.db.get(key);
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
        const chunk = await it.nextv(Math.min(1000, limit - out.length + shadow.size));
        if (chunk.length === 0) break;
        for (const [k, v] of chunk) if (!shadow.has(k)) out.push([k, v]);
      }
    } finally {
      await it.close();
    }
    for (const [k, v] of shadow) if (v !== null) out.push([k, v]);
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return out.length > limit ? out.slice(0, limit) : out;
  }
}

export interface WriterStats {
  batches: number;
  jobs: number;
  largestBatch: number;
}

export class Writer {
  private queue: Job[] = [];
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
      this.queue.push({ prefetch, run, resolve: resolve as (v: unknown) => void, reject });
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
        const jobs = this.queue.splice(0, this.maxBatchJobs);
        await this.runBatch(jobs);
      }
    } finally {
      this.loop = null;
    }
  }

  private async runBatch(jobs: Job[]): Promise<void> {
    const batch: Overlay = new Map();
    const cache = new Map<string, string | undefined>();
    const results: Array<{ job: Job; ok: boolean; value: unknown }> = [];
    try {
      const keys = [...new Set(jobs.flatMap((j) => j.prefetch))];
      if (keys.length > 0) {
        const values = await this.db.getMany(keys);
        for (let i = 0; i < keys.length; i++) cache.set(keys[i]!, values[i]);
      }
      for (const job of jobs) {
        const tx = new JobTx(this.db, batch, cache);
        try {
          const value = await job.run(tx);
          for (const [k, v] of tx.own) batch.set(k, v);
          results.push({ job, ok: true, value });
        } catch (e) {
          results.push({ job, ok: false, value: e });
        }
      }
      if (batch.size > 0) {
        const ops = [...batch].map(([key, value]) =>
          value === null ? { type: 'del' as const, key } : { type: 'put' as const, key, value },
        );
        await this.db.batch(ops, { sync: true });
      }
    } catch (e) {
      // Reads or the write failed: nothing of this batch is known to be durable.
      for (const job of jobs) job.reject(e);
      return;
    }
    this.stats.batches++;
    this.stats.jobs += jobs.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, jobs.length);
    for (const r of results) (r.ok ? r.job.resolve : r.job.reject)(r.value);
  }
}
