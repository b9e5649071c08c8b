// The Kubernetes API integration against a real API server. Runs only when
// KUBESTORAGE_K8S_TEST_CONTEXT names a kubeconfig context (KUBECONFIG or ~/.kube/config);
// KUBESTORAGE_K8S_TEST_NAMESPACE (default `default`) must allow get/list/watch/patch on pods
// (and create/delete: the tests make throw-away pods, never scheduled anywhere useful:
// they name a node that does not exist, so they stay Pending), and get on statefulsets.
//
// The first test drives the client adapter (client-node.ts) by hand. The second runs the
// integration as `kubestorage directory` starts it (start.ts: startKubeIntegration with
// KUBESTORAGE_KUBE_CONTEXT, so it loads the client itself) for a stand-in replica that
// leads: the label publisher must put the role / raft-state / health labels on the
// "directory" pod, and the store watcher must mark the "store" pod's node offline when the
// pod is deleted, and the labels must say Offline after stop. Nothing here can run on a
// machine without a Kubernetes API server; it is type-checked with the rest.
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.ts';
import type { NodeRecord, NodeState } from '../model/topology.ts';
import type { Pod, PodEvent } from './api.ts';
import { ClientNodeKubeApi, loadKubeConfig } from './client-node.ts';
import { DIRECTORY_ROLE, LABEL_HEALTH, LABEL_RAFT_STATE, LABEL_ROLE } from './labels.ts';
import { startKubeIntegration } from './start.ts';

const context = process.env.KUBESTORAGE_K8S_TEST_CONTEXT;
const ns = process.env.KUBESTORAGE_K8S_TEST_NAMESPACE || 'default';

if (!context) {
  console.log(
    'directory/kube/real-cluster.test.ts skipped: KUBESTORAGE_K8S_TEST_CONTEXT is not set (no Kubernetes API server reachable from this machine; set it to a kubeconfig context to run against a real cluster)',
  );
}

describe.skipIf(!context)('Kubernetes API (real cluster)', () => {
  const name = `ks-api-test-${Date.now().toString(36)}`;
  const selector = `kubestorage.io/test=${name}`;
  let created = false;

  afterAll(async () => {
    if (!created || !context) return;
    const k8s = await import('@kubernetes/client-node');
    const core = loadKubeConfig({ context }).makeApiClient(k8s.CoreV1Api);
    await core.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 }).catch(() => {});
  });

  it('lists, watches and labels a pod', async () => {
    const kc = loadKubeConfig({ context });
    const api = new ClientNodeKubeApi(kc);
    const events: PodEvent[] = [];
    const stop = api.watchPods(ns, selector, (e) => events.push(e));
    const k8s = await import('@kubernetes/client-node');
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name, labels: { 'kubestorage.io/test': name } },
        spec: {
          nodeName: 'kubestorage-no-such-node',
          containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.9' }],
        },
      },
    });
    created = true;
    const listed = await api.listPods(ns, selector);
    expect(listed.map((p: Pod) => p.metadata.name)).toEqual([name]);
    await api.patchPodLabels(ns, name, { 'kubestorage.io/health': 'Running' });
    const after = await api.listPods(ns, selector);
    expect(after[0]?.metadata.labels?.['kubestorage.io/health']).toBe('Running');
    const deadline = Date.now() + 10_000;
    while (!events.some((e) => e.object.metadata.labels?.['kubestorage.io/health'] === 'Running')) {
      if (Date.now() > deadline) throw new Error('no watch event with the new label');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await api.statefulSetReplicas(ns, 'kubestorage-no-such-set')).toBeNull();
    stop();
  });
});

describe.skipIf(!context)(
  'Kubernetes API integration (real cluster): labels and store watch',
  () => {
    const tag = `ks-int-${Date.now().toString(36)}`;
    const dirPod = `${tag}-directory-0`;
    const storePod = `${tag}-store-0`;
    const selector = `kubestorage.io/test=${tag}`;
    const created: string[] = [];

    const core = async () => {
      const k8s = await import('@kubernetes/client-node');
      return loadKubeConfig({ context }).makeApiClient(k8s.CoreV1Api);
    };
    const makePod = async (name: string, labels: Record<string, string>) => {
      await (await core()).createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name, labels: { 'kubestorage.io/test': tag, ...labels } },
          spec: {
            nodeName: 'kubestorage-no-such-node',
            containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.9' }],
          },
        },
      });
      created.push(name);
    };
    const labelsOf = async (name: string) => {
      const pods = await new ClientNodeKubeApi(loadKubeConfig({ context })).listPods(ns, selector);
      return pods.find((p) => p.metadata.name === name)?.metadata.labels ?? {};
    };
    const waitFor = async (what: string, ok: () => Promise<boolean>, ms = 20_000) => {
      const deadline = Date.now() + ms;
      while (!(await ok())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };

    afterAll(async () => {
      if (!context) return;
      const c = await core();
      for (const name of created) {
        await c.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 }).catch(() => {});
      }
    });

    it('publishes the directory labels on its pod and marks a deleted store pod offline', async () => {
      await makePod(dirPod, { 'app.kubernetes.io/component': 'directory' });
      await makePod(storePod, { 'app.kubernetes.io/component': 'store' });
      // The directory's view: the store pod's node online; every state change recorded.
      const nodes: NodeRecord[] = [
        {
          id: storePod,
          url: `http://${storePod}.ks-store.${ns}.svc:8080`,
          zone: '',
          capacity: 1 << 30,
          state: 'online',
          registeredAt: 1,
          stateSince: 1,
        },
      ];
      const changes: Array<{ id: string; state: NodeState; from?: NodeState }> = [];
      const meta = {
        listNodes: async () => nodes.map((n) => ({ ...n })),
        setNodeState: async (id: string, state: NodeState, since: number, from?: NodeState) => {
          const n = nodes.find((x) => x.id === id);
          if (!n || (from !== undefined && n.state !== from)) {
            throw Object.assign(new Error('precondition'), { code: 'PreconditionFailed' });
          }
          n.state = state;
          n.stateSince = since;
          changes.push({ id, state, from });
        },
      };
      const replica = {
        host: {
          isLeader: true,
          status: () => ({ role: 'leader', leaderId: dirPod, commitIndex: 7, appliedIndex: 7 }),
        },
        meta,
      };
      const k = await startKubeIntegration({
        dir: replica,
        logger: createLogger('kube-real-test', process.env.KUBESTORAGE_LOG_LEVEL ?? 'silent'),
        env: {
          KUBESTORAGE_KUBE: '1',
          KUBESTORAGE_KUBE_CONTEXT: context,
          POD_NAME: dirPod,
          POD_NAMESPACE: ns,
          KUBESTORAGE_KUBE_STORE_SELECTOR: `${selector},app.kubernetes.io/component=store`,
        },
        pollMs: 100,
        debounceMs: 100,
        holdMs: 200,
      });
      try {
        expect(k.publisher).toBeDefined();
        expect(k.watcher).toBeDefined();
        await waitFor('the directory labels on its pod', async () => {
          const l = await labelsOf(dirPod);
          return (
            l[LABEL_ROLE] === DIRECTORY_ROLE &&
            l[LABEL_RAFT_STATE] === 'leader' &&
            l[LABEL_HEALTH] === 'Running'
          );
        });
        // A store pod that never got Ready is not judged by readiness: still online.
        await new Promise((r) => setTimeout(r, 1000));
        expect(changes).toEqual([]);
        expect(k.watcher?.disabled).toBe(false);

        await (await core()).deleteNamespacedPod({ name: storePod, namespace: ns });
        await waitFor('the deleted store pod marked offline', async () =>
          changes.some((c) => c.id === storePod && c.state === 'offline'),
        );
        // Not a StatefulSet member: a deletion never drains.
        expect(changes.some((c) => c.state === 'draining')).toBe(false);
      } finally {
        await k.stop();
      }
      // Stopping publishes Offline (a replica shutting down).
      expect((await labelsOf(dirPod))[LABEL_HEALTH]).toBe('Offline');
    });
  },
);
