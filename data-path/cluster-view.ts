// What a gateway knows of the cluster's shape: which nodes hold which volume, where they
// are and whether they are up. A cache of the directory, so the needle path does not pay a
// directory round trip per request: node records and liveness are polled every refreshMs
// (so a node going down is noticed within about a second), a volume's record is fetched on
// first use and again after an error or once it is older than volumeTtlMs (replica sets
// change only when the directory re-replicates, which a failed request reveals anyway).
import { DEFAULT_CONFIG } from '../common/config.ts';
import type { Logger } from '../common/log.ts';
import type {
  ClusterDirectory,
  NodeState,
  VolumeRecord,
  VolumeState,
} from '../directory/model/topology.ts';
import { StoreError } from '../store-node/errors.ts';

export type ViewDirectory = Pick<ClusterDirectory, 'getVolume' | 'listNodes' | 'liveness'>;

export interface NodeView {
  id: string;
  url: string;
  state: NodeState;
  /** Heard from within aliveMs (or never reported on: liveness only ever downgrades). */
  alive: boolean;
  /** The node's own load from its last heartbeat. */
  load: number;
}

export interface VolumeView {
  id: number;
  replicas: string[];
  state: VolumeState;
  version: number;
  fetchedAt: number;
}

export interface ClusterViewOptions {
  directory: ViewDirectory;
  log?: Logger;
  /** Node states and liveness are re-read this often (config gateway.viewRefreshMs). */
  refreshMs?: number;
  /** A node silent longer than this counts as down (config cluster.offlineAfterMs). */
  aliveMs?: number;
  /** How long a node this gateway failed to reach is avoided (config gateway.suspectMs). */
  suspectMs?: number;
  /** Volume records are re-read when older than this (default 10 s). */
  volumeTtlMs?: number;
}

export class ClusterView {
  private readonly nodes = new Map<string, NodeView>();
  private readonly volumes = new Map<number, VolumeView>();
  private readonly fetching = new Map<number, Promise<VolumeView>>();
  private nodesLoaded = false;
  private refreshing: Promise<void> | null = null;
  /** Node → until when it is avoided, and since when (its heartbeats after that clear it). */
  private readonly suspects = new Map<string, { until: number; since: number }>();
  private timer: NodeJS.Timeout | null = null;
  private readonly aliveMs: number;
  private readonly suspectMs: number;
  private readonly volumeTtlMs: number;

  constructor(private readonly o: ClusterViewOptions) {
    this.aliveMs = o.aliveMs ?? DEFAULT_CONFIG.cluster.offlineAfterMs;
    this.suspectMs = o.suspectMs ?? DEFAULT_CONFIG.gateway.suspectMs;
    this.volumeTtlMs = o.volumeTtlMs ?? DEFAULT_CONFIG.gateway.volumeTtlMs;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(
      () => void this.refreshNodes(),
      this.o.refreshMs ?? DEFAULT_CONFIG.gateway.viewRefreshMs,
    );
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Re-reads nodes and liveness; concurrent callers share one round trip. */
  refreshNodes(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const asked = Date.now();
        const [records, live] = await Promise.all([
          this.o.directory.listNodes(),
          // Liveness is advisory: without it nodes count as alive rather than none as usable.
          this.o.directory.liveness().catch(() => null),
        ]);
        const byId = new Map(live?.map((l) => [l.id, l]));
        const seen = new Set<string>();
        for (const r of records) {
          const l = byId.get(r.id);
          const prev = this.nodes.get(r.id);
          const alive =
            live === null
              ? (prev?.alive ?? true)
              : !l || (l.silentMs !== null && l.silentMs <= this.aliveMs);
          // Heard from by the directory since this gateway's failed call: back, most likely
          // (a store restarted in a second). Writes that still fail there suspect it again.
          const s = this.suspects.get(r.id);
          if (s && l?.silentMs != null && asked - l.silentMs > s.since) this.suspects.delete(r.id);
          this.nodes.set(r.id, {
            id: r.id,
            url: r.url,
            state: r.state,
            alive,
            load: l?.load ?? prev?.load ?? 0,
          });
          seen.add(r.id);
        }
        for (const id of this.nodes.keys()) if (!seen.has(id)) this.nodes.delete(id);
        this.nodesLoaded = true;
      } catch (e) {
        this.o.log?.warn({ err: e }, 'cluster view: could not refresh nodes; keeping the old view');
        if (!this.nodesLoaded) throw e;
      }
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  node(id: string): NodeView | undefined {
    return this.nodes.get(id);
  }

  /** Online per the directory and heard from recently: fit for writes and first reads. */
  usable(id: string): boolean {
    const n = this.nodes.get(id);
    return n !== undefined && n.state === 'online' && n.alive && !this.isSuspect(id);
  }

  /**
   * This gateway just failed to reach the node: keep writes off it for `ms`, before the
   * directory (heartbeat timeout) says so too.
   */
  suspect(id: string, ms = this.suspectMs): void {
    const now = Date.now();
    this.suspects.set(id, { until: now + ms, since: now });
  }

  isSuspect(id: string): boolean {
    const until = this.suspects.get(id)?.until;
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.suspects.delete(id);
    return false;
  }

  /** Nodes this gateway currently avoids for writes. */
  suspected(): string[] {
    return [...this.suspects.keys()].filter((id) => this.isSuspect(id));
  }

  nodeIdByUrl(url: string): string | undefined {
    for (const n of this.nodes.values()) if (n.url === url) return n.id;
    return undefined;
  }

  /** The node records of a volume's replicas, loading nodes on first use. */
  async replicaNodes(v: VolumeView): Promise<NodeView[]> {
    if (!this.nodesLoaded || v.replicas.some((id) => !this.nodes.has(id))) {
      await this.refreshNodes();
    }
    const out: NodeView[] = [];
    for (const id of v.replicas) {
      const n = this.nodes.get(id);
      if (n) out.push(n);
    }
    return out;
  }

  cachedVolume(id: number): VolumeView | undefined {
    return this.volumes.get(id);
  }

  /** The volume's record: cached unless `fresh` or stale. NoSuchVolume when it has none. */
  async volume(id: number, fresh = false): Promise<VolumeView> {
    const c = this.volumes.get(id);
    if (c && !fresh) {
      if (Date.now() - c.fetchedAt > this.volumeTtlMs) void this.fetchVolume(id).catch(() => {});
      return c;
    }
    return this.fetchVolume(id);
  }

  private fetchVolume(id: number): Promise<VolumeView> {
    let p = this.fetching.get(id);
    if (!p) {
      p = this.o.directory
        .getVolume(id)
        .then((r) => {
          if (!r) throw new StoreError('NoSuchVolume', `volume ${id} is not in the directory`);
          return this.learn(r);
        })
        .finally(() => this.fetching.delete(id));
      this.fetching.set(id, p);
    }
    return p;
  }

  /**
   * Records a volume the caller already has (e.g. just allocated), with its nodes' URLs
   * when known: a node registered since the last refresh is usable at once.
   */
  learn(r: VolumeRecord, urls?: string[]): VolumeView {
    const v: VolumeView = {
      id: r.id,
      replicas: [...r.replicas],
      state: r.state,
      version: r.version,
      fetchedAt: Date.now(),
    };
    const prev = this.volumes.get(r.id);
    if (!prev || prev.version <= v.version) this.volumes.set(r.id, v);
    urls?.forEach((url, i) => {
      const id = r.replicas[i];
      if (id !== undefined && !this.nodes.has(id)) {
        this.nodes.set(id, { id, url, state: 'online', alive: true, load: 0 });
      }
    });
    return this.volumes.get(r.id) ?? v;
  }

  /** Drops a volume's record so the next use re-reads it (after an error on it). */
  forget(id: number): void {
    this.volumes.delete(id);
  }
}
