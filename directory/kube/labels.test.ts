import { describe, expect, it } from 'vitest';
import { KubeApiError } from './api.ts';
import { FakeKubeApi } from './fake.ts';
import {
  DIRECTORY_ROLE,
  directoryLabels,
  health,
  LABEL_HEALTH,
  LABEL_RAFT_STATE,
  LABEL_ROLE,
  LabelPublisher,
  type ReplicaState,
} from './labels.ts';
import { fixtures, recordingLogger } from './test-helpers.ts';

const NS = 'kubestorage';
const POD = 'ks-directory-0';

const clock = { t: 1_000_000 };

function setup(o: { maxAttempts?: number } = {}) {
  const api = new FakeKubeApi();
  const pod = structuredClone(fixtures.readyStorePod);
  pod.metadata = {
    name: POD,
    namespace: NS,
    uid: 'dir-0',
    labels: { 'app.kubernetes.io/name': 'kubestorage', 'app.kubernetes.io/component': 'directory' },
  };
  api.put(pod);
  // A fake replica: the test changes its Raft state.
  const replica: { s: ReplicaState; calls: number } = {
    s: { role: 'follower', leaderId: null, commitIndex: 0, appliedIndex: 0 },
    calls: 0,
  };
  const { logger, lines } = recordingLogger();
  const pub = new LabelPublisher({
    api,
    namespace: NS,
    pod: POD,
    status: () => {
      replica.calls++;
      return replica.s;
    },
    logger,
    debounceMs: 1000,
    retryMs: 100,
    maxAttempts: o.maxAttempts ?? 3,
    now: () => clock.t,
  });
  const labels = () => api.get(NS, POD)?.metadata.labels ?? {};
  return { api, replica, pub, lines, labels };
}

describe('directory pod labels', () => {
  it('maps the replica status to the health word', () => {
    const s = (leaderId: string | null, commit = 10, applied = 10): ReplicaState => ({
      role: 'follower',
      leaderId,
      commitIndex: commit,
      appliedIndex: applied,
    });
    expect(health(s(null), false)).toBe('Initializing');
    expect(health(s('d1', 5000, 10), false)).toBe('Initializing');
    expect(health(s('d1'), false)).toBe('Running');
    expect(health(s('d1', 5000, 10), true)).toBe('Busy');
    expect(health(s(null), true)).toBe('Offline');
    expect(health(null, true)).toBe('Offline');
    expect(directoryLabels(s('d1'), true)).toEqual({
      [LABEL_ROLE]: DIRECTORY_ROLE,
      [LABEL_RAFT_STATE]: 'follower',
      [LABEL_HEALTH]: 'Running',
    });
  });

  it('publishes at once, then keeps the labels current as the replica changes (debounced)', async () => {
    const { api, replica, pub, labels } = setup();
    pub.tick();
    await pub.settled();
    expect(labels()).toMatchObject({
      'app.kubernetes.io/component': 'directory', // the pod's own labels are kept
      [LABEL_ROLE]: 'kube-storage-directory',
      [LABEL_RAFT_STATE]: 'follower',
      [LABEL_HEALTH]: 'Initializing',
    });
    // An election: candidate for a moment, then leader. The flap is not published.
    replica.s = { ...replica.s, role: 'candidate' };
    clock.t += 100;
    pub.tick();
    await pub.settled();
    replica.s = { role: 'leader', leaderId: 'ks-directory-0', commitIndex: 7, appliedIndex: 7 };
    clock.t += 100;
    pub.tick();
    await pub.settled();
    expect(labels()[LABEL_RAFT_STATE]).toBe('follower');
    clock.t += 1000;
    pub.tick();
    await pub.settled();
    expect(labels()).toMatchObject({ [LABEL_RAFT_STATE]: 'leader', [LABEL_HEALTH]: 'Running' });
    expect(api.patches.map((p) => p.labels[LABEL_RAFT_STATE])).toEqual(['follower', 'leader']);
    // Nothing changed: no more patches.
    clock.t += 5000;
    pub.tick();
    await pub.settled();
    expect(api.patches).toHaveLength(2);
    // Quorum lost after running: Offline, not Initializing.
    replica.s = { role: 'follower', leaderId: null, commitIndex: 7, appliedIndex: 7 };
    clock.t += 100;
    pub.tick();
    clock.t += 1000;
    pub.tick();
    await pub.settled();
    expect(labels()).toMatchObject({ [LABEL_RAFT_STATE]: 'follower', [LABEL_HEALTH]: 'Offline' });
  });

  it('says Offline on a final stop', async () => {
    const { pub, labels, replica } = setup();
    replica.s = { role: 'leader', leaderId: 'ks-directory-0', commitIndex: 1, appliedIndex: 1 };
    pub.start();
    await pub.settled();
    expect(labels()[LABEL_HEALTH]).toBe('Running');
    await pub.stop(true);
    expect(labels()[LABEL_HEALTH]).toBe('Offline');
  });

  it('RBAC denied: one warning, publishing off, the replica unaffected', async () => {
    const { api, replica, pub, lines } = setup();
    api.deny.add('patch');
    expect(() => pub.tick()).not.toThrow();
    await pub.settled();
    expect(pub.disabled).toBe(true);
    for (let i = 0; i < 10; i++) {
      replica.s = { ...replica.s, role: i % 2 ? 'leader' : 'follower', leaderId: 'x' };
      clock.t += 2000;
      pub.tick();
      await pub.settled();
    }
    const warns = lines.filter((l) => l.level === 'warn');
    expect(warns).toHaveLength(1);
    expect(warns[0]?.msg).toMatch(/denied/);
    expect(JSON.stringify(warns[0]?.obj)).toMatch(/forbidden/);
    expect(api.patches).toHaveLength(0);
    // The status was read once (then the publisher stopped looking).
    expect(replica.calls).toBe(1);
  });

  it('a failing API: bounded retries with backoff, logged once, recovered later', async () => {
    const { api, pub, lines, labels, replica } = setup({ maxAttempts: 3 });
    api.failNext = { count: 1000, status: 503 };
    const start = api.failNext.count;
    for (let i = 0; i < 100; i++) {
      clock.t += 50;
      pub.tick();
      await pub.settled();
    }
    const attempts = start - api.failNext.count;
    expect(attempts).toBe(3);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(pub.disabled).toBe(false);
    // The API recovers and the labels change: published, and the recovery said once.
    api.failNext = { count: 0, status: 503 };
    replica.s = { role: 'leader', leaderId: 'ks-directory-0', commitIndex: 1, appliedIndex: 1 };
    clock.t += 50;
    pub.tick();
    await pub.settled();
    expect(labels()[LABEL_RAFT_STATE]).toBe('leader');
    expect(lines.filter((l) => l.level === 'info')).toHaveLength(1);
  });

  it('a 403 from the API has the recorded Status shape', () => {
    const s = fixtures.forbiddenPatch;
    const e = new KubeApiError(s.code, s.message);
    expect(e.status).toBe(403);
    expect(s.reason).toBe('Forbidden');
  });
});
