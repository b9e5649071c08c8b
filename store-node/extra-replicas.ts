// Extra replicas (the paper's "redundant write API", cache/README.md): copies of single
// hot needles of volumes this store does NOT hold, placed here by the directory so reads
// of a hot object spread over more stores. Each is one file under <store dir>/extra/:
//
//   <vid>-<nid>.xn = one JSON line {volumeId, needleId, cookie, size, crc32c, contentType?}
//                    then the needle bytes
//
// written to a temp file, fsynced, renamed, and the directory fsynced: a crash leaves the
// old state or the whole copy, never half of one (temp files are dropped at load). Like
// needles they are write-once: the same bytes again are a no-op, other bytes a conflict.
//
//   PUT    /extra/:vid/:nid?cookie=N   body = needle bytes, x-ks-crc32c required and
//                                      covered by the token (EXTRA_PUT_COVERED)
//                                      → 201 {created: true, size} | 200 {created: false, size}
//                                        409 NeedleExists when it holds other bytes
//   DELETE /extra/:vid/:nid            → 204 | 404 NoSuchNeedle
//   GET    /extra                      → 200 {count, bytes, needles: [{volumeId,
//                                        needleId: "<decimal>", cookie, size, contentType?}]}
//   GET    /cache                      → 200 {cache: NeedleCacheStats | null, extra: <as above>}
// Reads go through the normal needle GET/HEAD (Store.read falls back to these copies).
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import * as fsx from '../common/fsx.ts';
import { StoreError } from './errors.ts';
import type { NeedleRef } from './needle-ref.ts';
import { DELETED_MEMORY_MAX, DELETED_MEMORY_MS } from './volume.ts';

export const EXTRA_DIR = 'extra';
export const EXTRA_RE = /^\/extra\/([^/]+)\/([^/]+)$/;
const FILE_RE = /^(\d+)-(\d+)\.xn$/;

export interface ExtraNeedle {
  volumeId: number;
  needleId: bigint;
  cookie: number;
  size: number;
  crc32c: number;
  contentType?: string;
}

const keyOf = (vid: number, nid: bigint) => `${vid}/${nid}`;

function encodeHeader(x: ExtraNeedle): Buffer {
  const h = { ...x, needleId: x.needleId.toString() };
  return Buffer.from(`${JSON.stringify(h)}\n`);
}

/** Header and bytes of one file; null when it is not a whole, intact copy. */
function decodeFile(buf: Buffer): { meta: ExtraNeedle; data: Buffer } | null {
  const nl = buf.indexOf(0x0a);
  if (nl < 0) return null;
  try {
    const h = JSON.parse(buf.subarray(0, nl).toString()) as Record<string, unknown>;
    const meta: ExtraNeedle = {
      volumeId: Number(h.volumeId),
      needleId: BigInt(String(h.needleId)),
      cookie: Number(h.cookie),
      size: Number(h.size),
      crc32c: Number(h.crc32c),
    };
    if (typeof h.contentType === 'string') meta.contentType = h.contentType;
    const data = buf.subarray(nl + 1);
    if (data.length !== meta.size || crc32c(data) !== meta.crc32c) return null;
    return { meta, data };
  } catch {
    return null;
  }
}

/** An internal token is good for 300 s either side of its time: twice that, for skew. */
export const REMOVED_MEMORY_MS = 2 * 300_000;

/** Records `key` at `now` in `m` (kept in time order), forgetting entries past `ms` or the cap. */
function remember(m: Map<string, number>, key: string, now: number, ms: number): void {
  m.delete(key); // re-inserted at the end: the map stays in time order
  m.set(key, now);
  for (const [k, at] of m) {
    if (m.size <= DELETED_MEMORY_MAX && now - at <= ms) break;
    m.delete(k);
  }
}

export class ExtraReplicas {
  private readonly index = new Map<string, ExtraNeedle>();
  /** One change at a time per needle: a PUT racing a DELETE must not resurrect the copy. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private dirMade = false;
  /**
   * Needles deleted here lately (tombstones, not DELETE /extra): a replayed PUT of one
   * must not bring its copy back, as a volume refuses a deleted id (Volume.noteDeleted).
   */
  private readonly deleted = new Map<string, number>();
  /**
   * Copies removed here lately (DELETE /extra), and when: a captured extra PUT replayed
   * while its token is still good (±300 s) must not bring a removed copy back. Kept for
   * twice the token's lifetime, at most DELETED_MEMORY_MAX.
   */
  private readonly removed = new Map<string, number>();

  private constructor(readonly dir: string) {}

  /** Loads the copies under `<storeDir>/extra` (none when it does not exist yet). */
  static async open(storeDir: string): Promise<ExtraReplicas> {
    const x = new ExtraReplicas(path.join(storeDir, EXTRA_DIR));
    let names: string[];
    try {
      names = await fs.readdir(x.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return x;
      throw e;
    }
    x.dirMade = true;
    for (const name of names) {
      const file = path.join(x.dir, name);
      if (name.endsWith('.tmp')) {
        await fs.rm(file, { force: true }); // a copy a crash interrupted
        continue;
      }
      const m = FILE_RE.exec(name);
      if (!m) continue;
      const got = decodeFile(await fs.readFile(file));
      // A damaged copy is only a copy: the volume's replicas still hold the needle.
      if (!got || name !== x.fileName(got.meta.volumeId, got.meta.needleId)) {
        await fs.rm(file, { force: true });
        continue;
      }
      x.index.set(keyOf(got.meta.volumeId, got.meta.needleId), got.meta);
    }
    return x;
  }

  private fileName(vid: number, nid: bigint): string {
    return `${vid}-${nid}.xn`;
  }

  private filePath(vid: number, nid: bigint): string {
    return path.join(this.dir, this.fileName(vid, nid));
  }

  private serially<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.then(task, task);
    const tail = run.catch(() => {});
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return run;
  }

  has(vid: number, nid: bigint): boolean {
    return this.index.has(keyOf(vid, nid));
  }

  get(vid: number, nid: bigint): ExtraNeedle | undefined {
    return this.index.get(keyOf(vid, nid));
  }

  list(): ExtraNeedle[] {
    return [...this.index.values()].sort((a, b) =>
      a.volumeId !== b.volumeId
        ? a.volumeId - b.volumeId
        : a.needleId < b.needleId
          ? -1
          : a.needleId > b.needleId
            ? 1
            : 0,
    );
  }

  get count(): number {
    return this.index.size;
  }

  get bytes(): number {
    let n = 0;
    for (const x of this.index.values()) n += x.size;
    return n;
  }

  /** Remembers a needle as deleted (a tombstone reached this node) for DELETED_MEMORY_MS. */
  noteDeleted(vid: number, nid: bigint, now = Date.now()): void {
    remember(this.deleted, keyOf(vid, nid), now, DELETED_MEMORY_MS);
  }

  /**
   * Stores a copy durably; `created` false when these very bytes were already here.
   * `signedAt`: when the request's token was signed (ms; tokens count whole seconds). A
   * copy removed here lately (DELETE /extra) comes back only by a request signed in a
   * later second than the removal: an earlier one is a captured request replayed.
   */
  put(
    ref: NeedleRef,
    data: Buffer,
    contentType?: string,
    signedAt?: number,
  ): Promise<{ created: boolean }> {
    return this.serially(keyOf(ref.volumeId, ref.needleId), async () => {
      const key = keyOf(ref.volumeId, ref.needleId);
      const now = Date.now();
      const at = this.deleted.get(key);
      if (at !== undefined && now - at <= DELETED_MEMORY_MS) {
        throw new StoreError(
          'NeedleExists',
          `needle ${ref.volumeId}/${ref.needleId} was deleted; needle ids are not reused`,
        );
      }
      const removedAt = this.removed.get(key);
      if (
        removedAt !== undefined &&
        now - removedAt <= REMOVED_MEMORY_MS &&
        signedAt !== undefined &&
        Math.floor(signedAt / 1000) < Math.floor(removedAt / 1000)
      ) {
        throw new StoreError(
          'NeedleExists',
          `extra copy of ${ref.volumeId}/${ref.needleId} was removed after this request was signed`,
        );
      }
      const crc = crc32c(data);
      const had = this.get(ref.volumeId, ref.needleId);
      if (had) {
        const same = had.cookie === ref.cookie && had.size === data.length && had.crc32c === crc;
        let cur: Buffer | null = null;
        try {
          if (same) cur = await this.readFile(had);
        } catch (e) {
          // A copy damaged on disk is replaced by the same needle's good bytes below.
          if (!(e instanceof StoreError && e.code === 'NeedleCorrupt')) throw e;
        }
        if (cur?.equals(data)) return { created: false };
        if (!same || cur !== null) {
          throw new StoreError(
            'NeedleExists',
            `extra copy of ${ref.volumeId}/${ref.needleId} holds other bytes`,
          );
        }
      }
      const meta: ExtraNeedle = { ...ref, size: data.length, crc32c: crc };
      if (contentType) meta.contentType = contentType;
      await this.ensureDir();
      const final = this.filePath(ref.volumeId, ref.needleId);
      const tmp = `${final}.${crypto.randomBytes(6).toString('hex')}.tmp`;
      try {
        const fd = await fsx.open(tmp, 'w');
        try {
          await fsx.pwritev(fd, [encodeHeader(meta), data], 0);
          await fsx.fsync(fd);
        } finally {
          await fsx.close(fd);
        }
        await fs.rename(tmp, final);
      } catch (e) {
        await fs.rm(tmp, { force: true });
        throw e;
      }
      await fsx.fsyncDir(this.dir);
      this.index.set(keyOf(ref.volumeId, ref.needleId), meta);
      return { created: true };
    });
  }

  /** Removes a copy; false when there was none. With `cookie`, it must match. */
  delete(vid: number, nid: bigint, cookie?: number): Promise<boolean> {
    return this.serially(keyOf(vid, nid), async () => {
      const had = this.get(vid, nid);
      if (!had) return false;
      if (cookie !== undefined && had.cookie !== cookie)
        throw new StoreError('CookieMismatch', `needle ${nid}: wrong cookie`);
      await fs.rm(this.filePath(vid, nid), { force: true });
      await fsx.fsyncDir(this.dir);
      this.index.delete(keyOf(vid, nid));
      remember(this.removed, keyOf(vid, nid), Date.now(), REMOVED_MEMORY_MS);
      return true;
    });
  }

  /** A copy's bytes, checked like a needle's: NoSuchNeedle, CookieMismatch, NeedleCorrupt. */
  async read(ref: NeedleRef): Promise<Buffer> {
    const x = this.lookup(ref);
    return this.readFile(x);
  }

  head(ref: NeedleRef): { size: number } {
    return { size: this.lookup(ref).size };
  }

  private lookup(ref: NeedleRef): ExtraNeedle {
    const x = this.get(ref.volumeId, ref.needleId);
    if (!x) throw new StoreError('NoSuchNeedle', `needle ${ref.needleId} not found`);
    if (x.cookie !== ref.cookie)
      throw new StoreError('CookieMismatch', `needle ${ref.needleId}: wrong cookie`);
    return x;
  }

  private async readFile(x: ExtraNeedle): Promise<Buffer> {
    let buf: Buffer;
    try {
      buf = await fs.readFile(this.filePath(x.volumeId, x.needleId));
    } catch (e) {
      // Deleted between the lookup and the read.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new StoreError('NoSuchNeedle', `needle ${x.needleId} not found`);
      throw e;
    }
    const got = decodeFile(buf);
    if (!got || got.meta.cookie !== x.cookie) {
      throw new StoreError('NeedleCorrupt', `extra copy of ${x.volumeId}/${x.needleId} damaged`);
    }
    return got.data;
  }

  private async ensureDir(): Promise<void> {
    if (this.dirMade) return;
    await fs.mkdir(this.dir, { recursive: true });
    await fsx.fsyncDir(path.dirname(this.dir));
    this.dirMade = true;
  }
}

/** The JSON form of a listing (ids as decimal strings). */
export function extraListing(x: ExtraReplicas) {
  return {
    count: x.count,
    bytes: x.bytes,
    needles: x.list().map((n) => ({
      volumeId: n.volumeId,
      needleId: n.needleId.toString(),
      cookie: n.cookie,
      size: n.size,
      ...(n.contentType ? { contentType: n.contentType } : {}),
    })),
  };
}
