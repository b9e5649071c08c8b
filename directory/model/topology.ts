// The cluster's shape as the directory records it: store nodes and volumes (which nodes
// hold a replica of which volume). Node and volume records live in the replicated state
// machine (Raft); heartbeats do not — every directory replica keeps the latest heartbeat of
// each store in memory, so a new leader already knows who is alive. The hot-object tables
// (hot.ts) live next to them: records of the cluster's state, written by the leader.
import type { ExtraReplicaRecord, HotObjectRecord, HotSnapshot, ReadReport } from './hot.ts';

/**
 * online: placement and writes; offline: silent (reads go around it, reconciled on its
 * return); draining: leaving — up and read from, but no new volumes or writes, and the
 * leader copies each of its volumes elsewhere (from it or another replica), then drops it
 * from the volume and, once no volume lists it, marks it removed; removed: gone for good —
 * for that data directory. A store's data directory has an incarnation id (written once, at
 * its first start); a heartbeat under a removed id from another incarnation is a new store
 * reusing the name (a StatefulSet scaled down and up again) and is re-admitted as offline,
 * so it goes through the returning-store reconciliation before it is online (see
 * engine/topology-commands.ts registerNode).
 */
export type NodeState = 'online' | 'offline' | 'draining' | 'removed';

export interface NodeRecord {
  id: string;
  /** Base URL of the store's internal API, e.g. http://127.0.0.1:8081. */
  url: string;
  /** Failure domain label; '' when the store has none. */
  zone: string;
  /** Bytes the store offers in all. */
  capacity: number;
  state: NodeState;
  registeredAt: number;
  /** When state last changed (ms since the epoch, from the proposer's clock). */
  stateSince: number;
  /**
   * The incarnation of the store's data directory last seen under this id (absent: none
   * seen yet, or a store too old to send one). Kept as it was when the node was removed.
   */
  incarnation?: string;
}

export type VolumeState = 'writable' | 'readonly';

export interface VolumeRecord {
  id: number;
  /** Node ids holding a replica; the first is the primary that forwards writes. */
  replicas: string[];
  /** Replicas the volume should have (the bucket's replica count when it was made). */
  replicaCount: number;
  state: VolumeState;
  createdAt: number;
  /** Bumped by every update: updateVolume is a compare-and-set on it. */
  version: number;
}

/** What a store sends every heartbeat interval to every directory replica. */
export interface Heartbeat {
  id: string;
  url: string;
  zone: string;
  capacity: number;
  /** Bytes used by its volumes. */
  used: number;
  volumes: Array<{ id: number; size: number; needles: number; readOnly: boolean }>;
  /** Requests in flight or a recent rate: lower is preferred for reads. */
  load: number;
  /**
   * The data directory's incarnation id (random, written once at its first start); absent
   * from stores that predate it, which count as the incarnation the directory knows.
   */
  incarnation?: string;
}

/** A node's liveness as one directory replica sees it (in memory, not replicated). */
export interface NodeLiveness {
  id: string;
  /** ms since the last heartbeat this replica received; null = never. */
  silentMs: number | null;
  load: number;
  used: number;
}

/** Topology calls, served by every directory replica next to the MetadataStore ones. */
export interface TopologyStore {
  /**
   * Adds or updates a node (url, zone, capacity, incarnation); a returning node keeps its
   * state — except that a new incarnation (recorded one differs) of a removed node is
   * re-admitted as offline, and of an online node is marked offline (a new, empty disk
   * under the old name: reconciled before it is online again).
   */
  registerNode(n: NodeRecord): Promise<void>;
  /**
   * With `from`, a compare-and-set: PreconditionFailed unless the node is in that state
   * (a sweep that read "online" must not overwrite an operator's "removed" landing first).
   * `removed` is final either way (only registerNode with a new incarnation re-admits).
   */
  setNodeState(id: string, state: NodeState, since: number, from?: NodeState): Promise<void>;
  listNodes(): Promise<NodeRecord[]>;
  /** Throws PreconditionFailed if the id exists. */
  createVolume(v: VolumeRecord): Promise<void>;
  getVolume(id: number): Promise<VolumeRecord | null>;
  listVolumes(): Promise<VolumeRecord[]>;
  /** Compare-and-set on `version`: PreconditionFailed when it moved. Returns the new record. */
  updateVolume(
    id: number,
    expectVersion: number,
    patch: { replicas?: string[]; state?: VolumeState },
  ): Promise<VolumeRecord>;
  /** Adds or replaces the hot-table entry of (rec.bucket, rec.key). */
  putHotObject(rec: HotObjectRecord): Promise<void>;
  /** Removes it; nothing when there is none. */
  deleteHotObject(bucket: string, key: string): Promise<void>;
  /** The hot table, by bucket then key. */
  listHotObjects(): Promise<HotObjectRecord[]>;
  /** Adds or replaces the entry of (volumeId, needleId); empty `stores` deletes it. */
  setExtraReplicas(rec: ExtraReplicaRecord): Promise<void>;
  /** Every needle's extra replicas, by volume then needle id. */
  listExtraReplicas(): Promise<ExtraReplicaRecord[]>;
}

/** Directory-side services on top of the records (leader logic, in-memory liveness). */
export interface ClusterDirectory extends TopologyStore {
  heartbeat(h: Heartbeat): Promise<void>;
  liveness(): Promise<NodeLiveness[]>;
  /**
   * A new writable volume with `replicaCount` replicas on distinct online nodes, on
   * distinct zones when there are enough zones; throws Unavailable when there are not
   * enough online nodes. The caller creates the volume on each replica store. `avoid`:
   * nodes the caller just failed to reach (the directory may not know yet).
   */
  allocateVolume(
    replicaCount: number,
    avoid?: string[],
  ): Promise<VolumeRecord & { urls: string[] }>;
  /**
   * A gateway's read counts, added up on the leader (in memory: not one proposal per read);
   * answers the hot table with every change committed before the call arrived included
   * (the metadata leases of cache/README.md rely on it).
   */
  reportReads(report: ReadReport): Promise<HotSnapshot>;
}
