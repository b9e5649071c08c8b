// How an object record is stored (the value under its object key; the key itself is in the
// database key). Two JSON texts joined by a newline: the listing summary (size, etag,
// lastModified, owner), then everything else. A listing page needs only the first part, and
// JSON.stringify never writes a raw newline, so the first "\n" is the boundary: a replica
// slices it off without parsing and the gateway parses a third of the bytes it used to.
// Values written before this format are one JSON object without a newline; both decode.
import type { ObjectRecord, ObjectSummary } from './api.ts';

export function encodeObject(rec: ObjectRecord): string {
  const { key: _key, size, etag, lastModified, owner, ...rest } = rec;
  return `${JSON.stringify({ size, etag, lastModified, owner })}\n${JSON.stringify(rest)}`;
}

/** The record as one JSON object without its key: "{…}" (the stored text itself for the old form). */
export function recordJson(stored: string): string {
  const nl = stored.indexOf('\n');
  if (nl < 0) return stored;
  // Both halves are objects' texts, "{…}" (or "{}": nothing to join).
  if (nl === 2) return stored.slice(3);
  if (stored.length - nl === 3) return stored.slice(0, nl);
  return `${stored.slice(0, nl - 1)},${stored.slice(nl + 2)}`;
}

/** The summary as one JSON object without the key. */
export function summaryJson(stored: string): string {
  const nl = stored.indexOf('\n');
  if (nl >= 0) return stored.slice(0, nl);
  const { size, etag, lastModified, owner } = JSON.parse(stored) as ObjectRecord;
  return JSON.stringify({ size, etag, lastModified, owner });
}

const SUMMARY_FIELDS = ['size', 'etag', 'lastModified', 'owner'];

/**
 * Throws unless `stored` is what encodeObject writes: a summary object of exactly the four
 * fields, a newline, and an object of the other fields. For stored forms that come over the
 * wire (putObjectStored): a malformed one would break every listing page holding its key
 * and leave the key impossible to overwrite or delete.
 */
export function checkStored(stored: string): void {
  const nl = stored.indexOf('\n');
  if (nl < 0 || stored.indexOf('\n', nl + 1) >= 0) {
    throw new Error('stored object: two JSON texts split by one newline expected');
  }
  const head: unknown = JSON.parse(stored.slice(0, nl));
  const rest: unknown = JSON.parse(stored.slice(nl + 1));
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(head) || !isObject(rest)) throw new Error('stored object: objects expected');
  const keys = Object.keys(head);
  const ok =
    keys.length === SUMMARY_FIELDS.length &&
    SUMMARY_FIELDS.every((f, i) => keys[i] === f) &&
    Number.isSafeInteger(head.size) &&
    (head.size as number) >= 0 &&
    typeof head.etag === 'string' &&
    Number.isFinite(head.lastModified) &&
    typeof head.owner === 'string';
  if (!ok) throw new Error('stored object: summary must be {size, etag, lastModified, owner}');
  for (const f of [...SUMMARY_FIELDS, 'key']) {
    if (f in rest) throw new Error(`stored object: ${f} belongs in the summary`);
  }
  if (!isObject(rest.userMeta) || !Array.isArray(rest.chunks)) {
    throw new Error('stored object: userMeta and chunks expected');
  }
}

export function decodeObject(key: string, stored: string): ObjectRecord {
  return { key, ...(JSON.parse(recordJson(stored)) as Omit<ObjectRecord, 'key'>) };
}

export function decodeSummary(key: string, stored: string): ObjectSummary {
  return { key, ...(JSON.parse(summaryJson(stored)) as Omit<ObjectSummary, 'key'>) };
}

export function decodeObjectOrNull(key: string, v: string | undefined): ObjectRecord | null {
  return v === undefined ? null : decodeObject(key, v);
}
