import { describe, expect, it } from 'vitest';
import type { NodeRecord, NodeState } from '../model/topology.ts';
import { type Pod, podReady, statefulSetMember } from './api.ts';
import { FakeKubeApi } from './fake.ts';
import { downReason, nodeForPod, type StoreDirectory, StoreWatcher } from './store-watch.ts';
import { fixtures, notReady, recordingLogger, storePod, terminating } from './test-helpers.ts';

const NS = 'kubestorage';

/** The directory's node records in memory, with every state change it was asked for. */
class FakeDirectory implements StoreDirectory {
  readonly nodes = new Map<string, NodeRecord>();
  readonly changes: Array<{ id: string; state: NodeState }> = [];
  add(id: string, url = `http://${id}.ks-store:8080`) {
    this.nodes.set(id, {
      id,
      url,
      zone: '',
      capacity: 1,
      state: 'online',
      registeredAt: 1,
      stateSince: 1,
    });
  }
  state(id: string) {
    return this.nodes.get(id)?.state;
  }
  async listNodes() {
    return [...this.nodes.values()].map((n) => ({ ...n }));
  }
  async setNodeState(id: string, state: NodeState, since: number) {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    n.state = state;
    n.stateSince = since;
    this.changes.push({ id, state });
  }
}

function setup(opts: { leader?: boolean; stores?: number; replicas?: number } = {}) {
  const api = new FakeKubeApi();
  const dir = new FakeDirectory();
  const n = opts.stores ?? 3;
  for (let i = 0; i < n; i++) {
    dir.add(`ks-store-${i}`);
    api.put(storePod(`ks-store-${i}`));
  }
  api.setStatefulSet(NS, 'ks-store', opts.replicas ?? n);
  const leader = { is: opts.leader ?? true };
  const { logger, lines } = recordingLogger();
  const w = new StoreWatcher({
    api,
    namespace: NS,
    directory: dir,
    isLeader: () => leader.is,
    logger,
    holdMs: 20,
  });
  w.start();
  return { api, dir, w, leader, lines };
}

describe('recorded pod shapes', () => {
  it('reads Ready, termination and the StatefulSet ordinal from the API JSON', () => {
    const p = structuredClone(fixtures.readyStorePod) as Pod;
    expect(podReady(p)).toBe(true);
    expect(statefulSetMember(p)).toEqual({ set: 'ks-store', ordinal: 1 });
    expect(downReason(p, true)).toBeNull();
    const nr = structuredClone(p);
    notReady(nr);
    expect(podReady(nr)).toBe(false);
    expect(downReason(nr, true)).toBe('not ready');
    expect(downReason(nr, false)).toBeNull(); // never Ready: readiness does not count
    const t = structuredClone(p);
    terminating(t);
    expect(downReason(t, false)).toBe('terminating');
    const f = structuredClone(p);
    f.status = { ...f.status, phase: 'Failed' };
    expect(downReason(f, false)).toBe('phase Failed');
    expect(fixtures.storeStatefulSet.spec.replicas).toBe(2);
  });

  it('maps a pod to its node by id, by DNS name or by IP', () => {
    const p = storePod('ks-store-4');
    const node = (id: string, url: string): NodeRecord => ({
      id,
      url,
      zone: '',
      capacity: 0,
      state: 'online',
      registeredAt: 0,
      stateSince: 0,
    });
    expect(nodeForPod(p, [node('ks-store-4', 'http://x:1')])?.id).toBe('ks-store-4');
    expect(nodeForPod(p, [node('s4', 'http://ks-store-4.ks-store:8080')])?.id).toBe('s4');
    expect(nodeForPod(p, [node('s5', 'http://ks-store-40.ks-store:8080')])).toBeUndefined();
    expect(nodeForPod(p, [node('s6', `http://${p.status?.podIP}:8080`)])?.id).toBe('s6');
  });
});

describe('store pod watch', () => {
  it('a Ready store pod turning NotReady: its node offline at once', async () => {
    const { api, dir, w } = setup();
    await w.settled();
    expect(dir.changes).toEqual([]);
    api.update(NS, 'ks-store-1', notReady);
    await w.settled();
    expect(dir.state('ks-store-1')).toBe('offline');
    expect(dir.state('ks-store-0')).toBe('online');
    expect(w.stats.offlined).toBe(1);
    await w.stop();
  });

  it('a pod that was never Ready (starting) is left to heartbeats', async () => {
    const { api, dir, w } = setup({ stores: 0 });
    dir.add('ks-store-0');
    const p = storePod('ks-store-0');
    p.status = { ...p.status, phase: 'Pending', conditions: fixtures.pendingConditions };
    api.put(p);
    await w.settled();
    expect(dir.state('ks-store-0')).toBe('online');
    await w.stop();
  });

  it('keeps the node offline while its pod stays down, and leaves a Ready pod to heartbeats', async () => {
    const { api, dir, w } = setup();
    api.update(NS, 'ks-store-2', notReady);
    await w.settled();
    expect(dir.state('ks-store-2')).toBe('offline');
    // The cluster manager reconciles a store that still heartbeats back online...
    await dir.setNodeState('ks-store-2', 'online', Date.now());
    await new Promise((r) => setTimeout(r, 80));
    await w.settled();
    // ...but its pod is still NotReady: offline again.
    expect(dir.state('ks-store-2')).toBe('offline');
    // Ready again: the watcher does nothing more (heartbeats and reconciliation do).
    api.update(NS, 'ks-store-2', (p) => {
      p.status = structuredClone(fixtures.readyStorePod.status);
    });
    await dir.setNodeState('ks-store-2', 'online', Date.now());
    await new Promise((r) => setTimeout(r, 80));
    await w.settled();
    expect(dir.state('ks-store-2')).toBe('online');
    await w.stop();
  });

  it('a pod deleted (not a scale-down, e.g. a rollout): offline, not draining', async () => {
    const { api, dir, w } = setup();
    api.update(NS, 'ks-store-0', terminating);
    await w.settled();
    expect(dir.state('ks-store-0')).toBe('offline');
    api.remove(NS, 'ks-store-0');
    await w.settled();
    expect(dir.state('ks-store-0')).toBe('offline');
    // The StatefulSet makes it again (a new uid): not judged until it has been Ready.
    const p = storePod('ks-store-0');
    p.status = { ...p.status, phase: 'Pending', conditions: fixtures.pendingConditions };
    api.put(p);
    await w.settled();
    expect(dir.changes.map((c) => c.state)).toEqual(['offline']);
    await w.stop();
  });

  it('StatefulSet scale-down: the pod past the new count is draining, not removed', async () => {
    const { api, dir, w, lines } = setup({ stores: 3 });
    api.setStatefulSet(NS, 'ks-store', 2); // kubectl scale sts/ks-store --replicas=2
    api.update(NS, 'ks-store-2', terminating);
    await w.settled();
    expect(dir.state('ks-store-2')).toBe('draining');
    expect(w.stats.drained).toBe(1);
    // While its preStop hook waits, the terminating pod keeps sending events and the hold
    // check keeps running: neither turns the draining store offline.
    api.update(NS, 'ks-store-2', (p) => {
      p.metadata.labels = { ...p.metadata.labels, touched: '1' };
    });
    await new Promise((r) => setTimeout(r, 80));
    await w.settled();
    expect(dir.state('ks-store-2')).toBe('draining');
    // The manager marks it removed once its volumes are elsewhere; then the pod goes.
    await dir.setNodeState('ks-store-2', 'removed', Date.now());
    api.remove(NS, 'ks-store-2');
    await new Promise((r) => setTimeout(r, 80));
    await w.settled();
    expect(dir.changes).toEqual([
      { id: 'ks-store-2', state: 'draining' },
      { id: 'ks-store-2', state: 'removed' },
    ]);
    expect(dir.state('ks-store-0')).toBe('online');
    expect(dir.state('ks-store-1')).toBe('online');
    expect(lines.some((l) => /scaled down/.test(l.msg ?? ''))).toBe(true);
    await w.stop();
  });

  it('a new leader finds a scaled-down pod already draining and leaves it so', async () => {
    const { api, dir, w, leader } = setup({ stores: 3, leader: false });
    api.setStatefulSet(NS, 'ks-store', 2);
    await dir.setNodeState('ks-store-2', 'draining', Date.now()); // the old leader's doing
    api.update(NS, 'ks-store-2', terminating);
    await w.settled();
    leader.is = true;
    api.update(NS, 'ks-store-2', (p) => {
      p.metadata.labels = { ...p.metadata.labels, touched: '1' };
    });
    await new Promise((r) => setTimeout(r, 80));
    await w.settled();
    expect(dir.state('ks-store-2')).toBe('draining');
    expect(dir.changes).toEqual([{ id: 'ks-store-2', state: 'draining' }]);
    await w.stop();
  });

  it('a scale to 0 is a shutdown: offline, never removed', async () => {
    const { api, dir, w } = setup({ stores: 2 });
    api.setStatefulSet(NS, 'ks-store', 0);
    api.update(NS, 'ks-store-1', terminating);
    api.update(NS, 'ks-store-0', terminating);
    await w.settled();
    expect(dir.state('ks-store-0')).toBe('offline');
    expect(dir.state('ks-store-1')).toBe('offline');
    await w.stop();
  });

  it('only the leader acts; a new leader catches up on pods already down', async () => {
    const { api, dir, w, leader } = setup({ leader: false });
    api.update(NS, 'ks-store-1', notReady);
    api.update(NS, 'ks-store-0', terminating);
    api.remove(NS, 'ks-store-0');
    await w.settled();
    expect(dir.changes).toEqual([]);
    leader.is = true;
    await new Promise((r) => setTimeout(r, 80));
    await w.settled();
    expect(dir.state('ks-store-1')).toBe('offline');
    expect(dir.state('ks-store-0')).toBe('offline');
    await w.stop();
  });

  it('RBAC denied: the watch goes off with one warning', async () => {
    const api = new FakeKubeApi();
    api.deny.add('watch');
    const dir = new FakeDirectory();
    const { logger, lines } = recordingLogger();
    const w = new StoreWatcher({
      api,
      namespace: NS,
      directory: dir,
      isLeader: () => true,
      logger,
    });
    w.start();
    await new Promise((r) => setTimeout(r, 10));
    expect(w.disabled).toBe(true);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(api.watchCount).toBe(0);
    await w.stop();
  });

  it('a directory error is logged, not thrown, and the next event goes on', async () => {
    const { api, dir, w, lines } = setup();
    const real = dir.setNodeState.bind(dir);
    let fail = true;
    dir.setNodeState = async (id, s, t) => {
      if (fail) {
        fail = false;
        throw new Error('Unavailable: no leader');
      }
      return real(id, s, t);
    };
    api.update(NS, 'ks-store-1', notReady);
    await w.settled();
    expect(lines.some((l) => l.level === 'warn')).toBe(true);
    // The hold check retries.
    await new Promise((r) => setTimeout(r, 80));
    await w.settled();
    expect(dir.state('ks-store-1')).toBe('offline');
    await w.stop();
  });
});
