// The directory leader's watch on store pods (issue 13): the Kubernetes API often knows
// that a store is gone before its heartbeats stop counting.
//
//  - A store pod that was Ready and turns NotReady, is being deleted, has failed or is
//    gone: its node is marked offline at once — the same `setNodeState(id, 'offline')` the
//    cluster manager makes after `offlineAfterMs` of silence — so gateways read around it
//    and place nothing on it, and a store that comes back (with its disk, or empty after
//    losing its PVC) goes through the manager's reconciliation: each of its volumes is
//    synced from a healthy replica before it is online again.
//  - While such a pod is still there and down, the node is kept offline: the manager
//    brings an offline store that still heartbeats back online, and a pod NotReady or
//    terminating may heartbeat a little longer. A pod Ready again needs nothing: its
//    heartbeats bring it back through reconciliation.
//  - Scale-down: a pod of a StatefulSet being deleted with an ordinal at or past the set's
//    new spec.replicas is leaving for good: its node is marked draining (what
//    `kubestorage admin store drain` does). The manager copies each of its volumes to
//    other stores — from the draining store itself when it holds the only copy — and marks
//    it removed once no volume lists it; meanwhile the pod's preStop hook
//    (`admin store wait-drained`) keeps it up and serving. Only a scale-down drains: a pod
//    deleted for a rollout, an eviction or a node drain is only marked offline, and never
//    for a scale to 0 (that is a shutdown, not a shrink).
//  - Pods that were never Ready are not judged by readiness (a store starting, or one
//    without a readiness endpoint): only deletion and failure count for them.
//
// Events arrive on every replica (each keeps its cache current) but only the leader acts.
// A store pod maps to the node whose id is the pod name, or whose URL's host is the pod's
// DNS name (`<pod>.<subdomain>…`) or its IP. Nothing here throws into the directory: errors
// are logged and the next event or check tries again.
import type { Logger } from '../../common/log.ts';
import type { NodeRecord, NodeState } from '../model/topology.ts';
import {
  isDenied,
  type KubeApi,
  type Pod,
  type PodEvent,
  podFailed,
  podReady,
  statefulSetMember,
} from './api.ts';

export const STORE_SELECTOR =
  'app.kubernetes.io/name=kubestorage,app.kubernetes.io/component=store';

/** What the watcher needs of the directory: RaftMetadata (or a MetadataClient) has it. */
export interface StoreDirectory {
  listNodes(): Promise<NodeRecord[]>;
  setNodeState(id: string, state: NodeState, since: number, from?: NodeState): Promise<void>;
}

export interface StoreWatcherOptions {
  api: KubeApi;
  namespace: string;
  directory: StoreDirectory;
  isLeader: () => boolean;
  logger: Logger;
  selector?: string;
  /** How often a down pod's node is checked to still be offline (default 1 s). */
  holdMs?: number;
  /** Drain stores whose pods a StatefulSet scale-down deletes (default true). */
  drainOnScaleDown?: boolean;
}

interface Known {
  pod: Pod;
  uid: string;
  /** Seen Ready at least once (this incarnation). */
  wasReady: boolean;
  /** The scale-down check ran for this incarnation. */
  checkedScale: boolean;
}

/** Why a pod counts as down, or null while it does not. */
export function downReason(p: Pod, wasReady: boolean): string | null {
  if (p.metadata.deletionTimestamp) return 'terminating';
  if (podFailed(p)) return `phase ${p.status?.phase}`;
  if (wasReady && !podReady(p)) return 'not ready';
  return null;
}

export function nodeForPod(p: Pod, nodes: NodeRecord[]): NodeRecord | undefined {
  const name = p.metadata.name;
  const byId = nodes.find((n) => n.id === name);
  if (byId) return byId;
  return nodes.find((n) => {
    let host: string;
    try {
      host = new URL(n.url).hostname;
    } catch {
      return false;
    }
    return (
      host.startsWith(`${name}.`) || (p.status?.podIP !== undefined && host === p.status.podIP)
    );
  });
}

export class StoreWatcher {
  private readonly known = new Map<string, Known>();
  /** Pods gone (DELETED) whose node still has to be marked, should we lead later. */
  private readonly gone = new Map<string, Pod>();
  private stopWatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private errorLogged = false;
  /** Off for good after a 401/403. */
  disabled = false;
  readonly stats = { events: 0, offlined: 0, drained: 0, errors: 0 };

  constructor(private readonly o: StoreWatcherOptions) {}

  start(): void {
    this.stopWatch = this.o.api.watchPods(
      this.o.namespace,
      this.o.selector ?? STORE_SELECTOR,
      (e) => this.enqueue(() => this.handle(e)),
      (e) => {
        if (isDenied(e)) {
          this.disabled = true;
          this.stopWatch?.();
          clearInterval(this.timer);
          this.o.logger.warn(
            { err: (e as Error).message },
            'Kubernetes API denied the store pod watch: watch off (heartbeats still find failed stores; see k8s/components/kube-api)',
          );
          return;
        }
        this.fail('store pod watch failed; retrying', e);
      },
    );
    if (this.disabled) return;
    this.timer = setInterval(() => this.enqueue(() => this.hold()), this.o.holdMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopWatch?.();
    clearInterval(this.timer);
    await this.queue;
  }

  /** Resolves once every event received so far has been handled (tests). */
  settled(): Promise<void> {
    return this.queue;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue
      .then(fn)
      .catch((e: unknown) => this.fail('store pod handling failed', e));
  }

  private fail(msg: string, e: unknown): void {
    this.stats.errors++;
    const err = (e as Error)?.message ?? String(e);
    if (!this.errorLogged) {
      this.errorLogged = true;
      this.o.logger.warn({ err }, msg);
    } else {
      this.o.logger.debug({ err }, msg);
    }
  }

  /** One watch event. */
  async handle(e: PodEvent): Promise<void> {
    this.stats.events++;
    const p = e.object;
    const name = p.metadata.name;
    const uid = p.metadata.uid ?? name;
    let k = this.known.get(name);
    if (!k || k.uid !== uid) {
      k = { pod: p, uid, wasReady: false, checkedScale: false };
      this.known.set(name, k);
    }
    k.pod = p;
    if (podReady(p)) k.wasReady = true;
    if (e.type === 'DELETED') {
      this.known.delete(name);
      this.gone.set(name, p);
    } else {
      this.gone.delete(name);
    }
    const reason = e.type === 'DELETED' ? 'deleted' : downReason(p, k.wasReady);
    if (reason === null || !this.o.isLeader()) return;
    const deleting = e.type === 'DELETED' || p.metadata.deletionTimestamp !== undefined;
    const nodes = await this.o.directory.listNodes();
    const node = nodeForPod(p, nodes);
    if (!node) return; // a store that never registered: nothing to mark
    if (deleting && !k.checkedScale && (this.o.drainOnScaleDown ?? true)) {
      k.checkedScale = true;
      if (await this.drainIfScaledDown(p, node)) {
        this.gone.delete(name);
        return;
      }
    }
    await this.markOffline(node, reason);
    if (e.type === 'DELETED') this.gone.delete(name);
  }

  private async markOffline(node: NodeRecord, reason: string): Promise<void> {
    if (node.state !== 'online') return;
    try {
      await this.o.directory.setNodeState(node.id, 'offline', Date.now(), 'online');
    } catch (e) {
      // Drained, removed or back in the meantime: that later word stands.
      if ((e as { code?: string }).code === 'PreconditionFailed') return;
      throw e;
    }
    this.stats.offlined++;
    this.o.logger.warn({ node: node.id, reason }, 'store pod down: store marked offline');
  }

  private async drainIfScaledDown(p: Pod, node: NodeRecord): Promise<boolean> {
    const leaving = node.state === 'draining' || node.state === 'removed';
    const m = statefulSetMember(p);
    if (!m || leaving) return leaving;
    const replicas = await this.o.api.statefulSetReplicas(this.o.namespace, m.set);
    if (replicas === null || m.ordinal < replicas) return false;
    if (replicas === 0) {
      this.o.logger.warn(
        { node: node.id, set: m.set },
        'store StatefulSet scaled to 0: treated as a shutdown, nothing drained',
      );
      return false;
    }
    await this.o.directory.setNodeState(node.id, 'draining', Date.now());
    this.stats.drained++;
    this.o.logger.warn(
      { node: node.id, set: m.set, ordinal: m.ordinal, replicas },
      'store StatefulSet scaled down: store draining (its volumes copied elsewhere, then removed)',
    );
    return true;
  }

  /** On the leader: every pod still down keeps its node offline (see the header). */
  private async hold(): Promise<void> {
    if (!this.o.isLeader()) return;
    const down = [...this.known.values()]
      .map((k) => ({ p: k.pod, reason: downReason(k.pod, k.wasReady) }))
      .concat([...this.gone.values()].map((p) => ({ p, reason: 'deleted' })))
      .filter((d): d is { p: Pod; reason: string } => d.reason !== null);
    if (down.length === 0) return;
    const nodes = await this.o.directory.listNodes();
    for (const d of down) {
      const node = nodeForPod(d.p, nodes);
      if (node) await this.markOffline(node, d.reason);
    }
    this.gone.clear();
  }
}
