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

export function decodeObject(key: string, stored: string): ObjectRecord {
  return { key, ...(JSON.parse(recordJson(stored)) as Omit<ObjectRecord, 'key'>) };
}

export function decodeSummary(key: string, stored: string): ObjectSummary {
  return { key, ...(JSON.parse(summaryJson(stored)) as Omit<ObjectSummary, 'key'>) };
}

export function decodeObjectOrNull(key: string, v: string | undefined): ObjectRecord | null {
  return v === undefined ? null : decodeObject(key, v);
}
