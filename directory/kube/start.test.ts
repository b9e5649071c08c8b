import { describe, expect, it } from 'vitest';
import { FakeKubeApi } from './fake.ts';
import { LABEL_HEALTH, LABEL_RAFT_STATE } from './labels.ts';
import { startKubeIntegration } from './start.ts';
import { recordingLogger, storePod } from './test-helpers.ts';

const replica = () => ({
  host: {
    isLeader: true,
    status: () => ({ role: 'leader', leaderId: 'ks-directory-0', commitIndex: 3, appliedIndex: 3 }),
  },
  meta: { listNodes: async () => [], setNodeState: async () => {} },
});

describe('startKubeIntegration', () => {
  it('is off unless asked for (plain `kubestorage directory`, `cluster up`)', async () => {
    const { logger, lines } = recordingLogger();
    const api = new FakeKubeApi();
    const k = await startKubeIntegration({ dir: replica(), logger, env: {}, api });
    expect(k.publisher).toBeUndefined();
    expect(k.watcher).toBeUndefined();
    expect(lines).toEqual([]);
    await k.stop();
  });

  it('asked for outside a cluster: one warning, then off', async () => {
    const { logger, lines } = recordingLogger();
    const k = await startKubeIntegration({
      dir: replica(),
      logger,
      env: { KUBESTORAGE_KUBE: '1', POD_NAME: 'ks-directory-0', POD_NAMESPACE: 'ks' },
    });
    expect(k.publisher).toBeUndefined();
    expect(lines.map((l) => l.level)).toEqual(['warn']);
    await k.stop();
  });

  it('on: labels its pod and watches the stores; stop says Offline', async () => {
    const api = new FakeKubeApi();
    const me = storePod('ks-directory-0', 'ks');
    me.metadata.labels = { 'app.kubernetes.io/component': 'directory' };
    api.put(me);
    const { logger } = recordingLogger();
    const k = await startKubeIntegration({
      dir: replica(),
      logger,
      api,
      env: { KUBESTORAGE_KUBE: 'true', POD_NAME: 'ks-directory-0', POD_NAMESPACE: 'ks' },
    });
    await k.publisher?.settled();
    expect(api.get('ks', 'ks-directory-0')?.metadata.labels).toMatchObject({
      [LABEL_RAFT_STATE]: 'leader',
      [LABEL_HEALTH]: 'Running',
    });
    expect(api.watchCount).toBe(1);
    await k.stop();
    expect(api.watchCount).toBe(0);
    expect(api.get('ks', 'ks-directory-0')?.metadata.labels?.[LABEL_HEALTH]).toBe('Offline');
  });
});
