// The Kubernetes API integration against a real API server. Runs only when
// KUBESTORAGE_K8S_TEST_CONTEXT names a kubeconfig context (KUBECONFIG or ~/.kube/config);
// KUBESTORAGE_K8S_TEST_NAMESPACE (default `default`) must allow get/list/watch/patch on pods
// (and create/delete: the test makes a throw-away pod, never scheduled anywhere useful:
// it names a node that does not exist, so it stays Pending).
import { afterAll, describe, expect, it } from 'vitest';
import type { Pod, PodEvent } from './api.ts';
import { ClientNodeKubeApi, loadKubeConfig } from './client-node.ts';

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
