// A short name for one version of an object record: gateways renew their record copies'
// leases by it (cache/README.md), so the directory can tell a copy is still current.
import { createHash } from 'node:crypto';
import type { ObjectRecord } from './api.ts';

/**
 * Names one version of an object record: any committed write (new needles, new time, new
 * metadata) changes it. Canonical (sorted keys), so the gateway's copy decoded from the
 * wire and the directory's from its database give the same stamp.
 */
export function recordStamp(rec: ObjectRecord): string {
  return createHash('sha256').update(canonical(rec)).digest('base64url').slice(0, 22);
}

function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'u';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
}
