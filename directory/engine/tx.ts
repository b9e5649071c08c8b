// What a command sees of the database while it runs (writer.ts provides it), apart from
// the Writer so that the commands and the Writer that runs them do not import each other.
import type { ClassicLevel } from 'classic-level';

export type DB = ClassicLevel<string, string>;

/** What a job may do. Keys are latin1 byte strings (see keys.ts). */
export interface Tx {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): void;
  del(key: string): void;
  /** Entries with gte ≤ key < lt in key order (at most `limit`), including this batch's writes. */
  range(gte: string, lt: string, limit?: number): Promise<Array<[string, string]>>;
}

/** The result of one command of an applyBatch run. */
export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };
