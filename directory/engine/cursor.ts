// A forward iterator over a key range that reads in growing chunks and can skip every key
// with a given prefix (within the chunk it holds, or by seeking), so a delimiter listing
// costs one seek per common prefix instead of a walk over the keys under it.
import type { Iterator } from 'classic-level';
import { successor } from './keys.ts';
import type { DB } from './writer.ts';

type Iter = Iterator<DB, string, string>;

// Above a 1000-key page plus the one entry that tells whether the page is truncated, so a
// full page is one read.
const MAX_CHUNK = 1024;

// The binding ends a read at this many bytes even when fewer entries than asked were read
// (16 KiB by default: a 1000-record page would take ~20 trips to the thread pool). The
// chunk size bounds a read already.
const HIGH_WATER_MARK_BYTES = 16 * 1024 * 1024;

/** How the iterator's keys are encoded (the database's key encoding when absent). */
export type KeyEncoding = {
  name: string;
  format: 'utf8';
  encode: (s: string) => Buffer;
  decode: (s: string) => string;
};

export class Cursor {
  private readonly it: Iter;
  private buf: Array<[string, string]> = [];
  private pos = 0;
  private ended = false;
  private chunk: number;

  /** Reads `first` entries at first (and after a seek), doubling while no seek happens. */
  constructor(
    db: DB,
    range: { gt?: string; gte?: string; lt: string },
    private readonly first: number,
    keyEncoding?: KeyEncoding,
  ) {
    this.it = db.iterator({
      ...range,
      ...(keyEncoding && { keyEncoding }),
      highWaterMarkBytes: HIGH_WATER_MARK_BYTES,
    });
    this.chunk = Math.max(1, first);
  }

  /** The next entry, or undefined at the end. `want` caps how many entries one read fetches. */
  async next(want = MAX_CHUNK): Promise<[string, string] | undefined> {
    if (this.pos < this.buf.length) return this.buf[this.pos++];
    if (this.ended) return undefined;
    this.buf = await this.it.nextv(Math.max(1, Math.min(this.chunk, want, MAX_CHUNK)));
    this.pos = 0;
    this.chunk = Math.min(this.chunk * 2, MAX_CHUNK);
    if (this.buf.length === 0) {
      this.ended = true;
      return undefined;
    }
    return this.buf[this.pos++];
  }

  /**
   * Skips every entry whose key starts with `prefix` (which must be at or after the cursor).
   * `seekTo` is where a seek lands, in the iterator's range encoding: the default suits
   * keys that come out as they go in.
   */
  skipPrefix(prefix: string, seekTo?: () => string): void {
    const last = this.buf[this.buf.length - 1];
    if (this.pos < this.buf.length && last !== undefined && !last[0].startsWith(prefix)) {
      // The run of keys with this prefix ends inside the chunk we hold.
      while (this.buf[this.pos]![0].startsWith(prefix)) this.pos++;
      return;
    }
    if (this.ended) return;
    this.it.seek(seekTo ? seekTo() : successor(prefix));
    this.buf = [];
    this.pos = 0;
    this.chunk = Math.max(1, Math.min(this.first, 2));
  }

  async close(): Promise<void> {
    await this.it.close();
  }
}
