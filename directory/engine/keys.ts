// Key layout of the LevelMetadata database (one LevelDB, bytewise comparator).
//
// Database keys are byte strings, held in JS as latin1 strings: one char per byte, so JS
// string comparison (`<`, sort()) is exactly LevelDB's byte order. Names and object keys
// enter as UTF-8 (`bytes()`), so the order of encoded keys is the order of their UTF-8 bytes:
// S3's listing order.
//
//   B <bucket>                                       → BucketRecord
//   O <bucket> 00 <key>                              → ObjectRecord without `key`
//   M <bucket> 00 esc(<key>) 00 01 <uploadId>        → UploadRecord
//   P <bucket> 00 esc(<key>) 00 01 esc(<uploadId>) 00 01 <partNumber, 5 digits> → PartRecord
//   u <userId>                                       → UserRecord
//   k <accessKey>                                    → AccessKeyRecord
//   K esc(<userId>) 00 01 <accessKey>                → '' (index: a user's keys)
//   C <name>                                         → counter: the next value, decimal
//   V                                                → format marker
//   N <nodeId>                                       → NodeRecord (topology.ts)
//   Y <volumeId, 10 digits>                          → VolumeRecord
//   "hot/" <bucket> 00 <key>                         → HotObjectRecord (model/hot.ts)
//   "xrep/" <volumeId, 10 digits> "/" <needleId, 20 digits> → ExtraReplicaRecord
//   00 "raft-applied"                                → last Raft log index applied, decimal
//   00 "raft-peers"                                  → Raft replica id → URL pairs (JSON)
//   00 "purge-keys"                                  → clear secrets replaced, not yet
//                                                      compacted out of this copy's files
//
// Bucket names cannot contain 00 (checked), and an object key is the last component, so raw
// bytes keep their order there. Where a free-form string is followed by another component it
// is escaped: 00 → 00 FF, and terminated by 00 01. UTF-8 never contains FF, the escape keeps
// byte order, and the terminator sorts before any continuation of the string, so
// (key, uploadId) pairs sort by key bytes, then uploadId, and one key's range never includes
// a longer key's entries.

export const NS = {
  bucket: 'B',
  object: 'O',
  upload: 'M',
  part: 'P',
  user: 'u',
  accessKey: 'k',
  userKeys: 'K',
  counter: 'C',
  format: 'V',
  node: 'N',
  volume: 'Y',
  // Words, not letters: the hot tables are read by people walking the database too
  // (issue 14). No other namespace starts with 'h' or 'x'.
  hot: 'hot/',
  xrep: 'xrep/',
  // Sorts before every other key, so a snapshot stream states its applied index first.
  raftApplied: '\x00raft-applied',
  /** Replica id → base URL of the Raft group, replicated with the state (JSON). */
  raftPeers: '\x00raft-peers',
  /**
   * Set (a count, decimal) by replaceKeySecret: a secret stored in clear was replaced, and
   * its old value may still be in this copy's files (and, on a Raft replica, in its log)
   * until they are compacted; whoever compacts them deletes it (meta-level.ts
   * compactAccessKeys). Sorts after raftApplied.
   */
  keyPurge: '\x00purge-keys',
} as const;

/** Terminates an escaped component. */
export const TERM = '\x00\x01';

const LONE_SURROGATE = /\p{Cs}/u;
const NON_ASCII = /[\u0080-\uffff]/;

/** The UTF-8 bytes of `s` as a latin1 string. Throws on lone surrogates (not encodable). */
export function bytes(s: string): string {
  // ASCII is its own UTF-8, char for byte: most names and keys, computed several times per
  // command (check, prefetch, apply), skip the two buffer copies.
  if (!NON_ASCII.test(s)) return s;
  if (LONE_SURROGATE.test(s)) throw new Error('name or key is not valid Unicode (lone surrogate)');
  return Buffer.from(s, 'utf8').toString('latin1');
}

/** Inverse of bytes(). */
export function text(b: string): string {
  return Buffer.from(b, 'latin1').toString('utf8');
}

/** Order-preserving, prefix-free-with-TERM escape of a byte string. */
export function esc(b: string): string {
  return b.includes('\x00') ? b.replaceAll('\x00', '\x00\xff') : b;
}

export function unesc(b: string): string {
  return b.includes('\x00') ? b.replaceAll('\x00\xff', '\x00') : b;
}

/**
 * The smallest byte string greater than every string that starts with `b`
 * (trailing FF bytes dropped, then the last byte incremented). Throws when none exists.
 */
export function successor(b: string): string {
  let end = b.length;
  while (end > 0 && b.charCodeAt(end - 1) === 0xff) end--;
  if (end === 0) throw new Error('no successor');
  return b.slice(0, end - 1) + String.fromCharCode(b.charCodeAt(end - 1) + 1);
}

function checkBucket(bucket: string): string {
  if (bucket.length === 0 || bucket.includes('\x00')) throw new Error('invalid bucket name');
  return bytes(bucket);
}

function checkObjectKey(key: string): string {
  if (key.length === 0) throw new Error('empty object key');
  return bytes(key);
}

function checkId(id: string, what: string): string {
  if (id.length === 0) throw new Error(`empty ${what}`);
  return bytes(id);
}

export function bucketKey(bucket: string): string {
  return NS.bucket + checkBucket(bucket);
}

/** Every object key of `bucket` starts with this. */
export function objectBase(bucket: string): string {
  return `${NS.object}${checkBucket(bucket)}\x00`;
}

export function objectKey(bucket: string, key: string): string {
  return objectBase(bucket) + checkObjectKey(key);
}

/** Every upload key of `bucket` starts with this. */
export function uploadBase(bucket: string): string {
  return `${NS.upload}${checkBucket(bucket)}\x00`;
}

export function uploadKey(bucket: string, key: string, uploadId: string): string {
  return uploadBase(bucket) + esc(checkObjectKey(key)) + TERM + checkId(uploadId, 'upload id');
}

/** Splits the part of an upload key after uploadBase() into (key bytes, uploadId bytes). */
export function splitUploadRel(rel: string): { key: string; uploadId: string } {
  const t = rel.indexOf(TERM);
  return { key: unesc(rel.slice(0, t)), uploadId: rel.slice(t + TERM.length) };
}

export const MAX_PART_NUMBER = 99_999;

/** Every part key of one upload starts with this. */
export function partBase(bucket: string, key: string, uploadId: string): string {
  return `${NS.part}${checkBucket(bucket)}\x00${esc(checkObjectKey(key))}${TERM}${esc(checkId(uploadId, 'upload id'))}${TERM}`;
}

export function partSuffix(partNumber: number): string {
  if (!Number.isInteger(partNumber) || partNumber < 0 || partNumber > MAX_PART_NUMBER) {
    throw new Error(`invalid part number ${partNumber}`);
  }
  return String(partNumber).padStart(5, '0');
}

export function userKey(id: string): string {
  return NS.user + checkId(id, 'user id');
}

export function accessKeyKey(accessKey: string): string {
  return NS.accessKey + checkId(accessKey, 'access key');
}

export function userKeysBase(userId: string): string {
  return NS.userKeys + esc(checkId(userId, 'user id')) + TERM;
}

export function userKeysKey(userId: string, accessKey: string): string {
  return userKeysBase(userId) + checkId(accessKey, 'access key');
}

export function counterKey(name: string): string {
  return NS.counter + name;
}

export function nodeKey(id: string): string {
  return NS.node + bytes(id);
}

export function volumeKey(id: number): string {
  return NS.volume + String(id).padStart(10, '0');
}

export function hotKey(bucket: string, key: string): string {
  return `${NS.hot}${checkBucket(bucket)}\x00${checkObjectKey(key)}`;
}

/** Needle ids are u64 decimals: padded to 20 digits, key order is numeric order. */
export function xrepKey(volumeId: number, needleId: string): string {
  if (!/^\d{1,20}$/.test(needleId) || BigInt(needleId) > 0xffff_ffff_ffff_ffffn) {
    throw new Error(`needle id must be a u64 decimal, got ${JSON.stringify(needleId)}`);
  }
  return `${NS.xrep}${String(volumeId).padStart(10, '0')}/${needleId.padStart(20, '0')}`;
}
