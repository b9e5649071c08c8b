// When the host compacts its log: every `snapshotEvery` entries applied, or once the
// commands applied since the last compaction pass `snapshotBytes` — then keeping the newest
// `keepBytes` of them, so a replica that was away a few seconds catches up from the log.

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

  /** The log was cut at `index` as planned: the bytes up to it no longer count. */
  cut(index: number, dropped: number, gen: number): void {
    if (gen !== this.gen) return;
    this.marks = this.marks.filter(([i]) => i > index).map(([i, b]) => [i, b - dropped]);
    this.bytes -= dropped;
  }
}
