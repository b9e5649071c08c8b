// MetadataStore on one classic-level (LevelDB) database: the single-node directory.
//
// Key layout: keys.ts. Every mutation goes through the Writer (writer.ts): mutations run in
// one serial order, each read-modify-write sees all earlier ones, and concurrent mutations
// are group-committed, one synced LevelDB batch per group; a promise resolves only after
// its batch is on disk. Multi-record changes (complete/abort upload, user deletion) are one
// batch, hence atomic. Reads go straight to LevelDB and see committed state only.
//
// The mutations themselves are Commands (commands.ts), so that a Raft replica can apply the
// same ones from its log: applyReplicated, recording the applied log index in the same batch.
// Each write method of the API (model/methods.ts) is its command submitted to the Writer.
import { ClassicLevel } from 'classic-level';
import type {
  AccessKeyRecord,
  BucketRecord,
  ListObjectsOptions,
  ListObjectsResult,
  ListUploadsOptions,
  ListUploadsResult,
  MetadataStore,
  ObjectRecord,
  ObjectSummary,
  PartRecord,
  PutCondition,
  UploadRecord,
  UserRecord,
} from '../model/api.ts';
import type { ExtraReplicaRecord, HotObjectRecord } from '../model/hot.ts';
import {
  type Command,
  type CommandResult,
  defineMethods,
  trimArgs,
  WRITE_METHODS,
  type WriteMethod,
} from '../model/methods.ts';
import { checkStored, decodeObjectOrNull } from '../model/object-codec.ts';
import type { NodeRecord, VolumeRecord } from '../model/topology.ts';
import { applyCommand, noSuchBucket, noSuchUpload, parse, prefetchKeys } from './commands.ts';
import { Cursor } from './cursor.ts';
import * as K from './keys.ts';
import { commonPrefix, listObjectPage, type PageForm } from './object-listing.ts';
import { type DB, type Outcome, type Tx, Writer, type WriterStats } from './writer.ts';

const FORMAT = '1';
/** Sorts after every key here: namespaces are ASCII letters and "\x00". */
const PAST_ALL_KEYS = '\xff\xff\xff\xff';

/** Keys as latin1 byte strings: one char per byte, so JS order is LevelDB's byte order. */
const latin1 = {
  name: 'latin1',
  format: 'buffer' as const,
  encode: (s: string): Buffer => Buffer.from(s, 'latin1'),
  decode: (b: Buffer): string => b.toString('latin1'),
};

function checkMax(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0) throw new Error(`${what} must be a non-negative integer`);
}

// The write methods are generated below (one command each); the class declares their types.
type Generated = Exclude<WriteMethod, 'putObjectStored'>;
export interface LevelMetadata extends Pick<MetadataStore, Generated> {}

// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: see the interface above
export class LevelMetadata implements MetadataStore {
  static {
    defineMethods(
      LevelMetadata.prototype,
      WRITE_METHODS,
      (op) =>
        function (this: LevelMetadata, ...args: unknown[]) {
          return this.submit({ op, args: trimArgs(args) } as Command);
        },
    );
  }

  private readonly writer: Writer;

  private constructor(private readonly db: DB) {
    this.writer = new Writer(db);
  }

  static async open(dir: string): Promise<LevelMetadata> {
    const db: DB = new ClassicLevel<string, string>(dir, {
      keyEncoding: latin1,
      valueEncoding: 'utf8',
      createIfMissing: true,
      // LevelDB's 4 MiB memtable and 8 MiB block cache are sized for embedded use: a
      // directory applying ~10k records/s flushed and compacted level 0 several times a
      // second, and listing pages missed the cache.
      writeBufferSize: 32 * 1024 * 1024,
      cacheSize: 64 * 1024 * 1024,
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

  private async submit<C extends Command>(cmd: C): Promise<CommandResult<C['op']>> {
    const run = (tx: Tx) => applyCommand(tx, cmd) as Promise<CommandResult<C['op']>>;
    return this.writer.submit(prefetchKeys(cmd), run);
  }

  // ---- Replication ----

  /**
   * Applies committed Raft log entries in order, up to log index `appliedIndex`, and records
   * that index in the same atomic batch, so after a crash the state and the index agree. Not
   * synced: the log is, and is replayed from the index found (see sync()).
   * Resolves with each command's outcome (a failed command is an outcome, not a rejection).
   */
  async applyReplicated(
    cmds: Command[],
    appliedIndex: number,
    peers?: Array<[string, string]>,
  ): Promise<Outcome[]> {
    if (!Number.isSafeInteger(appliedIndex) || appliedIndex < 0) {
      throw new Error(`invalid applied index ${appliedIndex}`);
    }
    const extra: Array<[string, string]> = [[K.NS.raftApplied, String(appliedIndex)]];
    if (peers) extra.push([K.NS.raftPeers, JSON.stringify(peers)]);
    return this.writer.applyBatch(cmds, extra);
  }

  /**
   * Makes every applyReplicated batch that has completed durable (they are not synced one
   * by one). A synced write alone is not enough: LevelDB does not fsync the log file it
   * retires when a memtable fills. Compacting a range first moves the memtables into table
   * files, which LevelDB syncs (with the manifest), so everything written before is on disk.
   */
  async sync(): Promise<void> {
    // A range past every key: LevelDB flushes the memtables first, then finds no table
    // file to compact (a range over real keys compacted hundreds of MB each time).
    await this.db.compactRange(PAST_ALL_KEYS, PAST_ALL_KEYS);
  }

  /**
   * Rewrites the table files holding access-key records, so that values they replaced are
   * gone from disk, not only shadowed: after secrets stored in clear were sealed
   * (gateway/users.ts sealStoredKeys), a copy of the files no longer holds them. Then
   * clears the purge mark replaceKeySecret set, if it is still `mark` (by default, as read
   * before compacting): a replacement made meanwhile leaves its mark for the next time.
   */
  async compactAccessKeys(mark?: string): Promise<void> {
    const seen = mark ?? (await this.keyPurgeMark());
    await this.db.compactRange(K.NS.accessKey, `${K.NS.accessKey}\uffff`);
    if (seen === undefined) return;
    await this.writer.submit([K.NS.keyPurge], async (tx) => {
      if ((await tx.get(K.NS.keyPurge)) === seen) tx.del(K.NS.keyPurge);
    });
  }

  /**
   * Set (and bumped) by every replaceKeySecret that replaced a secret, until
   * compactAccessKeys has purged the old values from this copy's files; undefined: none.
   */
  keyPurgeMark(): Promise<string | undefined> {
    return this.db.get(K.NS.keyPurge);
  }

  /** The replica URLs last recorded by applyReplicated. */
  async raftPeers(): Promise<Array<[string, string]>> {
    const v = await this.db.get(K.NS.raftPeers);
    return v === undefined ? [] : (JSON.parse(v) as Array<[string, string]>);
  }

  /** The last log index applyReplicated recorded; 0 when none. */
  async appliedIndex(): Promise<number> {
    return Number((await this.db.get(K.NS.raftApplied)) ?? '0');
  }

  /**
   * Every entry in key order, as raw bytes, as of this call: LevelDB gives the iterator an
   * implicit snapshot when it is created (synchronously, here), and the Writer's batches are
   * atomic, so it sees a whole number of batches and nothing written after. For
   * sm-snapshot.ts; the caller must close it.
   */
  rawIterator() {
    return this.db.iterator<Buffer, Buffer>({ keyEncoding: 'buffer', valueEncoding: 'buffer' });
  }

  // ---- Buckets ----

  async getBucket(name: string): Promise<BucketRecord | null> {
    return parse<BucketRecord>(await this.db.get(K.bucketKey(name)));
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

  async putObjectStored(
    bucket: string,
    key: string,
    stored: string,
    cond: PutCondition | null,
  ): Promise<ObjectRecord | null> {
    checkStored(stored); // from the wire: a replica stores the text as it is
    return this.submit({ op: 'putObjectStored', args: [bucket, key, stored, cond] });
  }

  async getObject(bucket: string, key: string): Promise<ObjectRecord | null> {
    return decodeObjectOrNull(key, await this.db.get(K.objectKey(bucket, key)));
  }

  /** Many records in one read of the database (the cache's lease renewals). */
  async getObjects(keys: [bucket: string, key: string][]): Promise<(ObjectRecord | null)[]> {
    const vs = await this.db.getMany(keys.map(([b, k]) => K.objectKey(b, k)));
    return vs.map((v, i) => decodeObjectOrNull(keys[i]![1], v));
  }

  /**
   * Entries are the keys under `prefix` that are strictly after `after`, each rolled up into
   * its common prefix when the delimiter occurs after the prefix; a common prefix equal to
   * `after` (a continuation from it) is not repeated, so the keys under it are skipped. A
   * common prefix is therefore returned when `after` lies inside it (a start-after in the
   * middle of a "folder") — AWS's behaviour as far as we know; the conformance suite should
   * confirm it. maxKeys 0 returns an empty, untruncated page. The records are parsed when
   * `objects` is first read, and not at all when the page is only served (object-listing.ts).
   */
  listObjects(bucket: string, opts: ListObjectsOptions): Promise<ListObjectsResult> {
    return this.listPage(bucket, opts, 'record');
  }

  listObjectSummaries(
    bucket: string,
    opts: ListObjectsOptions,
  ): Promise<ListObjectsResult<ObjectSummary>> {
    return this.listPage(bucket, opts, 'summary');
  }

  private async listPage<F extends PageForm>(bucket: string, opts: ListObjectsOptions, form: F) {
    checkMax(opts.maxKeys, 'maxKeys');
    // The page is read while the bucket is looked up (one trip to LevelDB's threads less);
    // a missing bucket still wins over whatever the page came to.
    const exists = this.db.get(K.bucketKey(bucket));
    const page = listObjectPage(this.db, bucket, opts, form);
    const settled = page.then(
      () => undefined,
      () => undefined,
    );
    if ((await exists) === undefined) {
      await settled;
      throw noSuchBucket(bucket);
    }
    return page;
  }

  // ---- Multipart uploads ----

  async getUpload(bucket: string, key: string, uploadId: string): Promise<UploadRecord | null> {
    return parse<UploadRecord>(await this.db.get(K.uploadKey(bucket, key, uploadId)));
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

  // ---- Topology (nodes and volumes) ----

  async listNodes(): Promise<NodeRecord[]> {
    const vs = await this.db.values({ gte: K.NS.node, lt: K.successor(K.NS.node) }).all();
    return vs.map((v) => JSON.parse(v) as NodeRecord);
  }

  async getVolume(id: number): Promise<VolumeRecord | null> {
    if (!Number.isInteger(id) || id < 1 || id > 0xffff_ffff) return null;
    return parse<VolumeRecord>(await this.db.get(K.volumeKey(id)));
  }

  async listVolumes(): Promise<VolumeRecord[]> {
    const vs = await this.db.values({ gte: K.NS.volume, lt: K.successor(K.NS.volume) }).all();
    return vs.map((v) => JSON.parse(v) as VolumeRecord);
  }

  // ---- Hot objects and their extra replicas (model/hot.ts) ----

  async listHotObjects(): Promise<HotObjectRecord[]> {
    const vs = await this.db.values({ gte: K.NS.hot, lt: K.successor(K.NS.hot) }).all();
    return vs.map((v) => JSON.parse(v) as HotObjectRecord);
  }

  async listExtraReplicas(): Promise<ExtraReplicaRecord[]> {
    const vs = await this.db.values({ gte: K.NS.xrep, lt: K.successor(K.NS.xrep) }).all();
    return vs.map((v) => JSON.parse(v) as ExtraReplicaRecord);
  }

  // ---- Users and keys ----

  async getUser(id: string): Promise<UserRecord | null> {
    return parse<UserRecord>(await this.db.get(K.userKey(id)));
  }

  async listUsers(): Promise<UserRecord[]> {
    const vs = await this.db.values({ gte: K.NS.user, lt: K.successor(K.NS.user) }).all();
    return vs.map((v) => JSON.parse(v) as UserRecord);
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

  async close(): Promise<void> {
    await this.writer.close();
    await this.db.close();
  }
}
