// NeedleStore over the cluster: a needle lives in a volume, a volume on 2+ store nodes (the
// directory says which). Writes go to the volume's primary, which forwards them to the
// other replicas and answers once all have them durable, so the gateway sends the bytes
// once. Reads go to one replica, least loaded first, and fall back to the others: on an
// error, on a missing or corrupt needle (another copy is exactly what helps then), and —
// hedged — when the first has not answered within about the p99 of recent reads, which
// cuts the tail a slow disk or a GC pause would otherwise add. Deletes are tombstones on
// every replica; a replica that cannot be reached gets them later from a retry queue.
import { DEFAULT_CONFIG } from '../common/config.ts';
import type { InternalAuth } from '../common/internal-auth.ts';
import type { Logger } from '../common/log.ts';
import type {
  GetOptions,
  GetResult,
  NeedleRef,
  NeedleStore,
  PutResult,
} from '../store-node/api.ts';
import { StoreClient } from '../store-node/client.ts';
import { StoreError } from '../store-node/errors.ts';
import type { StoreStatus } from '../store-node/store.ts';
import { ClusterView, type NodeView, type ViewDirectory, type VolumeView } from './cluster-view.ts';

/** The part of StoreClient this file uses (a seam for tests). */
export type NodeClient = Pick<
  StoreClient,
  'put' | 'get' | 'head' | 'delete' | 'createVolume' | 'close'
>;

export interface ClusterStoreOptions {
  directory: ViewDirectory;
  auth: InternalAuth;
  log?: Logger;
  /** Node states, liveness and load are re-read this often. */
  refreshMs?: number;
  /** A volume's replica list is trusted this long. */
  volumeTtlMs?: number;
  /**
   * A node silent longer than this is read from last and not written to; unset, config
   * cluster.offlineAfterMs, as every default below is config's (gateway.*).
   */
  aliveMs?: number;
  /** A node this gateway failed to reach is kept out of writes this long. */
  suspectMs?: number;
  /** Bound on one store call. */
  timeoutMs?: number;
  /** The hedge delay is the p99 of recent reads clamped to this. */
  hedgeMinMs?: number;
  hedgeMaxMs?: number;
  /** Most replica deletes waiting for a retry (default 100 000; the oldest go first). */
  deleteQueueLimit?: number;
  clientFor?: (url: string) => NodeClient;
}

export interface ReadStats {
  reads: number;
  /** Second requests sent because the first had not answered within the hedge delay. */
  hedged: number;
  /** Hedged reads the second request won. */
  hedgeWins: number;
  /** Reads answered by a replica other than the first tried, after errors. */
  fallbacks: number;
}

/** Errors every replica would give alike: trying another cannot help. */
function definitive(e: unknown): boolean {
  return e instanceof StoreError && (e.code === 'InvalidRange' || e.code === 'InvalidArgument');
}

/** The error worth reporting after all replicas failed: a missing needle only if all said so. */
function worstOf(errors: unknown[]): unknown {
  return errors.find((e) => !(e instanceof StoreError && e.code === 'NoSuchNeedle')) ?? errors[0];
}

class LatencyWindow {
  private readonly samples = new Float64Array(1000);
  private count = 0;
  private at = 0;
  private sinceCalc = 0;
  private delay: number;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {
    // Until there is a history, hedge late rather than double every early read.
    this.delay = Math.min(maxMs, Math.max(minMs, 50));
  }

  add(ms: number): void {
    this.samples[this.at] = ms;
    this.at = (this.at + 1) % this.samples.length;
    if (this.count < this.samples.length) this.count++;
    // Sorting 1000 numbers per read would cost more than the hedge saves.
    if (++this.sinceCalc >= 50 && this.count >= 20) {
      this.sinceCalc = 0;
      const sorted = this.samples.slice(0, this.count).sort();
      const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
      this.delay = Math.min(this.maxMs, Math.max(this.minMs, p99));
    }
  }

  hedgeDelayMs(): number {
    return this.delay;
  }
}

export class ClusterNeedleStore implements NeedleStore {
  readonly view: ClusterView;
  readonly stats: ReadStats = { reads: 0, hedged: 0, hedgeWins: 0, fallbacks: 0 };
  private readonly clients = new Map<string, NodeClient>();
  private readonly inFlight = new Map<string, number>();
  private readonly latency: Record<'get' | 'head', LatencyWindow>;
  private readonly deletes: DeleteRetries;

  constructor(private readonly o: ClusterStoreOptions) {
    this.view = new ClusterView({
      directory: o.directory,
      log: o.log,
      refreshMs: o.refreshMs,
      volumeTtlMs: o.volumeTtlMs,
      aliveMs: o.aliveMs,
      suspectMs: o.suspectMs,
    });
    const min = o.hedgeMinMs ?? DEFAULT_CONFIG.gateway.hedgeMinMs;
    const max = o.hedgeMaxMs ?? DEFAULT_CONFIG.gateway.hedgeMaxMs;
    this.latency = { get: new LatencyWindow(min, max), head: new LatencyWindow(min, max) };
    this.deletes = new DeleteRetries(this, o.deleteQueueLimit ?? 100_000, o.log);
    this.view.start();
    this.deletes.start();
  }

  client(url: string): NodeClient {
    let c = this.clients.get(url);
    if (!c) {
      c =
        this.o.clientFor?.(url) ??
        new StoreClient(
          url,
          this.o.auth,
          this.o.timeoutMs ?? DEFAULT_CONFIG.gateway.storeTimeoutMs,
        );
      this.clients.set(url, c);
    }
    return c;
  }

  /** Tracks this gateway's requests per node: part of "least loaded" for reads. */
  private async onNode<T>(node: NodeView, fn: (c: NodeClient) => Promise<T>): Promise<T> {
    this.inFlight.set(node.id, (this.inFlight.get(node.id) ?? 0) + 1);
    try {
      return await fn(this.client(node.url));
    } finally {
      this.inFlight.set(node.id, (this.inFlight.get(node.id) ?? 1) - 1);
    }
  }

  /** Writes to the primary, which forwards to the other replicas; any failure throws. */
  async put(ref: NeedleRef, data: Buffer, contentType?: string): Promise<PutResult> {
    const vol = await this.view.volume(ref.volumeId);
    const nodes = await this.view.replicaNodes(vol);
    const [primary, ...others] = nodes;
    if (!primary || nodes.length !== vol.replicas.length) {
      this.view.forget(vol.id);
      throw new StoreError('ReplicaWriteFailed', `volume ${vol.id}: replica node(s) unknown`);
    }
    try {
      return await this.onNode(primary, (c) =>
        c.put(ref, data, contentType, { replicas: others.map((n) => n.url) }),
      );
    } catch (e) {
      this.view.forget(vol.id);
      void this.view.refreshNodes().catch(() => {});
      throw e;
    }
  }

  /**
   * Stores holding an extra copy of a hot needle (the directory's hot table): reads spread
   * over them and the volume's replicas alike. Set by the cache wiring.
   */
  extraReplicas?: (volumeId: number, needleId: string) => string[] | undefined;

  get(
    ref: NeedleRef,
    range?: { start: number; end: number },
    opts?: GetOptions,
  ): Promise<GetResult> {
    return this.read('get', ref, (c) => c.get(ref, range, opts));
  }

  head(ref: NeedleRef): Promise<{ size: number }> {
    return this.read('head', ref, (c) => c.head(ref));
  }

  /** Usable replicas least loaded first; the others after them as a last resort. */
  private readOrder(nodes: NodeView[]): NodeView[] {
    const score = (n: NodeView) => n.load + (this.inFlight.get(n.id) ?? 0);
    const ranked = nodes
      .filter((n) => n.state !== 'removed')
      .map((n) => ({ n, up: this.view.usable(n.id), s: score(n), tie: Math.random() }))
      .sort((a, b) => Number(b.up) - Number(a.up) || a.s - b.s || a.tie - b.tie);
    return ranked.map((r) => r.n);
  }

  private withExtra(nodes: NodeView[], ref: NeedleRef): NodeView[] {
    const extra = this.extraReplicas?.(ref.volumeId, ref.needleId.toString());
    if (!extra || extra.length === 0) return nodes;
    const more = extra
      .filter((id) => !nodes.some((n) => n.id === id))
      .map((id) => this.view.node(id))
      .filter((n): n is NodeView => n !== undefined && n.state === 'online');
    return more.length === 0 ? nodes : [...nodes, ...more];
  }

  private async read<T>(
    kind: 'get' | 'head',
    ref: NeedleRef,
    fn: (c: NodeClient) => Promise<T>,
  ): Promise<T> {
    this.stats.reads++;
    let vol = await this.view.volume(ref.volumeId);
    for (let round = 0; ; round++) {
      try {
        const nodes = await this.view.replicaNodes(vol);
        return await this.race(kind, vol, this.readOrder(this.withExtra(nodes, ref)), fn);
      } catch (e) {
        void this.view.refreshNodes().catch(() => {});
        if (round > 0 || definitive(e)) throw e;
        // The replicas may have moved since the record was cached (re-replication).
        const fresh = await this.view.volume(ref.volumeId, true).catch(() => null);
        if (!fresh || fresh.replicas.join() === vol.replicas.join()) throw e;
        vol = fresh;
      }
    }
  }

  /**
   * Tries `nodes` in order: the next one starts when the current fails, and once (the
   * hedge) when the first has not answered within the hedge delay. The first good answer
   * wins; the loser's answer is discarded (StoreClient takes no abort signal yet).
   */
  private race<T>(
    kind: 'get' | 'head',
    vol: VolumeView,
    nodes: NodeView[],
    fn: (c: NodeClient) => Promise<T>,
  ): Promise<T> {
    if (nodes.length === 0) {
      return Promise.reject(new StoreError('InternalError', `volume ${vol.id}: no replica known`));
    }
    return new Promise<T>((resolve, reject) => {
      let next = 0;
      let running = 0;
      let settled = false;
      let hedgedAt = -1;
      const errors: unknown[] = [];
      const finish = () => {
        settled = true;
        clearTimeout(timer);
      };
      const launch = () => {
        const index = next++;
        const node = nodes[index]!;
        const t0 = performance.now();
        running++;
        this.onNode(node, fn).then(
          (v) => {
            running--;
            this.latency[kind].add(performance.now() - t0);
            if (settled) return;
            finish();
            if (index === hedgedAt) this.stats.hedgeWins++;
            else if (index > 0) this.stats.fallbacks++;
            resolve(v);
          },
          (e: unknown) => {
            running--;
            if (settled) return;
            errors.push(e);
            if (definitive(e)) {
              finish();
              reject(e);
            } else if (next < nodes.length) launch();
            else if (running === 0) {
              finish();
              reject(worstOf(errors));
            }
          },
        );
      };
      const timer = setTimeout(() => {
        if (settled || next >= nodes.length) return;
        this.stats.hedged++;
        hedgedAt = next;
        launch();
      }, this.latency[kind].hedgeDelayMs());
      launch();
    });
  }

  /**
   * Tombstones the needle on every replica. Replicas that fail get it from the retry
   * queue; NoSuchNeedle only when no replica had it.
   */
  async delete(ref: NeedleRef): Promise<void> {
    const vol = await this.view.volume(ref.volumeId);
    await this.view.replicaNodes(vol);
    const results = await Promise.allSettled(vol.replicas.map((id) => this.deleteOn(id, ref)));
    let missing = 0;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const e = r.reason;
      if (e instanceof StoreError && (e.code === 'NoSuchNeedle' || e.code === 'NoSuchVolume')) {
        missing++;
      } else this.deletes.add(ref, vol.replicas[i]!);
    });
    if (missing === vol.replicas.length) {
      throw new StoreError('NoSuchNeedle', `needle ${ref.volumeId}/${ref.needleId} not found`);
    }
  }

  /** One replica's tombstone; resolves when that replica has it (or never had the needle). */
  async deleteOn(nodeId: string, ref: NeedleRef): Promise<void> {
    const node = this.view.node(nodeId);
    if (!node) throw new Error(`node ${nodeId} unknown`);
    await this.onNode(node, (c) => c.delete(ref));
  }

  /** Replica deletes waiting for a retry. */
  get pendingDeletes(): number {
    return this.deletes.size;
  }

  /** Creates the volume on every replica (an existing one counts as created). */
  async createVolume(volumeId: number): Promise<void> {
    await this.createOnReplicas(await this.view.volume(volumeId, true));
  }

  async createOnReplicas(vol: VolumeView): Promise<void> {
    const nodes = await this.view.replicaNodes(vol);
    if (nodes.length !== vol.replicas.length) {
      throw new StoreError('InternalError', `volume ${vol.id}: replica node(s) unknown`);
    }
    const results = await Promise.allSettled(
      nodes.map((n) => this.onNode(n, (c) => c.createVolume(vol.id, { ifMissing: true }))),
    );
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [nodes[i] as NodeView] : [],
    );
    if (failed.length > 0) {
      // The directory placed the volume on a node this gateway cannot reach (it may not
      // know yet that it is gone): keep our writes off it until it does.
      for (const n of failed) this.view.suspect(n.id);
      throw (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason;
    }
  }

  /** Only the embedded placement reads a store's status; the cluster's is the directory's. */
  status(): Promise<StoreStatus> {
    return Promise.reject(
      new Error('ClusterNeedleStore has no single status: ask the directory (listVolumes)'),
    );
  }

  async close(): Promise<void> {
    this.view.stop();
    this.deletes.stop();
    await Promise.all([...this.clients.values()].map((c) => c.close()));
    this.clients.clear();
  }
}

interface PendingDelete {
  ref: NeedleRef;
  nodeId: string;
  attempt: number;
  due: number;
}

const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 30_000;
const RETRY_BATCH = 64;

/**
 * Tombstones a replica missed. Kept in memory only: a needle whose tombstone is lost stays
 * readable on that replica by id, but no object refers to it any more, so the cost is
 * space until a sync with deletes from another replica drops it.
 */
class DeleteRetries {
  private readonly q = new Map<string, PendingDelete>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(
    private readonly store: ClusterNeedleStore,
    private readonly limit: number,
    private readonly log?: Logger,
  ) {}

  get size(): number {
    return this.q.size;
  }

  add(ref: NeedleRef, nodeId: string): void {
    const key = `${nodeId}/${ref.volumeId}/${ref.needleId}`;
    if (this.q.has(key)) return;
    if (this.q.size >= this.limit) {
      const [oldKey, old] = this.q.entries().next().value as [string, PendingDelete];
      this.q.delete(oldKey);
      this.log?.warn({ node: old.nodeId, needle: oldKey }, 'delete retry queue full: dropped one');
    }
    this.q.set(key, { ref, nodeId, attempt: 0, due: Date.now() + RETRY_FIRST_MS });
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), 100);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.q.size > 0) {
      this.log?.warn(
        { pending: this.q.size, sample: [...this.q.keys()].slice(0, 20) },
        'shutting down with replica deletes not yet acknowledged: dropping them',
      );
    }
  }

  private async tick(): Promise<void> {
    if (this.busy || this.q.size === 0) return;
    this.busy = true;
    try {
      const now = Date.now();
      const due = [...this.q.entries()].filter(([, p]) => p.due <= now).slice(0, RETRY_BATCH);
      await Promise.all(due.map(([key, p]) => this.retry(key, p)));
    } finally {
      this.busy = false;
    }
  }

  private async retry(key: string, p: PendingDelete): Promise<void> {
    const view = this.store.view;
    try {
      const vol = await view.volume(p.ref.volumeId);
      const node = view.node(p.nodeId);
      // A replica moved off the volume or removed from the cluster has nothing to delete.
      if (!vol.replicas.includes(p.nodeId) || node?.state === 'removed') {
        this.q.delete(key);
        return;
      }
      if (node && !view.usable(p.nodeId)) throw new Error('node down');
      await this.store.deleteOn(p.nodeId, p.ref);
      this.q.delete(key);
    } catch (e) {
      if (e instanceof StoreError && (e.code === 'NoSuchNeedle' || e.code === 'NoSuchVolume')) {
        this.q.delete(key);
        return;
      }
      p.attempt++;
      const backoff = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** p.attempt);
      p.due = Date.now() + backoff * (0.5 + Math.random() / 2);
    }
  }
}
