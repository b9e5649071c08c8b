// When the host compacts its log: every `snapshotEvery` entries applied, or once the
// commands applied since the last compaction pass `snapshotBytes` — then keeping the newest
// `keepBytes` of them, so a replica that was away a few seconds catches up from the log.
// And at once, through everything applied, when the state machine asks for a purge: its
// applies replaced values that must not stay on disk (secrets stored in clear), which the
// log's entries hold too, and LevelDB keeps deleted values in its files until a compaction
// reaches them — so the log's files and the state machine's are compacted as well.

export interface CompactionLimits {
  snapshotEvery: number;
  snapshotBytes: number;
  keepBytes: number;
}

/** Command bytes applied since the last compaction, and [index, bytes so far] per apply. */
export class ApplyMarks {
  bytes = 0;
  private marks: Array<[index: number, bytes: number]> = [];
  /** Bumped when a snapshot install resets the marks under a compaction in progress. */
  private gen = 0;

  add(index: number, bytes: number): void {
    this.bytes += bytes;
    this.marks.push([index, this.bytes]);
  }

  /** A snapshot was installed: the log restarts after it, nothing applied before counts. */
  reset(): void {
    this.bytes = 0;
    this.marks = [];
    this.gen++;
  }

  /** Where to compact now (up to `applied`, less the kept tail), or null: not yet. */
  plan(
    applied: number,
    snapshotIndex: number,
    o: CompactionLimits,
  ): { index: number; dropped: number; gen: number } | null {
    const byBytes = this.bytes >= o.snapshotBytes;
    if (!byBytes && applied - snapshotIndex < o.snapshotEvery) return null;
    let index = applied;
    let upTo = this.marks.length - 1;
    if (byBytes) {
      while (upTo >= 0 && this.bytes - this.marks[upTo]![1] < o.keepBytes) upTo--;
      if (upTo < 0) return null;
      index = this.marks[upTo]![0];
    }
    return { index, dropped: this.marks[upTo]?.[1] ?? this.bytes, gen: this.gen };
  }

  /** Compacting through `index` (applied here): the bytes that drops, for cut(). */
  through(index: number): { dropped: number; gen: number } {
    let dropped = 0;
    for (const [i, b] of this.marks) if (i <= index) dropped = b;
    return { dropped, gen: this.gen };
  }

  /** The log was cut at `index` as planned: the bytes up to it no longer count. */
  cut(index: number, dropped: number, gen: number): void {
    if (gen !== this.gen) return;
    this.marks = this.marks.filter(([i]) => i > index).map(([i, b]) => [i, b - dropped]);
    this.bytes -= dropped;
  }
}

/**
 * What a state machine offers (optionally) to have values it replaced purged from disk:
 * the directory's (replica/level-state-machine.ts) when sealing replaced secrets stored in
 * clear. The host then compacts its log through what is applied, drops the log's deleted
 * entries from its files (PurgeableLog), and lets the state machine compact its own.
 */
export interface PurgingMachine {
  /** True once an apply (or the state opened) asks for a purge; cheap, checked often. */
  purgeWanted(): boolean;
  /** The request as it stands now, to hand back to endPurge; null: none any more. */
  beginPurge(): Promise<string | null>;
  /** The log is purged: compacts the state machine's own files, then drops `mark`. */
  endPurge(mark: string): Promise<void>;
}

/** Log storage that can drop deleted entries from its files at once (RaftStorage). */
export interface PurgeableLog {
  /** Starts after the writes already queued; resolves once the files hold none. */
  purge(): Promise<void>;
}

export function purgingMachine(sm: object): PurgingMachine | undefined {
  const p = sm as Partial<PurgingMachine>;
  return typeof p.purgeWanted === 'function' ? (p as PurgingMachine) : undefined;
}

export function purgeableLog(log: object): PurgeableLog | undefined {
  const p = log as Partial<PurgeableLog>;
  return typeof p.purge === 'function' ? (p as PurgeableLog) : undefined;
}
