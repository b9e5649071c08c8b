// The hot-object tables of issue 14 (cache/README.md): which objects are hot, at which
// cache level, and which extra replicas their needles have. Both are replicated (Raft),
// written by the directory leader's policy (cluster/hotness.ts) and read by every gateway
// through reportReads, whose answer is the lease protocol's view of the table.
import { createHash } from 'node:crypto';
import type { ObjectRecord } from './api.ts';

/**
 * replicas: extra copies of its needle on more stores; store: stores keep it in their
 * caches too; gateway: gateways keep record and bytes (under a lease); cooling: leaving
 * gateway level — no gateway caches it, but writers still wait out the leases.
 */
export type HotLevel = 'replicas' | 'store' | 'gateway' | 'cooling';

export interface HotObjectRecord {
  bucket: string;
  key: string;
  /** The object's single chunk: hot objects are single-needle ones. */
  volumeId: number;
  needleId: string;
  cookie: number;
  size: number;
  level: HotLevel;
  /** level before cooling ends */
  next?: 'replicas' | 'store' | null;
  /** When it entered `level` (ms since the epoch, the leader's clock). */
  since: number;
  /** reads counted in the current period when last decided */
  reads: number;
}

/** The extra copies of one needle, on stores that do not hold its volume. */
export interface ExtraReplicaRecord {
  volumeId: number;
  needleId: string;
  cookie: number;
  /** Node ids, each listed only once it holds the copy. Empty in a write: delete the entry. */
  stores: string[];
  /** The object the copies were made for. */
  bucket: string;
  key: string;
}

/** What a gateway sends every cache.reportMs: its reads per object since the last report. */
export interface ReadReport {
  gateway: string;
  counts: [bucket: string, key: string, reads: number][];
  /** The gateway's own cache counters (hits, misses, bytes, …), shown by admin cache status. */
  stats?: Record<string, number>;
  /** Objects this gateway wrote since its last report: the policy re-reads just those. */
  written?: [bucket: string, key: string][];
  /** The table version the gateway holds: an unchanged table is not sent again. */
  have?: string;
  /**
   * Record copies the gateway wants its lease on renewed, each with the stamp
   * (`recordStamp`) of the record it holds: the answer says which are still current.
   */
  renew?: [bucket: string, key: string, stamp: string][];
}

/** The answer to a report: the hot table as committed, and the timings gateways need. */
export interface HotSnapshot {
  objects: HotObjectRecord[];
  extra: ExtraReplicaRecord[];
  periodMs: number;
  leaseMs: number;
  /** Names this table's content; a report that has it gets `unchanged` and empty lists. */
  version?: string;
  unchanged?: boolean;
  /**
   * One flag per `renew` entry of the report: the record is still the one the gateway
   * holds, as of a moment after the report was sent (linearizable). Absent: none renewed.
   */
  renewed?: boolean[];
}

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

export const HOT_LEVELS: readonly HotLevel[] = ['replicas', 'store', 'gateway', 'cooling'];

/** An object's identity in memory (bucket names cannot hold 00). */
export const hotObjectKey = (bucket: string, key: string): string => `${bucket}\x00${key}`;

/** A needle's identity in memory. */
export const hotNeedleKey = (volumeId: number, needleId: string): string =>
  `${volumeId}/${needleId}`;
