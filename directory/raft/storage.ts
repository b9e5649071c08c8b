// The durable Raft log on classic-level (LevelDB).
//
// Key layout (ASCII, so string order is byte order):
//   h                 hard state (JSON)
//   s                 snapshot meta (JSON), absent until the first compaction / install
//   e<16 hex digits>  one entry per index (JSON); fixed width so keys sort numerically
//
// Invariant on disk after every synced write: the entries are exactly the indices
// snapshot.index+1 .. lastIndex, with no holes. Every change that could break it (suffix
// replacement, installing a leader's snapshot) is one synced batch that writes the new
// state and deletes what it replaces, so a crash sees either the old log or the new one.
// Because lastIndex is kept in memory, the deletes are computed from indices rather than
// found by scanning. open() still checks the invariant and throws away anything outside
// it (a hole can only come from a bug or a damaged disk, but a stale entry past a hole
// could otherwise be mistaken for part of the log once the hole is filled).
import { ClassicLevel } from 'classic-level';
import type { LogState, LogStorage } from './host-io.ts';
import type { Entry, HardState, SnapshotMeta } from './types.ts';

export type RaftDiskState = LogState;

const HARD = 'h';
const SNAP = 's';
const ENTRY_PREFIX = 'e';
// '\x7f' sorts after every hex digit: the upper bound of the entry range.
const ENTRY_END = 'e\x7f';

function entryKey(index: number): string {
  return ENTRY_PREFIX + index.toString(16).padStart(16, '0');
}

function keyIndex(key: string): number {
  return Number.parseInt(key.slice(ENTRY_PREFIX.length), 16);
}

type DB = ClassicLevel<string, string>;

export class RaftStorage implements LogStorage {
  private snapIndex = 0;
  private last = 0;
  // Writes run one at a time: each batch is computed from lastIndex as left by the
  // previous one, and a failed write must not leave the cache ahead of the disk.
  private tail: Promise<unknown> = Promise.resolve();
  private readonly purging = new Set<Promise<void>>();

  private constructor(private readonly db: DB) {}

  static async open(dir: string): Promise<RaftStorage> {
    const db: DB = new ClassicLevel<string, string>(dir, {
      keyEncoding: 'utf8',
      valueEncoding: 'utf8',
      createIfMissing: true,
      // Most entries are deleted by compaction soon after they are written: a large
      // memtable lets fewer of them be flushed to level-0 files and compacted only to go.
      writeBufferSize: 64 * 1024 * 1024,
    });
    await db.open();
    const s = new RaftStorage(db);
    try {
      await s.recover();
    } catch (e) {
      await db.close();
      throw e;
    }
    return s;
  }

  /** Establishes snapIndex / lastIndex and removes entries outside the contiguous log. */
  private async recover(): Promise<void> {
    const snap = await this.readSnapshot();
    this.snapIndex = snap?.index ?? 0;
    // Left behind if compact() crashed between storing the meta and clearing the range.
    await this.db.clear({ gte: entryKey(0), lte: entryKey(this.snapIndex) });
    let expect = this.snapIndex + 1;
    let garbageFrom: string | null = null;
    for await (const key of this.db.keys({ gt: entryKey(this.snapIndex), lt: ENTRY_END })) {
      if (keyIndex(key) !== expect) {
        garbageFrom = key;
        break;
      }
      expect++;
    }
    this.last = expect - 1;
    if (garbageFrom !== null) await this.db.clear({ gte: garbageFrom, lt: ENTRY_END });
  }

  private async readSnapshot(): Promise<SnapshotMeta | null> {
    const v = await this.db.get(SNAP);
    return v === undefined ? null : (JSON.parse(v) as SnapshotMeta);
  }

  async load(): Promise<RaftDiskState> {
    return this.serial(async () => {
      const h = await this.db.get(HARD);
      const hardState: HardState =
        h === undefined ? { term: 0, vote: null, commit: 0 } : (JSON.parse(h) as HardState);
      const snapshot = await this.readSnapshot();
      const entries: Entry[] = [];
      if (this.last > this.snapIndex) {
        const range = { gte: entryKey(this.snapIndex + 1), lte: entryKey(this.last) };
        for await (const v of this.db.values(range)) entries.push(JSON.parse(v) as Entry);
      }
      return { hardState, snapshot, entries };
    });
  }

  /**
   * One synced batch: the hard state (if given) and the entries; the entries replace any
   * stored entries at index >= entries[0].index. Entries already covered by the snapshot
   * are skipped (they are committed, hence identical); a gap after lastIndex throws.
   */
  save(hardState: HardState | undefined, entries: Entry[]): Promise<void> {
    return this.serial(async () => {
      let es = entries;
      if (es.length > 0 && es[0]!.index <= this.snapIndex) {
        es = es.filter((e) => e.index > this.snapIndex);
      }
      if (hardState === undefined && es.length === 0) return;
      const first = es[0]?.index ?? this.last + 1;
      if (first > this.last + 1) {
        throw new Error(`raft storage: entry ${first} would leave a gap after ${this.last}`);
      }
      for (let i = 0; i < es.length; i++) {
        if (es[i]!.index !== first + i) {
          throw new Error(`raft storage: entries not contiguous at ${es[i]!.index}`);
        }
      }
      const batch = this.db.batch();
      if (hardState !== undefined) batch.put(HARD, JSON.stringify(hardState));
      let newLast = this.last;
      if (es.length > 0) {
        for (const e of es) batch.put(entryKey(e.index), JSON.stringify(e));
        newLast = first + es.length - 1;
        for (let i = newLast + 1; i <= this.last; i++) batch.del(entryKey(i));
      }
      await batch.write({ sync: true });
      this.last = newLast;
    });
  }

  /** Records that a snapshot covers the log up to meta.index and drops those entries. */
  compact(meta: SnapshotMeta): Promise<void> {
    return this.serial(async () => {
      if (meta.index <= this.snapIndex) return;
      if (meta.index >= this.last) {
        // Nothing of the log survives: same as replacing it (and must be atomic likewise).
        await this.replaceAll(meta);
        return;
      }
      // The meta alone makes entries <= meta.index dead (recover() ignores and clears
      // them), so the range delete need not share its batch and cannot be half-done
      // dangerously; this keeps a large compaction out of one huge batch.
      await this.db.put(SNAP, JSON.stringify(meta), { sync: true });
      const from = this.snapIndex + 1;
      this.snapIndex = meta.index;
      await this.db.clear({ gte: entryKey(from), lte: entryKey(meta.index) });
    });
  }

  /** After installing a leader's snapshot: the whole log is replaced by it. */
  resetToSnapshot(meta: SnapshotMeta): Promise<void> {
    return this.serial(() => this.replaceAll(meta));
  }

  private async replaceAll(meta: SnapshotMeta): Promise<void> {
    // Old entries past meta.index belong to a log being discarded: they must vanish in the
    // same batch as the meta is stored, or a crash would leave them looking valid.
    const batch = this.db.batch();
    batch.put(SNAP, JSON.stringify(meta));
    for (let i = this.snapIndex + 1; i <= this.last; i++) batch.del(entryKey(i));
    await batch.write({ sync: true });
    this.snapIndex = meta.index;
    this.last = meta.index;
  }

  /**
   * Drops deleted entries from the files too: LevelDB keeps a deleted value (in its write-
   * ahead log and table files) until a compaction reaches it, and entries may hold what
   * must not stay on disk (secrets stored in clear, before they were sealed). Starts after
   * the writes queued before it (a compact() or resetToSnapshot()), without holding up
   * later ones: flushing the memtable and rewriting the old log's files takes a while.
   */
  purge(): Promise<void> {
    const run = this.tail.then(() => this.db.compactRange(entryKey(0), ENTRY_END));
    this.purging.add(run);
    const done = () => void this.purging.delete(run);
    run.then(done, done);
    return run;
  }

  /** Index of the last entry (or of the snapshot when the log after it is empty). */
  lastIndex(): number {
    return this.last;
  }

  /** Index covered by the stored snapshot (0 if none). */
  snapshotIndex(): number {
    return this.snapIndex;
  }

  async close(): Promise<void> {
    await this.tail.catch(() => {});
    await Promise.allSettled([...this.purging]);
    await this.db.close();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }
}
