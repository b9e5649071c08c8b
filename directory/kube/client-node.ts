// KubeApi over @kubernetes/client-node (1.x: the 2.x line needs Node 22). In a pod:
// KubeConfig.loadFromCluster() (the service account token, CA and KUBERNETES_SERVICE_HOST);
// outside one, a kubeconfig context (the gated real-cluster test).
import * as k8s from '@kubernetes/client-node';
import { type KubeApi, KubeApiError, type Pod, type PodEvent } from './api.ts';

/** Where the API server and credentials come from. */
export type KubeConfigSource = { inCluster: true } | { context?: string; file?: string };

export function loadKubeConfig(src: KubeConfigSource): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if ('inCluster' in src) kc.loadFromCluster();
  else {
    if (src.file) kc.loadFromFile(src.file);
    else kc.loadFromDefault();
    if (src.context) kc.setCurrentContext(src.context);
  }
  return kc;
}

/** Any error of the client as a KubeApiError with the HTTP status (0 when there was none). */
export function toKubeError(e: unknown): KubeApiError {
  if (e instanceof KubeApiError) return e;
  const x = e as { code?: unknown; statusCode?: unknown; body?: unknown; message?: string };
  const status =
    typeof x?.code === 'number' ? x.code : typeof x?.statusCode === 'number' ? x.statusCode : 0;
  let message = x?.message ?? String(e);
  // ApiException's body is the API's Status object (or its JSON text).
  try {
    const body = typeof x?.body === 'string' ? JSON.parse(x.body) : x?.body;
    if (body && typeof body.message === 'string') message = body.message;
  } catch {
    /* keep the exception's own message */
  }
  return new KubeApiError(status, message);
}

export interface ClientNodeKubeApiOptions {
  /** Pause before a broken watch is listed and watched again (default 1 s, doubling to 30 s). */
  rewatchMs?: number;
}

export class ClientNodeKubeApi implements KubeApi {
  private readonly core: k8s.CoreV1Api;
  private readonly apps: k8s.AppsV1Api;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly o: ClientNodeKubeApiOptions = {},
  ) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.apps = kc.makeApiClient(k8s.AppsV1Api);
  }

  async patchPodLabels(ns: string, pod: string, labels: Record<string, string | null>) {
    try {
      await this.core.patchNamespacedPod(
        { name: pod, namespace: ns, body: { metadata: { labels } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
    } catch (e) {
      throw toKubeError(e);
    }
  }

  async listPods(ns: string, selector: string): Promise<Pod[]> {
    return (await this.list(ns, selector)).pods;
  }

  private async list(ns: string, selector: string): Promise<{ pods: Pod[]; rv?: string }> {
    try {
      const r = await this.core.listNamespacedPod({ namespace: ns, labelSelector: selector });
      // The client's V1Pod has Date objects where the JSON has strings: a JSON round trip
      // gives the API's own shape back.
      const pods = JSON.parse(JSON.stringify(r.items)) as Pod[];
      return { pods, rv: r.metadata?.resourceVersion };
    } catch (e) {
      throw toKubeError(e);
    }
  }

  watchPods(
    ns: string,
    selector: string,
    onEvent: (e: PodEvent) => void,
    onError?: (e: unknown) => void,
  ): () => void {
    let stopped = false;
    let abort: AbortController | undefined;
    let retry: NodeJS.Timeout | undefined;
    let delay = this.o.rewatchMs ?? 1000;
    let known = new Map<string, Pod>();
    const watch = new k8s.Watch(this.kc);
    const again = (err: unknown) => {
      if (stopped) return;
      if (err) onError?.(toKubeError(err));
      retry = setTimeout(() => void cycle(), delay);
      delay = Math.min(delay * 2, 30_000);
    };
    const cycle = async () => {
      if (stopped) return;
      let rv: string | undefined;
      try {
        // List, then watch from the list's resourceVersion: nothing falls between.
        const l = await this.list(ns, selector);
        rv = l.rv;
        const now = new Map(l.pods.map((p) => [p.metadata.name, p]));
        for (const [name, p] of known) if (!now.has(name)) onEvent({ type: 'DELETED', object: p });
        for (const p of l.pods) {
          onEvent({ type: known.has(p.metadata.name) ? 'MODIFIED' : 'ADDED', object: p });
        }
        known = now;
      } catch (e) {
        again(e);
        return;
      }
      if (stopped) return;
      abort = await watch.watch(
        `/api/v1/namespaces/${encodeURIComponent(ns)}/pods`,
        { labelSelector: selector, resourceVersion: rv, allowWatchBookmarks: true },
        (type, obj: unknown) => {
          if (type === 'ERROR') {
            // e.g. 410 Expired (too old resource version): list and watch again.
            abort?.abort();
            return;
          }
          if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return;
          delay = this.o.rewatchMs ?? 1000;
          const p = obj as Pod;
          if (type === 'DELETED') known.delete(p.metadata.name);
          else known.set(p.metadata.name, p);
          onEvent({ type, object: p });
        },
        (err) => again(err),
      );
      if (stopped) abort.abort();
    };
    void cycle();
    return () => {
      stopped = true;
      clearTimeout(retry);
      abort?.abort();
    };
  }

  async statefulSetReplicas(ns: string, name: string): Promise<number | null> {
    try {
      const s = await this.apps.readNamespacedStatefulSet({ name, namespace: ns });
      return s.spec?.replicas ?? 1;
    } catch (e) {
      const err = toKubeError(e);
      if (err.status === 404) return null;
      throw err;
    }
  }
}
