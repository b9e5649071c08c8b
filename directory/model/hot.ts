// The hot-object tables of issue 14 (cache/README.md): which objects are hot, at which
// cache level, and which extra replicas their needles have. Both are replicated (Raft),
// written by the directory leader's policy (cluster/hotness.ts) and read by every gateway
// through reportReads, whose answer is the lease protocol's view of the table.

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
   * Present: `objects` and `extra` hold only what changed since the report's `have`
   * version, and these were removed since.
   */
  delta?: {
    removed: [bucket: string, key: string][];
    extraRemoved: [volumeId: number, needleId: string][];
  };
  /**
   * One flag per `renew` entry of the report: the record is still the one the gateway
   * holds, as of a moment after the report was sent (linearizable). Absent: none renewed.
   */
  renewed?: boolean[];
}

export const HOT_LEVELS: readonly HotLevel[] = ['replicas', 'store', 'gateway', 'cooling'];

/** An object's identity in memory (bucket names cannot hold 00). */
export const hotObjectKey = (bucket: string, key: string): string => `${bucket}\x00${key}`;

/** A needle's identity in memory. */
export const hotNeedleKey = (volumeId: number, needleId: string): string =>
  `${volumeId}/${needleId}`;
