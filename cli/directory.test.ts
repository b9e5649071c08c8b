// `kubestorage directory`'s topology flags (--id-from-hostname, --peers-dns/--replicas,
// --join auto) parsed and resolved, then as real processes: a group bootstrapped from
// --peers-dns, a replica past the bootstrap ordinals that waits outside it instead of
// bootstrapping, and one that asks the group to add it and becomes a voter.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ReplicaStatus } from '../cli/admin-raft.ts';
import { AUTH_HEADER, InternalAuth } from '../common/internal-auth.ts';
import { freePorts } from '../common/ports.ts';
import { killChildren, startKubestorage, stopChild } from '../test/kit/processes.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { until } from '../test/kit/until.ts';
import {
  dnsPeers,
  hostnameId,
  joinAutoArgs,
  main,
  parsePeersDns,
  podOrdinal,
  resolveTopology,
  selfAdd,
} from './directory.ts';

const SECRET = 'directory-cli-test-secret-0123456789';
const auth = new InternalAuth(SECRET);

describe('--peers-dns and --replicas', () => {
  it('derive the bootstrap pods of a StatefulSet and their URLs', () => {
    const d = parsePeersDns('ks-directory.ks-directory:7001', 3);
    expect(d).toEqual({
      name: 'ks-directory',
      domain: '.ks-directory',
      port: 7001,
      scheme: 'http',
      replicas: 3,
    });
    expect([...dnsPeers(d)]).toEqual([
      ['ks-directory-0', 'http://ks-directory-0.ks-directory:7001'],
      ['ks-directory-1', 'http://ks-directory-1.ks-directory:7001'],
      ['ks-directory-2', 'http://ks-directory-2.ks-directory:7001'],
    ]);
    const fq = parsePeersDns('https://dir.dir-svc.prod.svc.cluster.local:443', 1);
    expect([...dnsPeers(fq)]).toEqual([
      ['dir-0', 'https://dir-0.dir-svc.prod.svc.cluster.local:443'],
    ]);
  });

  it('refuse what is not STATEFULSET.SERVICE[.NS...]:PORT with 1-99 replicas', () => {
    for (const bad of [
      'ks-directory:7001', // no Service: pods have no DNS name of their own
      'ks-directory.ks-directory', // no port
      'ks-directory.ks-directory:0',
      'ks-directory.ks-directory:70000',
      'KS.dir:7001',
      'ks_dir.dir:7001',
      'ftp://ks.dir:7001',
      'ks.dir:7001/path',
    ]) {
      expect(() => parsePeersDns(bad, 3), bad).toThrow(/--peers-dns/);
    }
    for (const n of [0, -1, 1.5, Number.NaN, 100])
      expect(() => parsePeersDns('a.b:1', n), String(n)).toThrow(/--replicas/);
  });

  it('find a pod ordinal only in NAME-<number>', () => {
    expect(podOrdinal('ks-directory', 'ks-directory-0')).toBe(0);
    expect(podOrdinal('ks-directory', 'ks-directory-12')).toBe(12);
    for (const id of ['ks-directory', 'ks-directory-', 'ks-directory-01', 'ks-store-1', 'x-1'])
      expect(podOrdinal('ks-directory', id), id).toBeNull();
    expect(podOrdinal('ks', 'ks-directory-1')).toBeNull();
  });
});

describe('--id-from-hostname', () => {
  it('takes HOSTNAME (the pod name), else the OS host name, up to the first dot', () => {
    expect(hostnameId({ HOSTNAME: 'ks-directory-2' }, 'other')).toBe('ks-directory-2');
    expect(hostnameId({}, 'ks-directory-1.ks-directory.ns.svc.cluster.local')).toBe(
      'ks-directory-1',
    );
    expect(hostnameId({ HOSTNAME: '' }, 'box')).toBe('box');
    expect(() => hostnameId({ HOSTNAME: 'a b' }, 'x')).toThrow(/not a valid id/);
  });
});

describe('--join auto in argv', () => {
  it('becomes --join-auto; a bare --join stays', () => {
    expect(joinAutoArgs(['--id', 'a', '--join', 'auto', '--data', 'd'])).toEqual([
      '--id',
      'a',
      '--join-auto',
      '--data',
      'd',
    ]);
    expect(joinAutoArgs(['--join=auto'])).toEqual(['--join-auto']);
    expect(joinAutoArgs(['--join', '--data', 'auto'])).toEqual(['--join', '--data', 'auto']);
    expect(joinAutoArgs(['--join'])).toEqual(['--join']);
  });
});

describe('resolveTopology', () => {
  const DNS = { 'peers-dns': 'ks-directory.ks-directory:7001', replicas: '3' };
  const host = (name: string) => () => name;

  it('keeps --id with --peers as before, --join included', () => {
    const peers = 'd1=http://127.0.0.1:7001,d2=http://127.0.0.1:7002';
    const t = resolveTopology({ id: 'd2', peers });
    expect(t).toMatchObject({
      id: 'd2',
      join: false,
      selfAdd: false,
      url: 'http://127.0.0.1:7002',
    });
    expect([...t.peers.keys()]).toEqual(['d1', 'd2']);
    expect(resolveTopology({ id: 'd2', peers, join: true })).toMatchObject({
      join: true,
      selfAdd: false,
    });
    expect(() => resolveTopology({ id: 'd3', peers })).toThrow(/not one of the bootstrap peers/);
    // Outside --peers, joining, it needs its URL.
    expect(() => resolveTopology({ id: 'd3', peers, join: true })).toThrow(/--advertise/);
    const d3 = resolveTopology({ id: 'd3', peers, 'join-auto': true, advertise: 'http://h:3/' });
    expect(d3).toMatchObject({ join: true, selfAdd: true, url: 'http://h:3' });
    expect([...d3.peers.keys()]).toEqual(['d1', 'd2', 'd3']);
    expect([...d3.bootstrap.keys()]).toEqual(['d1', 'd2']);
  });

  it('a bootstrap pod bootstraps, with --join auto too (an empty disk at first start)', () => {
    for (const name of ['ks-directory-0', 'ks-directory-2']) {
      const t = resolveTopology(
        { ...DNS, 'id-from-hostname': true, 'join-auto': true },
        host(name),
      );
      expect(t).toMatchObject({
        id: name,
        join: false,
        selfAdd: false,
        url: `http://${name}.ks-directory:7001`,
      });
      expect(t.peers.size).toBe(3);
    }
  });

  it('a pod past the bootstrap ordinals joins and asks to be added', () => {
    const t = resolveTopology(
      { ...DNS, 'id-from-hostname': true, 'join-auto': true },
      host('ks-directory-3'),
    );
    expect(t).toMatchObject({
      id: 'ks-directory-3',
      join: true,
      selfAdd: true,
      url: 'http://ks-directory-3.ks-directory:7001',
    });
    expect([...t.bootstrap.keys()]).toEqual(['ks-directory-0', 'ks-directory-1', 'ks-directory-2']);
    expect(t.peers.get('ks-directory-3')).toBe('http://ks-directory-3.ks-directory:7001');
    // Without --join (auto), a pod past them must not bootstrap a group of its own.
    expect(() =>
      resolveTopology({ ...DNS, 'id-from-hostname': true }, host('ks-directory-3')),
    ).toThrow(/--join/);
    // Plain --join: joins, waits for admin raft add.
    expect(resolveTopology({ ...DNS, id: 'ks-directory-4', join: true }, host('x'))).toMatchObject({
      join: true,
      selfAdd: false,
    });
  });

  it('refuses contradictions and ids that are not pods of the StatefulSet', () => {
    expect(() => resolveTopology({ ...DNS, id: 'ks-store-0' })).toThrow(/not a pod of/);
    expect(() => resolveTopology({ ...DNS, id: 'a', 'id-from-hostname': true })).toThrow(
      /one of them/,
    );
    expect(() => resolveTopology({ ...DNS, id: 'ks-directory-0', peers: 'a=http://a:1' })).toThrow(
      /one of them/,
    );
    expect(() =>
      resolveTopology({ ...DNS, id: 'ks-directory-0', join: true, 'join-auto': true }),
    ).toThrow(/one of them/);
    expect(() => resolveTopology({ 'peers-dns': DNS['peers-dns'], id: 'ks-directory-0' })).toThrow(
      /--replicas/,
    );
    expect(() => resolveTopology({ id: 'a', peers: 'a=http://a:1', replicas: '3' })).toThrow(
      /--replicas goes with --peers-dns/,
    );
    expect(() => resolveTopology({ peers: 'a=http://a:1' })).toThrow(/--id/);
    expect(() => resolveTopology({ id: 'a' })).toThrow(/--peers/);
  });
});

describe('selfAdd', () => {
  const logger = { info: vi.fn(), warn: vi.fn(), error: vi.fn() };
  const log = logger as unknown as Parameters<typeof selfAdd>[0]['log'];
  const fresh = { conf: { voters: [], learners: [] }, term: 0, lastIndex: 0, snapshotIndex: 0 };

  it('asks nothing of a member, nor of a replica that has a log (removed earlier)', async () => {
    const base = { id: 'd4', url: 'http://d4:1', peers: ['http://127.0.0.1:9'], auth, log };
    const signal = new AbortController().signal;
    const member = { ...fresh, conf: { voters: ['d1'], learners: ['d4'] } };
    expect(await selfAdd({ ...base, signal, status: () => member })).toBe('member');
    const removed = { ...fresh, term: 3, lastIndex: 40 };
    expect(await selfAdd({ ...base, signal, status: () => removed })).toBe('has-log');
    expect(logger.warn).toHaveBeenCalled();
  });

  it('keeps asking while no peer answers, and stops on abort', async () => {
    const [port] = await freePorts(1);
    const stop = new AbortController();
    const p = selfAdd({
      id: 'd4',
      url: 'http://d4:1',
      peers: [`http://127.0.0.1:${port}`],
      auth,
      log,
      signal: stop.signal,
      status: () => fresh,
      everyMs: 20,
      timeoutMs: 500,
    });
    await new Promise((r) => setTimeout(r, 100));
    stop.abort();
    expect(await p).toBe('stopped');
  });
});

describe('main', () => {
  it('prints the help with the new flags', async () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await main([
        '--id-from-hostname',
        '--peers-dns',
        'a.b:1',
        '--replicas',
        '3',
        '--join',
        'auto',
        '--help',
      ]);
      const text = write.mock.calls.map((c) => String(c[0])).join('');
      for (const f of [
        '--id-from-hostname',
        '--peers-dns',
        '--replicas',
        '--join auto',
        '--advertise',
      ])
        expect(text).toContain(f);
    } finally {
      write.mockRestore();
    }
  });
});

// ---- real processes ----

afterEach(() => killChildren());

async function status(url: string): Promise<ReplicaStatus | null> {
  try {
    const res = await fetch(`${url}/status`, {
      headers: { [AUTH_HEADER]: auth.sign('GET', '/status') },
      signal: AbortSignal.timeout(1_000),
    });
    return res.ok ? ((await res.json()) as ReplicaStatus) : null;
  } catch {
    return null;
  }
}

function startReplica(args: string[], env: Record<string, string> = {}, data = tempDir('ks-dir-')) {
  return startKubestorage(['directory', '--data', data, ...args], {
    env: {
      ...process.env,
      KUBESTORAGE_CLUSTER_SECRET: SECRET,
      KUBESTORAGE_LOG_LEVEL: 'info',
      ...env,
    },
  });
}

describe('kubestorage directory (processes)', () => {
  it('pod 0 of --peers-dns bootstraps; a pod past --replicas waits outside the group', async () => {
    const [p0, p1] = await freePorts(2);
    const url0 = `http://127.0.0.1:${p0}`;
    // One bootstrap replica elects itself without its peers: their names need not resolve.
    // A bootstrap ordinal with --join auto and an empty data directory bootstraps.
    const a = startReplica(
      [
        '--id-from-hostname',
        '--listen',
        `127.0.0.1:${p0}`,
        '--peers-dns',
        `ks-directory.invalid:${p0}`,
        '--replicas',
        '1',
        '--join',
        'auto',
      ],
      { HOSTNAME: 'ks-directory-0' },
    );
    const s0 = await until(
      'ks-directory-0 leads',
      async () => {
        const s = await status(url0);
        return s?.role === 'leader' && s;
      },
      20_000,
    );
    expect(s0.id).toBe('ks-directory-0');
    expect(s0.conf).toEqual({ voters: ['ks-directory-0'], learners: [] });

    const b = startReplica(
      [
        '--id-from-hostname',
        '--listen',
        `127.0.0.1:${p1}`,
        '--peers-dns',
        `ks-directory.invalid:${p0}`,
        '--replicas',
        '1',
        '--join=auto',
      ],
      { HOSTNAME: 'ks-directory-1' },
    );
    await b.waitFor(/waiting to be added to the group/, 20_000, 'all');
    const s1 = await status(`http://127.0.0.1:${p1}`);
    expect(s1).toMatchObject({ id: 'ks-directory-1', leaderId: null, term: 0 });
    expect(s1!.conf).toEqual({ voters: [], learners: [] }); // no group of its own
    expect((await fetch(`http://127.0.0.1:${p1}/readyz`)).status).toBe(503);
    await stopChild(b.child);
    await stopChild(a.child);
  }, 60_000);

  it('a replica outside --peers with --join auto asks to be added and becomes a voter', async () => {
    const [pa, pb] = await freePorts(2);
    const ua = `http://127.0.0.1:${pa}`;
    const ub = `http://127.0.0.1:${pb}`;
    const a = startReplica(['--id', 'd1', '--listen', `127.0.0.1:${pa}`, '--peers', `d1=${ua}`]);
    await until('d1 leads', async () => (await status(ua))?.role === 'leader', 20_000);
    const dataB = tempDir('ks-dir-');
    const argsB = [
      ...['--id', 'd2', '--listen', `127.0.0.1:${pb}`, '--peers', `d1=${ua}`],
      ...['--advertise', ub, '--join', 'auto'],
    ];
    const b = startReplica(argsB, {}, dataB);
    await b.waitFor(/added to the group as a learner/, 20_000, 'all');
    const s = await until(
      'd2 promoted to voter',
      async () => {
        const st = await status(ua);
        return st?.conf.voters.includes('d2') && st;
      },
      20_000,
    );
    expect(s.conf).toEqual({ voters: ['d1', 'd2'], learners: [] });
    await until('d2 ready', async () => (await fetch(`${ub}/readyz`)).status === 200, 20_000, {
      retryErrors: true,
    });
    // Restarted on its data, it is a member: it asks nothing.
    await stopChild(b.child);
    const b2 = startReplica(argsB, {}, dataB);
    await b2.waitFor(/directory replica listening/, 20_000, 'all');
    await until(
      'd2 ready again',
      async () => (await fetch(`${ub}/readyz`)).status === 200,
      20_000,
      {
        retryErrors: true,
      },
    );
    expect(b2.output()).not.toMatch(/waiting to be added|added to the group/);
    await stopChild(b2.child);
    await stopChild(a.child);
  }, 60_000);
});
