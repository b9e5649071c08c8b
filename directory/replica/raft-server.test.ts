// The Raft directory over real loopback HTTP, real LevelDB: three replicas in this process.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AUTH_HEADER, InternalAuth } from '../../common/internal-auth.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import {
  startTestDirectory,
  type TestDirectory,
  testRecord,
} from '../../test/kit/test-directory.ts';
import { until } from '../../test/kit/until.ts';
import { MetadataError } from '../model/api.ts';
import { MetadataClient } from '../wire/client.ts';

describe('raft directory (3 replicas, loopback HTTP)', () => {
  let d: TestDirectory;
  beforeAll(async () => {
    d = await startTestDirectory(tempDir('ks-raftdir-'), 3, { snapshotEvery: 200 });
  });
  afterAll(() => d?.close());

  it('elects one leader and reports it on every replica', async () => {
    const leader = await until('a leader', () => d.leader());
    await until('all replicas know the leader', () =>
      d.replicas.every((r) => r?.host.leaderId === leader.host.status().id),
    );
    const leaders = d.replicas.filter((r) => r?.host.isLeader);
    expect(leaders).toHaveLength(1);
  });

  it('a write sent to a follower is forwarded, committed and readable on every replica', async () => {
    const follower = d.replicas.find((r) => r && !r.host.isLeader);
    if (!follower) throw new Error('no follower');
    await follower.meta.createBucket({
      name: 'fw',
      owner: 'root',
      createdAt: 1,
      region: 'us-east-1',
    });
    await follower.meta.putObject('fw', testRecord('k1', 5));
    for (const r of d.replicas) {
      // Linearizable reads on each replica: each sees the acknowledged write.
      expect((await r?.meta.getObject('fw', 'k1'))?.size).toBe(5);
    }
    await expect(
      follower.meta.createBucket({ name: 'fw', owner: 'other', createdAt: 2, region: 'us-east-1' }),
    ).rejects.toMatchObject({ code: 'BucketAlreadyExists' });
  });

  it('batches concurrent proposals into few log entries', async () => {
    const leader = d.leader();
    if (!leader) throw new Error('no leader');
    const before = { ...leader.host.stats };
    await Promise.all(
      Array.from({ length: 500 }, (_, i) => leader.meta.putObject('fw', testRecord(`b/${i}`, i))),
    );
    const entries = leader.host.stats.entries - before.entries;
    const cmds = leader.host.stats.commands - before.commands;
    expect(cmds).toBeGreaterThanOrEqual(500);
    expect(entries).toBeLessThan(250);
    const page = await d.client.listObjects('fw', { prefix: 'b/', maxKeys: 1000 });
    expect(page.objects).toHaveLength(500);
  });

  it('a client sends its calls to the leader once a replica named it', async () => {
    const leaderIdx = d.replicas.findIndex((r) => r?.host.isLeader);
    const order = [...d.urls.keys()].sort((a, b) =>
      a === leaderIdx ? 1 : b === leaderIdx ? -1 : 0,
    );
    const c = new MetadataClient(
      order.map((i) => d.urls[i] as string),
      d.auth,
    );
    try {
      expect(c.target).not.toBe(d.urls[leaderIdx]);
      expect((await c.getObject('fw', 'k1'))?.size).toBe(5);
      expect(c.target).toBe(d.urls[leaderIdx]);
      // A client given one replica only keeps it (the leader's own URL may not be reachable).
      const one = new MetadataClient([d.urls[order[0]!] as string], d.auth);
      await one.getBucket('fw');
      expect(one.target).toBe(d.urls[order[0]!]);
      await one.close();
    } finally {
      await c.close();
    }
  });

  it('survives the leader stopping: a new leader, no acknowledged write lost, the old one catches up by snapshot', async () => {
    const oldIdx = d.replicas.findIndex((r) => r?.host.isLeader);
    await d.stop(oldIdx);
    const acked: string[] = [];
    // The client knows all three replicas and waits out the election.
    for (let i = 0; i < 600; i++) {
      await d.client.putObject('fw', testRecord(`after/${i}`, i));
      acked.push(`after/${i}`);
    }
    const newLeader = await until('a new leader', () => d.leader());
    expect(newLeader.host.status().id).not.toBe(d.ids[oldIdx]);
    expect(d.client.target).toBe(d.urls[d.replicas.indexOf(newLeader)]);
    await d.restart(oldIdx);
    const back = d.replicas[oldIdx];
    if (!back) throw new Error('not restarted');
    await until(
      'the restarted replica catches up',
      () => back.host.status().appliedIndex >= newLeader.host.status().commitIndex,
    );
    // 600 writes with snapshotEvery 200 compacted the leader's log past the old replica.
    expect(newLeader.host.stats.snapshotsSent + back.host.stats.snapshotsInstalled).toBeGreaterThan(
      0,
    );
    const direct = new MetadataClient([d.urls[oldIdx] as string], d.auth);
    try {
      const page = await direct.listObjects('fw', { prefix: 'after/', maxKeys: 1000 });
      expect(page.objects.map((o) => o.key).sort()).toEqual(acked.slice().sort());
    } finally {
      await direct.close();
    }
  });

  it('a read sent to a follower just as the leader dies is answered by the next leader', async () => {
    const leaderIdx = d.replicas.findIndex((r) => r?.host.isLeader);
    const follower = d.replicas.find((r, i) => r && i !== leaderIdx);
    if (!follower) throw new Error('no follower');
    await d.stop(leaderIdx);
    // The follower still believes in the dead leader: its read index request goes nowhere
    // and nobody refuses it. It must time out or fail over, not hang.
    const t0 = Date.now();
    const got = await follower.meta.getObject('fw', 'k1');
    expect(got?.size).toBe(5);
    expect(Date.now() - t0).toBeLessThan(4_000);
    await d.restart(leaderIdx);
  });

  /** GET with the cluster secret's token, as admin tools and cluster scripts send it. */
  const signed = (url: string, path: string) =>
    fetch(`${url}${path}`, { headers: { [AUTH_HEADER]: d.auth.sign('GET', path) } });

  it("keeps topology behind the cluster secret: /status, /cluster/liveness, /cluster/cache and /meta's x-ks-leader need a token", async () => {
    const leader = await until('a leader', () => d.leader());
    const secretBits = [...d.ids, ...d.urls.map((u) => u.replace('http://', '')), 'leader'];
    for (const path of ['/status', '/cluster/liveness', '/cluster/cache']) {
      const tries: Record<string, string>[] = [
        {},
        { [AUTH_HEADER]: 'garbage' },
        // A token for another path, or from another secret, is no token.
        { [AUTH_HEADER]: d.auth.sign('GET', '/healthz') },
        { [AUTH_HEADER]: new InternalAuth('another-secret-0123456789').sign('GET', path) },
      ];
      for (const headers of tries) {
        const r = await fetch(`${d.urls[0]}${path}`, { headers });
        const body = await r.text();
        expect(r.status, `${path} ${JSON.stringify(headers)}`).toBe(403);
        for (const bit of secretBits) expect(body).not.toContain(bit);
      }
    }
    const st = await signed(d.urls[0]!, '/status');
    expect(st.status).toBe(200);
    expect(await st.json()).toMatchObject({ id: 'd1', peers: expect.any(Object) });
    const lv = await signed(d.urls[0]!, '/cluster/liveness');
    expect(lv.status).toBe(200);
    expect(Array.isArray(await lv.json())).toBe(true);
    // x-ks-leader on /meta answers names the leader: only for a request with a valid token
    // (an unsigned POST to a follower used to get 403 with the leader's URL).
    const leaderIdx = d.replicas.indexOf(leader);
    const follower = d.urls.find((_, i) => i !== leaderIdx)!;
    const path = '/meta/getBucket';
    const body = JSON.stringify(['nope']);
    const other = new InternalAuth('another-secret-0123456789');
    const metaTries: Record<string, string>[] = [
      {},
      { [AUTH_HEADER]: 'garbage' },
      // Signed for another path, or from another secret.
      d.auth.signBody('POST', '/meta/getObject', body),
      other.signBody('POST', path, body),
    ];
    for (const headers of metaTries) {
      const r = await fetch(`${follower}${path}`, { method: 'POST', headers, body });
      const text = await r.text();
      expect(r.status, JSON.stringify(headers)).toBe(403);
      expect(r.headers.get('x-ks-leader')).toBeNull();
      const all = [...r.headers].map(([k, v]) => `${k}: ${v}`).join('\n') + text;
      for (const bit of secretBits) expect(all).not.toContain(bit);
    }
    // With the secret, the follower names the leader.
    const ok = await fetch(`${follower}${path}`, {
      method: 'POST',
      headers: d.auth.signBody('POST', path, body),
      body,
    });
    expect(ok.status).toBe(200);
    await ok.text();
    expect(ok.headers.get('x-ks-leader')).toBe(d.urls[leaderIdx]);
  });

  it('answers the probes /healthz and /readyz anonymously with one word', async () => {
    await until('a leader', () => d.leader());
    const secretBits = [...d.ids, ...d.urls.map((u) => u.replace('http://', '')), 'leader'];
    for (const url of d.urls) {
      for (const path of ['/healthz', '/readyz']) {
        const r = await until(`${url}${path} ready`, async () => {
          const res = await fetch(`${url}${path}`);
          return res.status === 200 ? res : undefined;
        });
        const body = await r.text();
        expect(body).toBe('ok\n');
        for (const bit of secretBits) expect(body).not.toContain(bit);
      }
    }
  });

  it('serves /status with role, term, leader, indexes and peer health', async () => {
    const r = await signed(d.urls[0]!, '/status');
    const s = (await r.json()) as Record<string, unknown>;
    expect(s).toMatchObject({ id: 'd1' });
    for (const k of ['role', 'term', 'leaderId', 'commitIndex', 'appliedIndex', 'peers']) {
      expect(s).toHaveProperty(k);
    }
    // Peer health as the leader sees it settles within a heartbeat or two after the restart.
    const ls = await until('every peer healthy in the leader status', async () => {
      const leader = d.leader();
      if (!leader) return undefined;
      const st = (await (await signed(d.urls[d.replicas.indexOf(leader)]!, '/status')).json()) as {
        role: string;
        peers: Record<string, { matchIndex: number; health: string }>;
      };
      const settled = Object.values(st.peers).every((p) => p.health === 'ok' && p.matchIndex > 0);
      return settled ? st : undefined;
    });
    expect(Object.values(ls.peers).every((p) => p.health === 'ok' && p.matchIndex > 0)).toBe(true);
    // And stays so on a healthy cluster, through several quorum checks (an election timeout
    // each), on every replica: no flapping (pod labels are built on it), four roles only.
    const seen = new Set<string>();
    for (let i = 0; i < 15; i++) {
      for (const url of d.urls) {
        const st = (await (await signed(url, '/status')).json()) as {
          role: string;
          leaderId: string;
          peers: Record<string, { health: string }>;
        };
        expect(['leader', 'follower', 'candidate', 'learner']).toContain(st.role);
        for (const [id, p] of Object.entries(st.peers)) {
          // A follower knows its leader's health; of the other follower it knows nothing.
          if (st.role === 'leader' || id === st.leaderId) seen.add(`${url} ${id} ${p.health}`);
          else expect(p.health).toBe('unknown');
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect([...seen].filter((h) => !h.endsWith(' ok'))).toEqual([]);
  });
});

describe('raft directory without a quorum', () => {
  let d: TestDirectory;
  beforeAll(async () => {
    d = await startTestDirectory(tempDir('ks-raftq-'), 3, { waitMs: 3_000, bucket: 'q' });
  });
  afterAll(() => d?.close());

  it('a write waits for a leader and fails with Unavailable (→ 503) past the timeout', async () => {
    await d.stop(1);
    await d.stop(2);
    const survivor = d.replicas[0];
    if (!survivor) throw new Error('no survivor');
    // CheckQuorum: a lone leader steps down, so nobody leads now.
    await until('no leader', () => (survivor.host.leaderId === null ? true : undefined), 5_000);
    // Alive, but not ready: Kubernetes keeps the pod and routes nothing to it.
    const url = d.urls[0]!;
    expect([
      (await fetch(`${url}/healthz`)).status,
      await (await fetch(`${url}/healthz`)).text(),
    ]).toEqual([200, 'ok\n']);
    const ready = await fetch(`${url}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([503, 'no-leader\n']);
    const t0 = Date.now();
    const err = await survivor.meta.putObject('q', testRecord('lost', 1)).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'MetadataError', code: 'Unavailable' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_900);
    // It was never proposed, so it must not appear once a quorum is back.
    await d.restart(1);
    await until('a leader again', () => d.leader());
    expect(await survivor.meta.getObject('q', 'lost')).toBeNull();
  });

  it('a write queued while no leader goes on as soon as one is elected', async () => {
    await d.stop(1);
    const survivor = d.replicas[0];
    if (!survivor) throw new Error('no survivor');
    await until('no leader', () => (survivor.host.leaderId === null ? true : undefined), 5_000);
    const pending = survivor.meta.putObject('q', testRecord('queued', 2));
    await new Promise((r) => setTimeout(r, 300));
    await d.restart(2);
    await expect(pending).resolves.toBeNull();
    expect((await survivor.meta.getObject('q', 'queued'))?.size).toBe(2);
  });
});

describe('raft directory log compaction by bytes', () => {
  let d: TestDirectory;
  beforeAll(async () => {
    d = await startTestDirectory(tempDir('ks-raftbytes-'), 3, {
      snapshotBytes: 64 * 1024,
      keepBytes: 16 * 1024,
      bucket: 'lb',
    });
  });
  afterAll(() => d?.close());

  it('compacts once the commands pass snapshotBytes, keeping keepBytes of the newest entries', async () => {
    const leader = d.leader()!;
    // One entry per write (sequential), ~300 bytes of command each: ~120 KiB in all.
    for (let i = 0; i < 400; i++) await d.client.putObject('lb', testRecord(`k/${i}`, i));
    const s = leader.host.status();
    expect(s.snapshotIndex).toBeGreaterThan(0);
    // The kept tail holds at least 16 KiB of commands (~50 entries) and less than the
    // 64 KiB a compaction waits for (~210 entries) plus one apply batch.
    const kept = s.lastIndex - s.snapshotIndex;
    expect(kept).toBeGreaterThanOrEqual((16 * 1024) / 400);
    expect(kept).toBeLessThan(400);

    // A follower away for fewer writes than the kept tail catches up from the log.
    const fi = d.replicas.findIndex((r) => r && !r.host.isLeader);
    await d.stop(fi);
    for (let i = 400; i < 420; i++) await d.client.putObject('lb', testRecord(`k/${i}`, i));
    const sent = leader.host.stats.snapshotsSent;
    await d.restart(fi);
    const back = d.replicas[fi]!;
    await until('the follower catches up', () =>
      back.host.status().appliedIndex >= leader.host.status().commitIndex ? true : undefined,
    );
    expect(leader.host.stats.snapshotsSent).toBe(sent);
    expect(back.host.stats.snapshotsInstalled).toBe(0);
    const direct = new MetadataClient([d.urls[fi] as string], d.auth);
    try {
      const page = await direct.listObjectSummaries('lb', { maxKeys: 1000 });
      expect(page.objects).toHaveLength(420);
    } finally {
      await direct.close();
    }
  });
});

describe('raft directory restart after a snapshot swap cut short', () => {
  it('puts the moved-aside state machine back when the new one never arrived', async () => {
    const root = tempDir('ks-raftswap-');
    const d = await startTestDirectory(root, 1, { snapshotEvery: 20 });
    try {
      await until('a leader', () => d.leader());
      for (let i = 0; i < 60; i++) {
        await d.client.createBucket({ name: `s${i}`, owner: 'root', createdAt: 1, region: 'r' });
      }
      await until('the log compacted', () =>
        d.leader()!.host.status().snapshotIndex > 0 ? true : undefined,
      );
      await d.stop(0);
      // The state as a crash leaves it between `sm` → `sm-old` and `sm-next` → `sm`, with
      // `sm-next` lost (it was renamed by an earlier build's failed swap).
      const dir = path.join(root, 'd1');
      fs.renameSync(path.join(dir, 'sm'), path.join(dir, 'sm-old'));
      fs.mkdirSync(path.join(dir, 'sm-incoming-x1'));
      await d.restart(0);
      await until('a leader', () => d.leader());
      const names = (await d.client.listBuckets('root')).map((b) => b.name);
      expect(names).toHaveLength(60);
      expect(fs.existsSync(path.join(dir, 'sm-old'))).toBe(false);
      expect(fs.existsSync(path.join(dir, 'sm-incoming-x1'))).toBe(false);
    } finally {
      await d.close();
    }
  });
});

describe('raft directory answers on its own routes', () => {
  let d: TestDirectory;
  beforeAll(async () => {
    d = await startTestDirectory(tempDir('ks-raftroutes-'), 1);
    await until('a leader', () => d.leader());
  });
  afterAll(() => d?.close());

  async function post(path: string, body: string, signed = d.auth.signBody('POST', path, body)) {
    const r = await fetch(`${d.urls[0]}${path}`, {
      method: 'POST',
      headers: { ...signed, 'content-type': 'application/json' },
      body,
    });
    return { status: r.status, body: r.status === 204 ? null : await r.json() };
  }

  const beat = JSON.stringify({
    id: 's1',
    url: 'http://127.0.0.1:1',
    zone: 'z',
    capacity: 1000,
    used: 0,
    load: 0,
    volumes: [],
  });

  it('answers each heartbeat failure with its own status', async () => {
    const hb = '/cluster/heartbeat';
    expect(await post(hb, beat)).toEqual({ status: 204, body: null });
    expect(d.replicas[0]!.liveness.get('s1')).toBeDefined();
    expect(await post(hb, '{not json')).toMatchObject({
      status: 400,
      body: { error: 'InvalidArgument' },
    });
    expect(await post(hb, JSON.stringify({ id: 's1' }))).toEqual({
      status: 400,
      body: { error: 'InvalidArgument', message: 'malformed heartbeat' },
    });
    expect(await post(hb, beat, d.auth.signBody('POST', hb, '{}'))).toMatchObject({
      status: 403,
      body: { error: 'Forbidden' },
    });
    const meta = d.replicas[0]!.meta;
    const spy = vi.spyOn(meta, 'heartbeat');
    try {
      spy.mockRejectedValueOnce(new MetadataError('Unavailable', 'no directory leader'));
      expect(await post(hb, beat)).toEqual({
        status: 503,
        body: { error: 'Unavailable', message: 'no directory leader' },
      });
      spy.mockRejectedValueOnce(new Error('disk on fire'));
      expect(await post(hb, beat)).toEqual({
        status: 500,
        body: { error: 'InternalError', message: 'disk on fire' },
      });
    } finally {
      spy.mockRestore();
    }
  });

  it('refuses bad admin calls and unknown routes as JSON errors', async () => {
    const invalid = { status: 400, body: { error: 'InvalidArgument' } };
    expect(await post('/raft/admin/add', '{')).toMatchObject(invalid);
    expect(await post('/raft/admin/add', '{"id":"no spaces"}')).toMatchObject(invalid);
    expect(await post('/raft/admin/add', '{"id":"d9","url":"ftp://x"}')).toEqual({
      status: 400,
      body: { error: 'InvalidArgument', message: 'url: http://host:port' },
    });
    expect(await post('/raft/admin/rename', '{"id":"d9"}')).toEqual({
      status: 404,
      body: { error: 'NotFound', message: 'no admin action rename' },
    });
    expect(await post('/raft/admin/remove', '{"id":"d9"}')).toMatchObject({
      status: 409,
      body: { error: 'Refused' },
    });
    expect(await post('/nowhere', '')).toEqual({
      status: 404,
      body: { error: 'NotFound', message: 'no route for POST /nowhere' },
    });
  });
});
