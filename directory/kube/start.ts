// `kubestorage directory` on Kubernetes, when asked (KUBESTORAGE_KUBE=1): the pod label
// publisher (labels.ts) and the store pod watch (store-watch.ts), both through the
// in-cluster service account. Never a dependency: off when not asked for, off with one
// warning when there is no API server, no token or no permission; the replica runs the
// same either way.
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from '../../common/log.ts';
import type { KubeApi } from './api.ts';
import { LabelPublisher, type ReplicaState } from './labels.ts';
import { STORE_SELECTOR, type StoreDirectory, StoreWatcher } from './store-watch.ts';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeIntegrationOptions {
  /** The replica: DirectoryServer has both (`host` is its RaftHost, `meta` its RaftMetadata). */
  dir: { host: { status(): ReplicaState; readonly isLeader: boolean }; meta: StoreDirectory };
  logger: Logger;
  /** Default process.env: KUBESTORAGE_KUBE, POD_NAME, POD_NAMESPACE, … (see below). */
  env?: Record<string, string | undefined>;
  /** The API (tests); default: @kubernetes/client-node with the in-cluster config. */
  api?: KubeApi;
  pollMs?: number;
  debounceMs?: number;
  holdMs?: number;
}

export interface KubeIntegration {
  publisher?: LabelPublisher;
  watcher?: StoreWatcher;
  stop(): Promise<void>;
}

const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v);

/**
 * Environment:
 *  - KUBESTORAGE_KUBE=1                    turns it on (default off)
 *  - POD_NAME, POD_NAMESPACE               this pod (downward API; POD_NAME falls back to
 *                                          HOSTNAME, the namespace to the service account's)
 *  - KUBESTORAGE_KUBE_LABELS=0             no label publishing
 *  - KUBESTORAGE_KUBE_STORE_WATCH=0        no store pod watch
 *  - KUBESTORAGE_KUBE_STORE_SELECTOR=…     store pods' label selector (default
 *                                          app.kubernetes.io/name=kubestorage,app.kubernetes.io/component=store)
 *  - KUBESTORAGE_KUBE_SCALE_DOWN_DRAIN=0   a StatefulSet scale-down only marks stores offline
 *  - KUBESTORAGE_KUBE_CONTEXT=NAME         a kubeconfig context instead of the in-cluster
 *                                          config (running outside a cluster)
 */
export async function startKubeIntegration(o: KubeIntegrationOptions): Promise<KubeIntegration> {
  const env = o.env ?? process.env;
  const off: KubeIntegration = { stop: async () => {} };
  if (!truthy(env.KUBESTORAGE_KUBE)) return off;
  const log = o.logger;
  const readSa = (f: string) => {
    try {
      return readFileSync(`${SA_DIR}/${f}`, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const namespace = env.POD_NAMESPACE || readSa('namespace');
  const pod = env.POD_NAME || env.HOSTNAME;
  if (!namespace || !pod) {
    log.warn('KUBESTORAGE_KUBE is set but POD_NAME/POD_NAMESPACE are not: Kubernetes API off');
    return off;
  }
  let api = o.api;
  if (!api) {
    const context = env.KUBESTORAGE_KUBE_CONTEXT;
    if (!context && (!env.KUBERNETES_SERVICE_HOST || !existsSync(`${SA_DIR}/token`))) {
      log.warn(
        'KUBESTORAGE_KUBE is set but there is no in-cluster API access (KUBERNETES_SERVICE_HOST, service account token): Kubernetes API off',
      );
      return off;
    }
    try {
      // Loaded only when asked for: plain `kubestorage directory` never imports the client.
      const { ClientNodeKubeApi, loadKubeConfig } = await import('./client-node.ts');
      api = new ClientNodeKubeApi(loadKubeConfig(context ? { context } : { inCluster: true }));
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'Kubernetes client failed to start: API off');
      return off;
    }
  }
  const r: KubeIntegration = { stop: async () => {} };
  if (env.KUBESTORAGE_KUBE_LABELS !== '0') {
    r.publisher = new LabelPublisher({
      api,
      namespace,
      pod,
      status: () => o.dir.host.status(),
      logger: log,
      pollMs: o.pollMs,
      debounceMs: o.debounceMs,
    });
    r.publisher.start();
  }
  if (env.KUBESTORAGE_KUBE_STORE_WATCH !== '0') {
    r.watcher = new StoreWatcher({
      api,
      namespace,
      directory: o.dir.meta,
      isLeader: () => o.dir.host.isLeader,
      logger: log,
      selector: env.KUBESTORAGE_KUBE_STORE_SELECTOR || STORE_SELECTOR,
      drainOnScaleDown: env.KUBESTORAGE_KUBE_SCALE_DOWN_DRAIN !== '0',
      holdMs: o.holdMs,
    });
    r.watcher.start();
  }
  log.info(
    { pod, namespace, labels: !!r.publisher, storeWatch: !!r.watcher },
    'Kubernetes API integration on',
  );
  r.stop = async () => {
    await r.watcher?.stop();
    await r.publisher?.stop(true);
  };
  return r;
}
