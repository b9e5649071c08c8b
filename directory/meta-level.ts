// MetadataStore on one classic-level (LevelDB) database: the single-node directory.
//
// Key layout: keys.ts. Every mutation goes through the Writer (writer.ts): mutations run in
// one serial order, each read-modify-write sees all earlier ones, and concurrent mutations
// are group-committed, one synced LevelDB batch per group; a promise resolves only after
// its batch is on disk. Multi-record changes (complete/abort upload, user deletion) are one
// batch, hence atomic. Reads go straight to LevelDB and see committed state only.
import { ClassicLevel } from 'classic-level';
import {
  type AccessKeyRecord,
  type BucketRecord,
  type ListObjectsOptions,
  type ListObjectsResult,
  type ListUploadsOptions,
  type ListUploadsResult,
  MetadataError,
  type MetadataStore,
  type ObjectRecord,
  type PartRecord,
  type UploadRecord,
  type UserRecord,
} from './api.ts';
import { Cursor } from './cursor.ts';
import * as K from './keys.ts';
import { type DB, Writer, type WriterStats } from './writer.ts';

const FORMAT = '1';

/** Keys as latin1 byte strings: one char per byte, so JS order is LevelDB's byte order. */
const latin1 = {
  name: 'latin1',
  format: 'buffer' as const,
  encode: (s: string): Buffer => Buffer.from(s, 'latin1'),
  decode: (b: Buffer): string => b.toString('latin1'),
};

function parse<T>(v: string | undefined): T | null {
  return v === undefined ? null : (JSON.parse(v) as T);
}

function encodeObject(rec: ObjectRecord): string {
  const { key: _key, ...rest } = rec;
  return JSON.stringify(rest);
}

function decodeObject(keyBytes: string, v: string): ObjectRecord {
  return { key: K.text(keyBytes), ...(JSON.parse(v) as Omit<ObjectRecord, 'key'>) };
}

function decodeObjectOrNull(key: string, v: string | undefined): ObjectRecord | null {
  return v === undefined ? null : { key, ...(JSON.parse(v) as Omit<ObjectRecord, 'key'>) };
}

function stripQuotes(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}

function checkMax(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0) throw new Error(`${what} must be a non-negative integer`);
}

function chunkId(c: { volumeId: number; needleId: string }): string {
  return `${c.volumeId}/${c.needleId}`;
}

export class LevelMetadata implements MetadataStore {
  private readonly writer: Writer;

  private constructor(private readonly db: DB) {
    this.writer = new Writer(db);
  }

  static async open(dir: string): Promise<LevelMetadata> {
    const db: DB = new ClassicLevel<string, string>(dir, {
      keyEncoding: latin1,
      valueEncoding: 'utf8',
      createIfMissing: true,
    });
    await db.open();
    const format = await db.get(K.NS.format);
    if (format === undefined) {
      await db.put(K.NS.format, FORMAT, { sync: true });
    } else if (format !== FORMAT) {
      await db.close();
      throw new Error(`${dir}: metadata format ${format}, this build reads ${FORMAT}`);
    }
    return new LevelMetadata(db);
  }

  /** Group-commit counters (batches written, jobs in them, largest batch). */
  get writeStats(): Readonly<WriterStats> {
    return this.writer.stats;
  }

  // ---- Buckets ----

  async createBucket(b: BucketRecord): Promise<void> {
    const bk = K.bucketKey(b.name);
    await this.writer.submit([bk], async (tx) => {
      const cur = parse<BucketRecord>(await tx.get(bk));
      if (cur) {
        throw cur.owner === b.owner
          ? new MetadataError('BucketAlreadyOwnedByYou', `bucket ${b.name} is already yours`)
          : new MetadataError('BucketAlreadyExists', `bucket ${b.name} exists`);
      }
      tx.put(bk, JSON.stringify(b));
    });
  }

  async getBucket(name: string): Promise<BucketRecord | null> {
    return parse<BucketRecord>(await this.db.get(K.bucketKey(name)));
  }

  async deleteBucket(name: string): Promise<void> {
    const bk = K.bucketKey(name);
    await this.writer.submit([bk], async (tx) => {
      if ((await tx.get(bk)) === undefined) throw noSuchBucket(name);
      for (const base of [K.objectBase(name), K.uploadBase(name)]) {
        if ((await tx.range(base, K.successor(base), 1)).length > 0) {
          throw new MetadataError('BucketNotEmpty', `bucket ${name} is not empty`);
        }
      }
      tx.del(bk);
    });
  }

  async listBuckets(owner?: string): Promise<BucketRecord[]> {
    const out: BucketRecord[] = [];
    for await (const v of this.db.values({ gte: K.NS.bucket, lt: K.successor(K.NS.bucket) })) {
      const b = JSON.parse(v) as BucketRecord;
      if (owner === undefined || b.owner === owner) out.push(b);
    }
    return out;
  }

  // ---- Objects ----

  async putObject(
    bucket: string,
    rec: ObjectRecord,
    cond?: { ifNoneMatch?: boolean; ifMatch?: string },
  ): Promise<ObjectRecord | null> {
    const bk = K.bucketKey(bucket);
    const ok = K.objectKey(bucket, rec.key);
    const value = encodeObject(rec);
    return this.writer.submit([bk, ok], async (tx) => {
      if ((await tx.get(bk)) === undefined) throw noSuchBucket(bucket);
      const prev = decodeObjectOrNull(rec.key, await tx.get(ok));
      if (cond?.ifNoneMatch && prev) {
        throw new MetadataError('PreconditionFailed', `${rec.key} exists (If-None-Match)`);
      }
      if (cond?.ifMatch !== undefined) {
        const want = stripQuotes(cond.ifMatch);
        if (!prev || (want !== '*' && want !== prev.etag)) {
          throw new MetadataError(
            'PreconditionFailed',
            `${rec.key}: etag does not match (If-Match)`,
          );
        }
      }
      tx.put(ok, value);
      return prev;
    });
  }

  async getObject(bucket: string, key: string): Promise<ObjectRecord | null> {
    return decodeObjectOrNull(key, await this.db.get(K.objectKey(bucket, key)));
  }

  async deleteObject(bucket: string, key: string): Promise<ObjectRecord | null> {
    const bk = K.bucketKey(bucket);
    const ok = K.objectKey(bucket, key);
    return this.writer.submit([bk, ok], async (tx) => {
      if ((await tx.get(bk)) === undefined) throw noSuchBucket(bucket);
      const prev = decodeObjectOrNull(key, await tx.get(ok));
      if (prev) tx.del(ok);
      return prev;
    });
  }

  /**
   * Entries are the keys under `prefix` that are strictly after `after`, each rolled up into
   * its common prefix when the delimiter occurs after the prefix; a common prefix equal to
   * `after` (a continuation from it) is not repeated, so the keys under it are skipped. A
   * common prefix is therefore returned when `after` lies inside it (a start-after in the
   * middle of a "folder") — AWS's behaviour as far as we know; the conformance suite should
   * confirm it. maxKeys 0 returns an empty, untruncated page.
   */
  async listObjects(bucket: string, opts: ListObjectsOptions): Promise<ListObjectsResult> {
    checkMax(opts.maxKeys, 'maxKeys');
    if ((await this.db.get(K.bucketKey(bucket))) === undefined) throw noSuchBucket(bucket);
    const res: ListObjectsResult = { objects: [], commonPrefixes: [], isTruncated: false };
    const max = opts.maxKeys;
    if (max === 0) return res;
    const base = K.objectBase(bucket);
    const prefix = K.bytes(opts.prefix ?? '');
    const delim = opts.delimiter ? K.bytes(opts.delimiter) : '';
    const after = opts.after ? K.bytes(opts.after) : undefined;
    const lt = prefix ? base + K.successor(prefix) : K.successor(base);
    const lower =
      after !== undefined && after >= prefix ? { gt: base + after } : { gte: base + prefix };
    const cur = new Cursor(this.db, { ...lower, lt }, delim ? 16 : max + 1);
    let count = 0;
    let last: string | undefined;
    try {
      for (;;) {
        const e = await cur.next(max - count + 1);
        if (!e) break;
        const rel = e[0].slice(base.length);
        const cp = commonPrefix(rel, prefix.length, delim);
        if (cp !== undefined && cp === after) {
          cur.skipPrefix(base + cp);
          continue;
        }
        if (count === max) {
          res.isTruncated = true;
          break;
        }
        count++;
        if (cp !== undefined) {
          res.commonPrefixes.push(K.text(cp));
          last = cp;
          cur.skipPrefix(base + cp);
        } else {
          res.objects.push(decodeObject(rel, e[1]));
          last = rel;
        }
      }
    } finally {
      await cur.close();
    }
    if (last !== undefined) res.last = K.text(last);
    return res;
  }

  // ---- Multipart uploads ----

  async createUpload(u: UploadRecord): Promise<void> {
    const bk = K.bucketKey(u.bucket);
    const uk = K.uploadKey(u.bucket, u.key, u.uploadId);
    await this.writer.submit([bk], async (tx) => {
      if ((await tx.get(bk)) === undefined) throw noSuchBucket(u.bucket);
      tx.put(uk, JSON.stringify(u));
    });
  }

  async getUpload(bucket: string, key: string, uploadId: string): Promise<UploadRecord | null> {
    return parse<UploadRecord>(await this.db.get(K.uploadKey(bucket, key, uploadId)));
  }

  /** Throws NoSuchUpload when the upload does not exist (any more). */
  async putPart(
    bucket: string,
    key: string,
    uploadId: string,
    part: PartRecord,
  ): Promise<PartRecord | null> {
    const uk = K.uploadKey(bucket, key, uploadId);
    const pk = K.partBase(bucket, key, uploadId) + K.partSuffix(part.partNumber);
    if (part.partNumber < 1) throw new Error('part numbers start at 1');
    const value = JSON.stringify(part);
    return this.writer.submit([uk, pk], async (tx) => {
      if ((await tx.get(uk)) === undefined) throw noSuchUpload(uploadId);
      const prev = parse<PartRecord>(await tx.get(pk));
      tx.put(pk, value);
      return prev;
    });
  }

  /** Throws NoSuchUpload. */
  async listParts(
    bucket: string,
    key: string,
    uploadId: string,
    opts: { marker?: number; max: number },
  ): Promise<{ parts: PartRecord[]; isTruncated: boolean }> {
    checkMax(opts.max, 'max');
    if ((await this.db.get(K.uploadKey(bucket, key, uploadId))) === undefined) {
      throw noSuchUpload(uploadId);
    }
    const base = K.partBase(bucket, key, uploadId);
    const lower = opts.marker ? { gt: base + K.partSuffix(opts.marker) } : { gte: base };
    const got = await this.db
      .values({ ...lower, lt: K.successor(base), limit: opts.max + 1 })
      .all();
    const parts = got.slice(0, opts.max).map((v) => JSON.parse(v) as PartRecord);
    return { parts, isTruncated: got.length > opts.max };
  }

  /**
   * Besides the contract: every chunk of `rec` must belong to one of the used parts as they
   * are now, else InvalidPart; this catches a part replaced (and its chunks freed) between
   * the caller's ListParts and this commit.
   */
  async completeUpload(
    bucket: string,
    key: string,
    uploadId: string,
    rec: ObjectRecord,
    usedParts: number[],
  ): Promise<{ previous: ObjectRecord | null; unused: PartRecord[] }> {
    if (rec.key !== key) throw new Error('completeUpload: rec.key differs from key');
    const uk = K.uploadKey(bucket, key, uploadId);
    const ok = K.objectKey(bucket, key);
    const base = K.partBase(bucket, key, uploadId);
    const value = encodeObject(rec);
    return this.writer.submit([uk, ok], async (tx) => {
      if ((await tx.get(uk)) === undefined) throw noSuchUpload(uploadId);
      const entries = await tx.range(base, K.successor(base));
      const parts = entries.map(([, v]) => JSON.parse(v) as PartRecord);
      const used = new Set(usedParts);
      const usedChunks = new Set<string>();
      for (const p of parts) {
        if (used.has(p.partNumber)) for (const c of p.chunks) usedChunks.add(chunkId(c));
      }
      const present = new Set(parts.map((p) => p.partNumber));
      const missing = usedParts.find((n) => !present.has(n));
      if (missing !== undefined)
        throw new MetadataError('InvalidPart', `part ${missing} does not exist`);
      if (!rec.chunks.every((c) => usedChunks.has(chunkId(c)))) {
        throw new MetadataError('InvalidPart', 'a part was replaced while completing the upload');
      }
      const previous = decodeObjectOrNull(key, await tx.get(ok));
      tx.put(ok, value);
      tx.del(uk);
      for (const [k] of entries) tx.del(k);
      return { previous, unused: parts.filter((p) => !used.has(p.partNumber)) };
    });
  }

  async abortUpload(bucket: string, key: string, uploadId: string): Promise<PartRecord[]> {
    const uk = K.uploadKey(bucket, key, uploadId);
    const base = K.partBase(bucket, key, uploadId);
    return this.writer.submit([uk], async (tx) => {
      if ((await tx.get(uk)) === undefined) throw noSuchUpload(uploadId);
      const entries = await tx.range(base, K.successor(base));
      tx.del(uk);
      for (const [k] of entries) tx.del(k);
      return entries.map(([, v]) => JSON.parse(v) as PartRecord);
    });
  }

  /**
   * Same rules as listObjects, on upload keys. Within a key, uploads are ordered by uploadId
   * (make ids sort by initiation time to get S3's order). With keyMarker alone the page
   * starts after every upload of that key; with uploadIdMarker too, after that upload.
   * nextKeyMarker / nextUploadIdMarker name the last entry whenever the page is not empty
   * (only nextKeyMarker when it is a common prefix).
   */
  async listUploads(bucket: string, opts: ListUploadsOptions): Promise<ListUploadsResult> {
    checkMax(opts.maxUploads, 'maxUploads');
    if ((await this.db.get(K.bucketKey(bucket))) === undefined) throw noSuchBucket(bucket);
    const res: ListUploadsResult = { uploads: [], commonPrefixes: [], isTruncated: false };
    const max = opts.maxUploads;
    if (max === 0) return res;
    const base = K.uploadBase(bucket);
    const prefix = K.bytes(opts.prefix ?? '');
    const escPrefix = K.esc(prefix);
    const delim = opts.delimiter ? K.bytes(opts.delimiter) : '';
    const marker = opts.keyMarker ? K.bytes(opts.keyMarker) : undefined;
    const lt = escPrefix ? base + K.successor(escPrefix) : K.successor(base);
    const prefixStart = base + escPrefix;
    let lower: { gt: string } | { gte: string } = { gte: prefixStart };
    if (marker !== undefined) {
      if (opts.uploadIdMarker) {
        const gt = base + K.esc(marker) + K.TERM + K.bytes(opts.uploadIdMarker);
        if (gt >= prefixStart) lower = { gt };
      } else {
        // Past every upload of the marker key itself (its TERM is 00 01).
        const gte = `${base}${K.esc(marker)}\x00\x02`;
        if (gte >= prefixStart) lower = { gte };
      }
    }
    const cur = new Cursor(this.db, { ...lower, lt }, delim ? 16 : max + 1);
    let count = 0;
    let last: { key: string; uploadId?: string } | undefined;
    try {
      for (;;) {
        const e = await cur.next(max - count + 1);
        if (!e) break;
        const { key } = K.splitUploadRel(e[0].slice(base.length));
        const cp = commonPrefix(key, prefix.length, delim);
        if (cp !== undefined && cp === marker) {
          cur.skipPrefix(base + K.esc(cp));
          continue;
        }
        if (count === max) {
          res.isTruncated = true;
          break;
        }
        count++;
        if (cp !== undefined) {
          res.commonPrefixes.push(K.text(cp));
          last = { key: cp };
          cur.skipPrefix(base + K.esc(cp));
        } else {
          const u = JSON.parse(e[1]) as UploadRecord;
          res.uploads.push(u);
          last = { key, uploadId: u.uploadId };
        }
      }
    } finally {
      await cur.close();
    }
    if (last) {
      res.nextKeyMarker = K.text(last.key);
      if (last.uploadId !== undefined) res.nextUploadIdMarker = last.uploadId;
    }
    return res;
  }

  // ---- Users and keys ----

  async createUser(u: UserRecord): Promise<void> {
    const k = K.userKey(u.id);
    await this.writer.submit([k], async (tx) => {
      if ((await tx.get(k)) !== undefined)
        throw new MetadataError('UserExists', `user ${u.id} exists`);
      tx.put(k, JSON.stringify(u));
    });
  }

  async getUser(id: string): Promise<UserRecord | null> {
    return parse<UserRecord>(await this.db.get(K.userKey(id)));
  }

  async listUsers(): Promise<UserRecord[]> {
    const vs = await this.db.values({ gte: K.NS.user, lt: K.successor(K.NS.user) }).all();
    return vs.map((v) => JSON.parse(v) as UserRecord);
  }

  /** Throws NoSuchUser. */
  async deleteUser(id: string): Promise<void> {
    const k = K.userKey(id);
    const base = K.userKeysBase(id);
    await this.writer.submit([k], async (tx) => {
      if ((await tx.get(k)) === undefined) throw noSuchUser(id);
      for (const [ik] of await tx.range(base, K.successor(base))) {
        tx.del(ik);
        tx.del(K.NS.accessKey + ik.slice(base.length));
      }
      tx.del(k);
    });
  }

  /** Throws KeyExists, or NoSuchUser when the user does not exist. */
  async addKey(a: AccessKeyRecord): Promise<void> {
    const uk = K.userKey(a.userId);
    const ak = K.accessKeyKey(a.accessKey);
    const ik = K.userKeysKey(a.userId, a.accessKey);
    await this.writer.submit([uk, ak], async (tx) => {
      if ((await tx.get(uk)) === undefined) throw noSuchUser(a.userId);
      if ((await tx.get(ak)) !== undefined) {
        throw new MetadataError('KeyExists', `access key ${a.accessKey} exists`);
      }
      tx.put(ak, JSON.stringify(a));
      tx.put(ik, '');
    });
  }

  async getKey(accessKey: string): Promise<AccessKeyRecord | null> {
    return parse<AccessKeyRecord>(await this.db.get(K.accessKeyKey(accessKey)));
  }

  /** Sorted by access key. */
  async listKeys(userId?: string): Promise<AccessKeyRecord[]> {
    if (userId === undefined) {
      const vs = await this.db
        .values({ gte: K.NS.accessKey, lt: K.successor(K.NS.accessKey) })
        .all();
      return vs.map((v) => JSON.parse(v) as AccessKeyRecord);
    }
    const base = K.userKeysBase(userId);
    const iks = await this.db.keys({ gte: base, lt: K.successor(base) }).all();
    const vs = await this.db.getMany(iks.map((ik) => K.NS.accessKey + ik.slice(base.length)));
    return vs.filter((v) => v !== undefined).map((v) => JSON.parse(v) as AccessKeyRecord);
  }

  /** Idempotent: deleting an unknown key does nothing. */
  async deleteKey(accessKey: string): Promise<void> {
    const ak = K.accessKeyKey(accessKey);
    await this.writer.submit([ak], async (tx) => {
      const cur = parse<AccessKeyRecord>(await tx.get(ak));
      if (!cur) return;
      tx.del(ak);
      tx.del(K.userKeysKey(cur.userId, accessKey));
    });
  }

  // ---- Allocation ----

  async allocateNeedleIds(count: number): Promise<{ first: bigint; count: number }> {
    if (!Number.isInteger(count) || count < 1) throw new Error('count must be a positive integer');
    const ck = K.counterKey('needle');
    return this.writer.submit([ck], async (tx) => {
      const first = BigInt((await tx.get(ck)) ?? '1');
      const next = first + BigInt(count);
      if (next > 0xffff_ffff_ffff_ffffn) throw new Error('needle ids exhausted');
      tx.put(ck, next.toString());
      return { first, count };
    });
  }

  async allocateVolumeId(): Promise<number> {
    const ck = K.counterKey('volume');
    return this.writer.submit([ck], async (tx) => {
      const id = Number((await tx.get(ck)) ?? '1');
      if (id > 0xffff_ffff) throw new Error('volume ids exhausted');
      tx.put(ck, String(id + 1));
      return id;
    });
  }

  async close(): Promise<void> {
    await this.writer.close();
    await this.db.close();
  }
}

function noSuchBucket(name: string): MetadataError {
  return new MetadataError('NoSuchBucket', `no bucket ${name}`);
}

function noSuchUpload(uploadId: string): MetadataError {
  return new MetadataError('NoSuchUpload', `no upload ${uploadId}`);
}

function noSuchUser(id: string): MetadataError {
  return new MetadataError('NoSuchUser', `no user ${id}`);
}

/** The common prefix `key` rolls up into: up to the first delimiter after the prefix. */
function commonPrefix(
  key: string,
  prefixLength: number,
  delim: string | undefined,
): string | undefined {
  if (!delim) return undefined;
  const i = key.indexOf(delim, prefixLength);
  return i >= 0 ? key.slice(0, i + delim.length) : undefined;
}
