// An in-memory Kubernetes API for tests: pods and StatefulSet replica counts, label
// patches applied as a merge patch, watches fed the API's event envelopes, and a switch
// that answers 403 the way an RBAC denial does.
import { type KubeApi, KubeApiError, type Pod, type PodEvent } from './api.ts';

type Watcher = { ns: string; selector: string; onEvent: (e: PodEvent) => void };

function matches(p: Pod, selector: string): boolean {
  const labels = p.metadata.labels ?? {};
  return selector
    .split(',')
    .filter(Boolean)
    .every((term) => {
      const [k, v] = term.split('=') as [string, string | undefined];
      return v === undefined ? k in labels : labels[k] === v;
    });
}

const clone = <T>(x: T): T => structuredClone(x);

export class FakeKubeApi implements KubeApi {
  private readonly pods = new Map<string, Pod>(); // ns/name
  private readonly sets = new Map<string, number>(); // ns/name → spec.replicas
  private readonly watchers = new Set<Watcher>();
  private rv = 1000;
  /** Every label patch, in order. */
  readonly patches: Array<{ ns: string; pod: string; labels: Record<string, string | null> }> = [];
  /** Answer 403 Forbidden to these verbs (RBAC denied). */
  readonly deny = new Set<'patch' | 'list' | 'watch' | 'get'>();
  /** Fail the next N calls with this status (a flaky API server). */
  failNext: { count: number; status: number } = { count: 0, status: 500 };

  private check(verb: 'patch' | 'list' | 'watch' | 'get', what: string): void {
    if (this.deny.has(verb)) {
      throw new KubeApiError(
        403,
        `${what} is forbidden: User "system:serviceaccount:test:ks-directory" cannot ${verb} resource "${what}"`,
      );
    }
    if (this.failNext.count > 0) {
      this.failNext.count--;
      throw new KubeApiError(this.failNext.status, 'injected failure');
    }
  }

  // --- the test's side: the cluster changing ---

  /** Creates or replaces a pod (ADDED or MODIFIED to watchers). */
  put(pod: Pod): Pod {
    const p = clone(pod);
    p.metadata.namespace ??= 'default';
    p.metadata.resourceVersion = String(++this.rv);
    const key = `${p.metadata.namespace}/${p.metadata.name}`;
    const type = this.pods.has(key) ? 'MODIFIED' : 'ADDED';
    this.pods.set(key, p);
    this.emit(type, p);
    return clone(p);
  }

  /** Edits a pod in place (MODIFIED). */
  update(ns: string, name: string, fn: (p: Pod) => void): Pod {
    const p = this.pods.get(`${ns}/${name}`);
    if (!p) throw new Error(`no pod ${ns}/${name}`);
    const next = clone(p);
    fn(next);
    return this.put(next);
  }

  /** The pod is gone (DELETED). */
  remove(ns: string, name: string): void {
    const p = this.pods.get(`${ns}/${name}`);
    if (!p) return;
    this.pods.delete(`${ns}/${name}`);
    this.emit('DELETED', p);
  }

  get(ns: string, name: string): Pod | undefined {
    const p = this.pods.get(`${ns}/${name}`);
    return p && clone(p);
  }

  setStatefulSet(ns: string, name: string, replicas: number): void {
    this.sets.set(`${ns}/${name}`, replicas);
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  private emit(type: PodEvent['type'], p: Pod): void {
    for (const w of this.watchers) {
      if (w.ns === p.metadata.namespace && matches(p, w.selector)) {
        w.onEvent({ type, object: clone(p) });
      }
    }
  }

  // --- KubeApi ---

  async patchPodLabels(ns: string, pod: string, labels: Record<string, string | null>) {
    this.check('patch', 'pods');
    const p = this.pods.get(`${ns}/${pod}`);
    if (!p) throw new KubeApiError(404, `pods "${pod}" not found`);
    this.patches.push({ ns, pod, labels: { ...labels } });
    this.update(ns, pod, (x) => {
      const l = { ...(x.metadata.labels ?? {}) };
      for (const [k, v] of Object.entries(labels)) {
        if (v === null) delete l[k];
        else l[k] = v;
      }
      x.metadata.labels = l;
    });
  }

  async listPods(ns: string, selector: string): Promise<Pod[]> {
    this.check('list', 'pods');
    return [...this.pods.values()]
      .filter((p) => p.metadata.namespace === ns && matches(p, selector))
      .map(clone);
  }

  watchPods(
    ns: string,
    selector: string,
    onEvent: (e: PodEvent) => void,
    onError?: (e: unknown) => void,
  ): () => void {
    try {
      this.check('watch', 'pods');
    } catch (e) {
      queueMicrotask(() => onError?.(e));
      return () => {};
    }
    const w: Watcher = { ns, selector, onEvent };
    // Like the real one: what exists now arrives first, as ADDED.
    for (const p of this.pods.values()) {
      if (p.metadata.namespace === ns && matches(p, selector)) {
        onEvent({ type: 'ADDED', object: clone(p) });
      }
    }
    this.watchers.add(w);
    return () => {
      this.watchers.delete(w);
    };
  }

  async statefulSetReplicas(ns: string, name: string): Promise<number | null> {
    this.check('get', 'statefulsets');
    return this.sets.get(`${ns}/${name}`) ?? null;
  }
}
