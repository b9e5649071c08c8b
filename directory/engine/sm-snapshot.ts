// Snapshots of the directory state machine, for Raft InstallSnapshot and for new replicas:
// the whole LevelDB as a byte stream, and back into a fresh database.
//
// Stream format (integers big-endian):
//   header   "KSDIRSNP" u32 version
//   frame*   u32 keyLength (≥ 1) u32 valueLength key value      (keys strictly ascending)
//   trailer  u32 0 u64 frameCount u32 crc32(every byte before this field)
// The stream is cut into chunks of a fixed size regardless of frames, so a frame may straddle
// any number of chunks. The trailer makes a truncated or corrupted stream an error instead of
// a silently smaller database.
//
// Consistency: the export reads ONE iterator over the whole database. LevelDB gives an
// iterator an implicit snapshot when it is created, and exportSnapshot creates it before
// returning, so the stream is the state as of that call, however long it takes to consume
// and whatever is written meanwhile. A second iterator (or a get) would see a different
// moment. Because the applied-index key sorts first, the snapshot also says, consistently
// with its contents, which Raft log index it stands at.
//
// The same stream is the directory's backup file (`kubestorage admin directory backup`,
// served by the leader's GET /cluster/backup); restoreBackup seeds a new replica's state
// machine from one, without the old group's Raft bookkeeping.
import fs from 'node:fs/promises';
import path from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { ClassicLevel } from 'classic-level';
import * as K from './keys.ts';
import type { LevelMetadata } from './meta-level.ts';

// Node 20's zlib.crc32 answers 0 for an empty Buffer without a backing store (what
// classic-level returns for an empty value, e.g. every key-index entry), instead of the
// CRC it was given: snapshots of any state with an access key failed their checksum.
const crc32 = (b: Buffer, crc: number): number => (b.length === 0 ? crc : zlibCrc32(b, crc));

export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;

const MAGIC = Buffer.from('KSDIRSNP', 'latin1');
const VERSION = 1;
const HEADER_BYTES = MAGIC.length + 4;
const IMPORT_BATCH_KEYS = 1000;
const READ_BATCH = 1000;
// Far beyond any real key or record; a length above them means a corrupt stream.
const MAX_KEY_BYTES = 1 << 20;
const MAX_VALUE_BYTES = 256 << 20;

const APPLIED_KEY = Buffer.from(K.NS.raftApplied, 'latin1');

export interface SnapshotExport {
  /** The Raft log index the snapshot's state stands at (0 when never replicated). */
  appliedIndex(): Promise<number>;
  /** The stream; may be iterated once. Closes the iterator when done or abandoned. */
  chunks(): AsyncIterable<Buffer>;
  /** Releases the database snapshot when chunks() is not (fully) consumed. Idempotent. */
  close(): Promise<void>;
}

/** The state of `meta` as of this call (see the consistency note above). */
export function exportSnapshot(
  meta: LevelMetadata,
  chunkBytes = SNAPSHOT_CHUNK_BYTES,
): SnapshotExport {
  const it = meta.rawIterator();
  let head: Promise<Array<[Buffer, Buffer]>> | undefined;
  const first = () => (head ??= it.nextv(READ_BATCH));
  let started = false;
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= it.close());

  async function* stream(): AsyncGenerator<Buffer> {
    const out = new ChunkWriter(chunkBytes);
    try {
      const header = Buffer.alloc(HEADER_BYTES);
      MAGIC.copy(header);
      header.writeUInt32BE(VERSION, MAGIC.length);
      yield* out.write(header);
      let count = 0n;
      const frameHead = Buffer.alloc(8);
      for (let batch = await first(); batch.length > 0; batch = await it.nextv(READ_BATCH)) {
        for (const [k, v] of batch) {
          frameHead.writeUInt32BE(k.length, 0);
          frameHead.writeUInt32BE(v.length, 4);
          yield* out.write(frameHead);
          yield* out.write(k);
          yield* out.write(v);
          count++;
        }
      }
      const end = Buffer.alloc(12);
      end.writeBigUInt64BE(count, 4);
      yield* out.write(end);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(out.crc);
      yield* out.write(crc);
      const last = out.flush();
      if (last) yield last;
    } finally {
      await close();
    }
  }

  return {
    async appliedIndex() {
      const [entry] = await first();
      return entry?.[0].equals(APPLIED_KEY) ? Number(entry[1].toString('latin1')) : 0;
    },
    chunks() {
      if (started) throw new Error('snapshot stream already consumed');
      started = true;
      return stream();
    },
    close,
  };
}

/** Copies bytes into fixed-size chunks; keeps the CRC of everything written. */
class ChunkWriter {
  crc = 0;
  private buf: Buffer;
  private used = 0;

  constructor(private readonly size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  *write(b: Buffer): Generator<Buffer> {
    this.crc = crc32(b, this.crc);
    let off = 0;
    while (off < b.length) {
      const n = b.copy(this.buf, this.used, off);
      off += n;
      this.used += n;
      if (this.used === this.size) {
        yield this.buf;
        this.buf = Buffer.allocUnsafe(this.size);
        this.used = 0;
      }
    }
  }

  flush(): Buffer | null {
    return this.used > 0 ? this.buf.subarray(0, this.used) : null;
  }
}

/**
 * Writes the snapshot into a new database at `dir` (which must not exist, or be an empty
 * directory), ready for LevelMetadata.open. Rejects on a truncated, corrupt or trailing-
 * garbage stream. The database is built beside `dir` and renamed into place only once the
 * whole stream has checked out and been synced, so `dir` never holds a partial state, not
 * even after a crash.
 */
export async function importSnapshot(
  dir: string,
  chunks: AsyncIterable<Buffer>,
  opts: { skip?: (key: Buffer) => boolean } = {},
): Promise<void> {
  if ((await fs.readdir(dir).catch(() => [])).length > 0) {
    throw new Error(`snapshot import: ${dir} is not empty`);
  }
  // Ours by name: a leftover is an import that died half-way.
  const tmp = `${dir}.importing`;
  await fs.rm(tmp, { recursive: true, force: true });
  const db = new ClassicLevel<Buffer, Buffer>(tmp, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    createIfMissing: true,
    errorIfExists: true,
  });
  try {
    await db.open();
    let ops: Array<{ type: 'put'; key: Buffer; value: Buffer }> = [];
    await readStream(chunks, async (key, value, last) => {
      if (key && value && !opts.skip?.(key)) ops.push({ type: 'put', key, value });
      if (last) {
        // One synced write at the end makes every earlier (unsynced) batch durable with it.
        await db.batch(ops, { sync: true });
        ops = [];
      } else if (ops.length >= IMPORT_BATCH_KEYS) {
        await db.batch(ops);
        ops = [];
      }
    });
    await db.close();
    await fs.rename(tmp, dir);
    const parent = await fs.open(path.dirname(path.resolve(dir)), 'r');
    try {
      await parent.sync();
    } finally {
      await parent.close();
    }
  } catch (e) {
    await db.close().catch(() => {});
    await fs.rm(tmp, { recursive: true, force: true });
    throw new Error(`snapshot import into ${dir} failed: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Parses a snapshot stream, checking it whole (order, count, checksum, nothing after the
 * trailer): `frame(key, value, false)` for every frame in order, then `frame(null, null,
 * true)` once the trailer has checked out. Returns the number of frames.
 */
async function readStream(
  chunks: AsyncIterable<Buffer>,
  frame: (key: Buffer | null, value: Buffer | null, last: boolean) => Promise<void>,
): Promise<bigint> {
  const q = new ByteQueue();
  let count = 0n;
  let prev: Buffer | undefined;
  // What the parser waits for next: the header, a frame head, a frame body, the trailer.
  let want = 'header' as 'header' | 'head' | 'body' | 'trailer' | 'done';
  let keyLen = 0;
  let valLen = 0;
  let crcAtTrailer = 0;

  const step = async (): Promise<boolean> => {
    switch (want) {
      case 'header': {
        const h = q.take(HEADER_BYTES);
        if (!h) return false;
        if (!h.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a snapshot stream');
        const v = h.readUInt32BE(MAGIC.length);
        if (v !== VERSION) throw new Error(`snapshot version ${v}, this build reads ${VERSION}`);
        want = 'head';
        return true;
      }
      case 'head': {
        if (q.length < 4) return false;
        crcAtTrailer = q.crc;
        const kl = q.peekUInt32();
        if (kl === 0) {
          want = 'trailer';
          return true;
        }
        const h = q.take(8);
        if (!h) return false;
        keyLen = h.readUInt32BE(0);
        valLen = h.readUInt32BE(4);
        if (keyLen > MAX_KEY_BYTES || valLen > MAX_VALUE_BYTES) {
          throw new Error(`corrupt snapshot: frame lengths ${keyLen}/${valLen}`);
        }
        want = 'body';
        return true;
      }
      case 'body': {
        const taken = q.take(keyLen + valLen);
        if (!taken) return false;
        // Own copy: the producer may reuse its chunk buffers once it has handed them over.
        const b = Buffer.from(taken);
        const key = b.subarray(0, keyLen);
        if (prev && Buffer.compare(prev, key) >= 0) throw new Error('corrupt snapshot: key order');
        prev = key;
        await frame(key, b.subarray(keyLen), false);
        count++;
        want = 'head';
        return true;
      }
      case 'trailer': {
        const t = q.take(4 + 8 + 4);
        if (!t) return false;
        if (t.readBigUInt64BE(4) !== count) throw new Error('corrupt snapshot: frame count');
        if (t.readUInt32BE(12) !== crc32(t.subarray(0, 12), crcAtTrailer)) {
          throw new Error('corrupt snapshot: checksum mismatch');
        }
        want = 'done';
        return true;
      }
      case 'done':
        throw new Error('corrupt snapshot: bytes after the trailer');
    }
  };

  for await (const chunk of chunks) {
    q.push(chunk);
    while (q.length > 0 && (await step()));
  }
  if (want !== 'done') throw new Error('truncated snapshot stream');
  await frame(null, null, true);
  return count;
}

/**
 * Checks a whole snapshot stream (a backup file) without storing it: its record count and
 * the Raft log index it stands at. Rejects what importSnapshot would reject.
 */
export async function checkSnapshot(
  chunks: AsyncIterable<Buffer>,
): Promise<{ frames: number; appliedIndex: number }> {
  let applied = 0;
  const frames = await readStream(chunks, async (key, value) => {
    if (key?.equals(APPLIED_KEY)) applied = Number((value as Buffer).toString('latin1'));
  });
  return { frames: Number(frames), appliedIndex: applied };
}

/** The old group's Raft bookkeeping: not part of a restored state. */
const RAFT_PREFIX = Buffer.from('\x00raft-', 'latin1');

/**
 * Seeds the state machine of a brand-new replica from a backup: the stream imported into
 * `dir` (see importSnapshot) without the old group's Raft keys except the applied index,
 * which the caller makes the new Raft log's starting point (so replicas that join later
 * get the state as a snapshot). Returns that index.
 */
export async function restoreBackup(dir: string, chunks: AsyncIterable<Buffer>): Promise<number> {
  let applied = 0;
  await importSnapshot(dir, chunks, {
    skip: (key) => {
      if (key.equals(APPLIED_KEY)) return false;
      return key.subarray(0, RAFT_PREFIX.length).equals(RAFT_PREFIX);
    },
  });
  const db = new ClassicLevel<Buffer, Buffer>(dir, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
  });
  try {
    const v = await db.get(APPLIED_KEY);
    applied = v === undefined ? 0 : Number(v.toString('latin1'));
  } finally {
    await db.close();
  }
  return applied;
}

/** Buffered stream bytes; take() returns exactly n bytes once they are all there. */
class ByteQueue {
  length = 0;
  /** CRC32 of every byte taken so far. */
  crc = 0;
  private bufs: Buffer[] = [];

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.bufs.push(b);
    this.length += b.length;
  }

  peekUInt32(): number {
    const first = this.bufs[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    return Buffer.concat(this.bufs, 4).readUInt32BE(0);
  }

  take(n: number): Buffer | undefined {
    if (this.length < n) return undefined;
    let out: Buffer;
    const first = this.bufs[0];
    if (n === 0) out = Buffer.alloc(0);
    else if (first!.length >= n) {
      out = first!.subarray(0, n);
      if (first!.length === n) this.bufs.shift();
      else this.bufs[0] = first!.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const b = this.bufs[0]!;
        const k = Math.min(b.length, n - off);
        b.copy(out, off, 0, k);
        off += k;
        if (k === b.length) this.bufs.shift();
        else this.bufs[0] = b.subarray(k);
      }
    }
    this.length -= n;
    this.crc = crc32(out, this.crc);
    return out;
  }
}
