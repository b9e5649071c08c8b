// Directory mutations as data. Every mutating MetadataStore call becomes a Command, and
// applyCommand is the only place its read-modify-write logic lives: LevelMetadata runs it
// through the Writer for local calls, and Raft replicas run the same commands from the log.
// For replicas to stay identical, applyCommand must be a pure function of (committed state
// seen through the Tx, command): no clock, no randomness, no reads outside the Tx. A thrown
// error is the command's outcome on every replica alike, and it leaves no writes.
//
// Commands cross the network and sit in the Raft log as JSON, so their arguments must survive
// a JSON round trip (no bigint, no undefined that matters: an absent `cond` becomes null).
import {
  type AccessKeyRecord,
  type BucketGuard,
  type BucketRecord,
  MetadataError,
  type ObjectRecord,
  type PartRecord,
  type PutCondition,
  type UploadRecord,
  type UserRecord,
} from '../model/api.ts';
import { type Command, WRITE_METHODS, type WriteMethod } from '../model/methods.ts';
import { decodeObjectOrNull, encodeObject } from '../model/object-codec.ts';
import { applyHot, hotPrefetch } from './hot-commands.ts';
import * as K from './keys.ts';
import { applyTopology, topologyPrefetch } from './topology-commands.ts';
import type { Tx } from './tx.ts';

export type { Command, CommandOf, CommandResult } from '../model/methods.ts';

/** The methods declared 'write' in model/methods.ts. */
export const MUTATING_METHODS = WRITE_METHODS;
export type MutatingMethod = WriteMethod;

const OPS: ReadonlySet<string> = new Set(MUTATING_METHODS);

const plainFlags = (v: unknown): boolean =>
  v === null ||
  v === undefined ||
  (typeof v === 'object' &&
    Object.getPrototypeOf(v) === Object.prototype &&
    Object.values(v as object).every(
      (x) => x === undefined || typeof x === 'string' || typeof x === 'boolean',
    ));

/**
 * The command applies the same after a JSON round trip (what followers get from the log):
 * the object writes whose arguments are strings and a condition of flags. A leader may
 * apply these objects instead of parsing its own entry back.
 */
export function isJsonStable(cmd: Command): boolean {
  const a = cmd.args as unknown[];
  if (cmd.op === 'putObjectStored') {
    return (
      a.length <= 4 &&
      typeof a[0] === 'string' &&
      typeof a[1] === 'string' &&
      typeof a[2] === 'string' &&
      plainFlags(a[3])
    );
  }
  if (cmd.op === 'deleteObject') {
    return (
      a.length <= 3 && typeof a[0] === 'string' && typeof a[1] === 'string' && plainFlags(a[2])
    );
  }
  return false;
}

/** The command's op is one this build can apply (a malformed one still is: its error is its outcome). */
export function isKnownCommand(cmd: { op: unknown }): boolean {
  return typeof cmd === 'object' && cmd !== null && OPS.has(cmd.op as string);
}

/**
 * The command to put in the Raft log for `cmd`: putObject as putObjectStored (no replica
 * encodes the record again, the largest single cost of applying one, and the log holds a
 * string to parse instead of the record's object tree); others as they are.
 */
export function proposedForm(cmd: Command): Command {
  if (cmd.op !== 'putObject') return cmd;
  const [bucket, rec, cond] = cmd.args;
  return { op: 'putObjectStored', args: [bucket, rec.key, encodeObject(rec), cond ?? null] };
}

const NEEDLE_COUNTER = K.counterKey('needle');
const VOLUME_COUNTER = K.counterKey('volume');

/**
 * The keys a command reads with Tx.get: the Writer fetches them for a whole batch with one
 * getMany. Throws (like the method would) when a name or key cannot be encoded.
 */
export function prefetchKeys(cmd: Command): string[] {
  switch (cmd.op) {
    case 'createBucket':
      return [K.bucketKey(cmd.args[0].name)];
    case 'deleteBucket':
      return [K.bucketKey(cmd.args[0])];
    case 'putObject': {
      const [bucket, rec] = cmd.args;
      return [K.bucketKey(bucket), K.objectKey(bucket, rec.key)];
    }
    case 'putObjectStored':
      return [K.bucketKey(cmd.args[0]), K.objectKey(cmd.args[0], cmd.args[1])];
    case 'deleteObject':
      return [K.bucketKey(cmd.args[0]), K.objectKey(cmd.args[0], cmd.args[1])];
    case 'createUpload':
      return [K.bucketKey(cmd.args[0].bucket)];
    case 'putPart': {
      const [bucket, key, uploadId, part, guard] = cmd.args;
      const keys = [K.uploadKey(bucket, key, uploadId), partKey(bucket, key, uploadId, part)];
      return guard?.bucketOwner != null ? [...keys, K.bucketKey(bucket)] : keys;
    }
    case 'completeUpload': {
      const [bucket, key, uploadId, , , guard] = cmd.args;
      const keys = [K.uploadKey(bucket, key, uploadId), K.objectKey(bucket, key)];
      return guard?.bucketOwner != null ? [...keys, K.bucketKey(bucket)] : keys;
    }
    case 'abortUpload': {
      const [bucket, key, uploadId, guard] = cmd.args;
      const keys = [K.uploadKey(bucket, key, uploadId)];
      return guard?.bucketOwner != null ? [...keys, K.bucketKey(bucket)] : keys;
    }
    case 'createUser':
      return [K.userKey(cmd.args[0].id)];
    case 'deleteUser':
      return [K.userKey(cmd.args[0])];
    case 'addKey':
      return [K.userKey(cmd.args[0].userId), K.accessKeyKey(cmd.args[0].accessKey)];
    case 'deleteKey':
    case 'replaceKeySecret':
      return [K.accessKeyKey(cmd.args[0])];
    case 'allocateNeedleIds':
      return [NEEDLE_COUNTER];
    case 'allocateVolumeId':
      return [VOLUME_COUNTER];
    case 'putHotObject':
    case 'deleteHotObject':
    case 'setExtraReplicas':
      return hotPrefetch(cmd);
    default:
      return topologyPrefetch(cmd);
  }
}

/**
 * Throws when the command is malformed whatever the state (bad names, part numbers, …).
 * A proposer should check before a command enters the Raft log; applyCommand checks again
 * because a replica must not trust the log's producer (the error is then the outcome).
 */
export function checkCommand(cmd: Command): void {
  if (!OPS.has(cmd.op)) throw new Error(`unknown command ${String(cmd.op)}`);
  prefetchKeys(cmd);
  switch (cmd.op) {
    case 'putObjectStored':
      if (typeof cmd.args[2] !== 'string') throw new Error('putObjectStored: stored must be text');
      break;
    case 'putPart':
      if (cmd.args[3].partNumber < 1) throw new Error('part numbers start at 1');
      break;
    case 'completeUpload':
      if (cmd.args[3].key !== cmd.args[1]) {
        throw new Error('completeUpload: rec.key differs from key');
      }
      break;
    case 'allocateNeedleIds': {
      const count = cmd.args[0];
      if (!Number.isInteger(count) || count < 1)
        throw new Error('count must be a positive integer');
      break;
    }
  }
}

/** Runs `cmd` against `tx` and returns the method's result; throws its error. */
export async function applyCommand(tx: Tx, cmd: Command): Promise<unknown> {
  checkCommand(cmd);
  switch (cmd.op) {
    case 'createBucket':
      return createBucket(tx, ...cmd.args);
    case 'deleteBucket':
      return deleteBucket(tx, ...cmd.args);
    case 'putObject': {
      const [bucket, rec, cond] = cmd.args;
      return putStored(tx, bucket, rec.key, encodeObject(rec), cond);
    }
    case 'putObjectStored':
      return putStored(tx, ...cmd.args);
    case 'deleteObject':
      return deleteObject(tx, ...cmd.args);
    case 'createUpload':
      return createUpload(tx, ...cmd.args);
    case 'putPart':
      return putPart(tx, ...cmd.args);
    case 'completeUpload':
      return completeUpload(tx, ...cmd.args);
    case 'abortUpload':
      return abortUpload(tx, ...cmd.args);
    case 'createUser':
      return createUser(tx, ...cmd.args);
    case 'deleteUser':
      return deleteUser(tx, ...cmd.args);
    case 'addKey':
      return addKey(tx, ...cmd.args);
    case 'deleteKey':
      return deleteKey(tx, ...cmd.args);
    case 'replaceKeySecret':
      return replaceKeySecret(tx, ...cmd.args);
    case 'allocateNeedleIds':
      return allocateNeedleIds(tx, ...cmd.args);
    case 'allocateVolumeId':
      return allocateVolumeId(tx);
    case 'putHotObject':
    case 'deleteHotObject':
    case 'setExtraReplicas':
      return applyHot(tx, cmd);
    default:
      return applyTopology(tx, cmd);
  }
}

// ---- Record encoding (shared with LevelMetadata's reads) ----

export function parse<T>(v: string | undefined): T | null {
  return v === undefined ? null : (JSON.parse(v) as T);
}

export function noSuchBucket(name: string): MetadataError {
  return new MetadataError('NoSuchBucket', `no bucket ${name}`);
}

export function noSuchUpload(uploadId: string): MetadataError {
  return new MetadataError('NoSuchUpload', `no upload ${uploadId}`);
}

function noSuchUser(id: string): MetadataError {
  return new MetadataError('NoSuchUser', `no user ${id}`);
}

function partKey(bucket: string, key: string, uploadId: string, part: PartRecord): string {
  return K.partBase(bucket, key, uploadId) + K.partSuffix(part.partNumber);
}

function stripQuotes(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}

function chunkId(c: { volumeId: number; needleId: string }): string {
  return `${c.volumeId}/${c.needleId}`;
}

/**
 * Throws NoSuchBucket, or BucketOwnerChanged when the guard expects another owner: the
 * caller's access check saw a cached record of a bucket since re-created by someone else.
 * (From the log, an absent guard or owner arrives as null.)
 */
async function checkBucket(tx: Tx, bucket: string, guard?: BucketGuard | null): Promise<void> {
  const v = await tx.get(K.bucketKey(bucket));
  if (v === undefined) throw noSuchBucket(bucket);
  const expected = guard?.bucketOwner;
  if (expected != null && parse<BucketRecord>(v)?.owner !== expected) {
    throw new MetadataError('BucketOwnerChanged', `bucket ${bucket} is not owned by ${expected}`);
  }
}

// ---- The mutations ----

async function createBucket(tx: Tx, b: BucketRecord): Promise<void> {
  const bk = K.bucketKey(b.name);
  const cur = parse<BucketRecord>(await tx.get(bk));
  if (cur) {
    throw cur.owner === b.owner
      ? new MetadataError('BucketAlreadyOwnedByYou', `bucket ${b.name} is already yours`)
      : new MetadataError('BucketAlreadyExists', `bucket ${b.name} exists`);
  }
  tx.put(bk, JSON.stringify(b));
}

async function deleteBucket(tx: Tx, name: string, guard?: BucketGuard | null): Promise<void> {
  const bk = K.bucketKey(name);
  await checkBucket(tx, name, guard);
  for (const base of [K.objectBase(name), K.uploadBase(name)]) {
    if ((await tx.range(base, K.successor(base), 1)).length > 0) {
      throw new MetadataError('BucketNotEmpty', `bucket ${name} is not empty`);
    }
  }
  tx.del(bk);
}

async function putStored(
  tx: Tx,
  bucket: string,
  key: string,
  stored: string,
  cond?: PutCondition | null,
): Promise<ObjectRecord | null> {
  const ok = K.objectKey(bucket, key);
  await checkBucket(tx, bucket, cond);
  const prev = decodeObjectOrNull(key, await tx.get(ok));
  if (cond?.ifNoneMatch && prev) {
    throw new MetadataError('PreconditionFailed', `${key} exists (If-None-Match)`);
  }
  if (cond?.ifMatch !== undefined && cond.ifMatch !== null) {
    const want = stripQuotes(cond.ifMatch);
    if (!prev || (want !== '*' && want !== prev.etag)) {
      throw new MetadataError('PreconditionFailed', `${key}: etag does not match (If-Match)`);
    }
  }
  tx.put(ok, stored);
  return prev;
}

async function deleteObject(
  tx: Tx,
  bucket: string,
  key: string,
  guard?: BucketGuard | null,
): Promise<ObjectRecord | null> {
  const ok = K.objectKey(bucket, key);
  await checkBucket(tx, bucket, guard);
  const prev = decodeObjectOrNull(key, await tx.get(ok));
  if (prev) tx.del(ok);
  return prev;
}

async function createUpload(tx: Tx, u: UploadRecord, guard?: BucketGuard | null): Promise<void> {
  await checkBucket(tx, u.bucket, guard);
  tx.put(K.uploadKey(u.bucket, u.key, u.uploadId), JSON.stringify(u));
}

async function putPart(
  tx: Tx,
  bucket: string,
  key: string,
  uploadId: string,
  part: PartRecord,
  guard?: BucketGuard | null,
): Promise<PartRecord | null> {
  const pk = partKey(bucket, key, uploadId, part);
  if ((await tx.get(K.uploadKey(bucket, key, uploadId))) === undefined) {
    throw noSuchUpload(uploadId);
  }
  if (guard?.bucketOwner != null) await checkBucket(tx, bucket, guard);
  const prev = parse<PartRecord>(await tx.get(pk));
  tx.put(pk, JSON.stringify(part));
  return prev;
}

async function completeUpload(
  tx: Tx,
  bucket: string,
  key: string,
  uploadId: string,
  rec: ObjectRecord,
  usedParts: number[],
  guard?: BucketGuard | null,
): Promise<{ previous: ObjectRecord | null; unused: PartRecord[] }> {
  const uk = K.uploadKey(bucket, key, uploadId);
  const ok = K.objectKey(bucket, key);
  const base = K.partBase(bucket, key, uploadId);
  if ((await tx.get(uk)) === undefined) throw noSuchUpload(uploadId);
  if (guard?.bucketOwner != null) await checkBucket(tx, bucket, guard);
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
  // A part replaced after the caller listed it has had its chunks freed: refuse them.
  if (!rec.chunks.every((c) => usedChunks.has(chunkId(c)))) {
    throw new MetadataError('InvalidPart', 'a part was replaced while completing the upload');
  }
  const previous = decodeObjectOrNull(key, await tx.get(ok));
  tx.put(ok, encodeObject(rec));
  tx.del(uk);
  for (const [k] of entries) tx.del(k);
  return { previous, unused: parts.filter((p) => !used.has(p.partNumber)) };
}

async function abortUpload(
  tx: Tx,
  bucket: string,
  key: string,
  uploadId: string,
  guard?: BucketGuard | null,
): Promise<PartRecord[]> {
  const uk = K.uploadKey(bucket, key, uploadId);
  const base = K.partBase(bucket, key, uploadId);
  if ((await tx.get(uk)) === undefined) throw noSuchUpload(uploadId);
  if (guard?.bucketOwner != null) await checkBucket(tx, bucket, guard);
  const entries = await tx.range(base, K.successor(base));
  tx.del(uk);
  for (const [k] of entries) tx.del(k);
  return entries.map(([, v]) => JSON.parse(v) as PartRecord);
}

async function createUser(tx: Tx, u: UserRecord): Promise<void> {
  const k = K.userKey(u.id);
  if ((await tx.get(k)) !== undefined) throw new MetadataError('UserExists', `user ${u.id} exists`);
  tx.put(k, JSON.stringify(u));
}

async function deleteUser(tx: Tx, id: string): Promise<void> {
  const k = K.userKey(id);
  const base = K.userKeysBase(id);
  if ((await tx.get(k)) === undefined) throw noSuchUser(id);
  for (const [ik] of await tx.range(base, K.successor(base))) {
    tx.del(ik);
    tx.del(K.NS.accessKey + ik.slice(base.length));
  }
  tx.del(k);
}

async function addKey(tx: Tx, a: AccessKeyRecord): Promise<void> {
  const ak = K.accessKeyKey(a.accessKey);
  if ((await tx.get(K.userKey(a.userId))) === undefined) throw noSuchUser(a.userId);
  if ((await tx.get(ak)) !== undefined) {
    throw new MetadataError('KeyExists', `access key ${a.accessKey} exists`);
  }
  tx.put(ak, JSON.stringify(a));
  tx.put(K.userKeysKey(a.userId, a.accessKey), '');
}

async function deleteKey(tx: Tx, accessKey: string): Promise<void> {
  const ak = K.accessKeyKey(accessKey);
  const cur = parse<AccessKeyRecord>(await tx.get(ak));
  if (!cur) return;
  tx.del(ak);
  tx.del(K.userKeysKey(cur.userId, accessKey));
}

async function replaceKeySecret(
  tx: Tx,
  accessKey: string,
  expected: string,
  secretKey: string,
): Promise<boolean> {
  const ak = K.accessKeyKey(accessKey);
  const cur = parse<AccessKeyRecord>(await tx.get(ak));
  if (!cur || cur.secretKey !== expected) return false;
  tx.put(ak, JSON.stringify({ ...cur, secretKey }));
  // The old value stays in the files (and a Raft replica's log) until compacted: recorded
  // with the state, so every replica applying this, or installing a snapshot of it, does.
  tx.put(K.NS.keyPurge, String(Number((await tx.get(K.NS.keyPurge)) ?? '0') + 1));
  return true;
}

async function allocateNeedleIds(tx: Tx, count: number): Promise<{ first: bigint; count: number }> {
  const first = BigInt((await tx.get(NEEDLE_COUNTER)) ?? '1');
  const next = first + BigInt(count);
  if (next > 0xffff_ffff_ffff_ffffn) throw new Error('needle ids exhausted');
  tx.put(NEEDLE_COUNTER, next.toString());
  return { first, count };
}

async function allocateVolumeId(tx: Tx): Promise<number> {
  const id = Number((await tx.get(VOLUME_COUNTER)) ?? '1');
  if (id > 0xffff_ffff) throw new Error('volume ids exhausted');
  tx.put(VOLUME_COUNTER, String(id + 1));
  return id;
}
