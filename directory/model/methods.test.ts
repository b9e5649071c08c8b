// The method table (methods.ts) is the only list of the metadata API: every declared method
// must reach its implementation through the network client and server and through a Raft
// replica, and a client must retry exactly the declared reads.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { InternalAuth } from '../../common/internal-auth.ts';
import { LevelMetadata } from '../engine/meta-level.ts';
import { RaftMetadata } from '../replica/raft-metadata.ts';
import { AmbiguousMetadataError, MetadataClient } from '../wire/client.ts';
import { MetadataServer } from '../wire/server.ts';
import type { ObjectRecord } from './api.ts';
import {
  META_METHODS,
  type MetaApi,
  type MetaMethod,
  READ_METHODS,
  READ_ONLY_METHODS,
  WRITE_METHODS,
  type WriteMethod,
} from './methods.ts';
import { decodeObject } from './object-codec.ts';

const auth = new InternalAuth('methods-test-secret-0123456789');
const METHODS = Object.keys(META_METHODS) as MetaMethod[];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const rec: ObjectRecord = {
  key: 'k',
  size: 1,
  etag: 'e',
  lastModified: 1,
  userMeta: {},
  chunks: [],
  owner: 'o',
};

/** Valid arguments for the writes (a Raft replica checks a command before proposing it). */
const SAMPLE: { [M in WriteMethod]?: Parameters<MetaApi[M]> } = {
  createBucket: [{ name: 'bucket-a', owner: 'o', createdAt: 1, region: 'r' }],
  deleteBucket: ['bucket-a'],
  putObject: ['b', rec],
  deleteObject: ['b', 'k'],
  createUpload: [
    {
      uploadId: 'u',
      bucket: 'b',
      key: 'k',
      initiated: 1,
      owner: 'o',
      object: { userMeta: {}, owner: 'o' },
    },
  ],
  putPart: ['b', 'k', 'u', { partNumber: 1, etag: 'e', size: 1, lastModified: 1, chunks: [] }],
  completeUpload: ['b', 'k', 'u', rec, [1]],
  abortUpload: ['b', 'k', 'u'],
  createUser: [{ id: 'u1', displayName: 'u', createdAt: 1 }],
  deleteUser: ['u1'],
  addKey: [{ accessKey: 'AK', secretKey: 's', userId: 'u1', createdAt: 1 }],
  deleteKey: ['AK'],
  allocateNeedleIds: [5],
  allocateVolumeId: [],
  registerNode: [
    {
      id: 'n1',
      url: 'http://h:1',
      zone: '',
      capacity: 1,
      state: 'online',
      registeredAt: 1,
      stateSince: 1,
    },
  ],
  putHotObject: [
    {
      bucket: 'b',
      key: 'k',
      volumeId: 3,
      needleId: '9',
      cookie: 1,
      size: 1,
      level: 'replicas',
      since: 1,
      reads: 1,
    },
  ],
  deleteHotObject: ['b', 'k'],
  setExtraReplicas: [
    { volumeId: 3, needleId: '9', cookie: 1, stores: ['n1'], bucket: 'b', key: 'k' },
  ],
  setNodeState: ['n1', 'offline', 2],
  createVolume: [
    { id: 3, replicas: ['n1'], replicaCount: 1, state: 'writable', createdAt: 1, version: 1 },
  ],
  updateVolume: [3, 1, { state: 'readonly' }],
};

/** Arguments to call `m` with: JSON-safe, no trailing undefined. */
const argsOf = (m: MetaMethod): unknown[] =>
  (SAMPLE as Record<string, unknown[] | undefined>)[m] ?? [m];

/** Records every method called on it; each returns `${name}-result`. */
function spyStore() {
  const calls: Array<[string, unknown[]]> = [];
  const target = {} as Record<string, unknown>;
  const spy: Record<string, unknown> = new Proxy(target, {
    get(_t, prop) {
      if (prop === 'db') return spy;
      if (typeof prop !== 'string' || !(prop in META_METHODS)) return undefined;
      return (...args: unknown[]) => {
        calls.push([prop, args]);
        return Promise.resolve(`${prop}-result`);
      };
    },
  });
  return { spy, calls };
}

async function listen(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('the method table', () => {
  it('declares a kind for every method, and each implementation has the ones it serves', () => {
    expect(new Set([...WRITE_METHODS, ...READ_METHODS]).size).toBe(
      WRITE_METHODS.length + READ_METHODS.length,
    );
    for (const m of METHODS) {
      const local = META_METHODS[m].startsWith('replica-');
      expect(typeof MetadataClient.prototype[m], m).toBe('function');
      expect(typeof RaftMetadata.prototype[m], m).toBe('function');
      // LevelMetadata holds records only: the replica-served methods are not its.
      expect(typeof (LevelMetadata.prototype as unknown as Record<string, unknown>)[m], m).toBe(
        local ? 'undefined' : 'function',
      );
    }
  });

  it('sends every method through MetadataClient and MetadataServer to the store', async () => {
    const { spy, calls } = spyStore();
    const server = new MetadataServer({ meta: spy as never, auth });
    const addr = await server.listen('127.0.0.1', 0);
    cleanups.push(() => server.close());
    for (const batch of [undefined, false] as const) {
      const c = new MetadataClient(`http://127.0.0.1:${addr.port}`, auth, { batch });
      cleanups.push(() => c.close());
      calls.length = 0;
      const results = await Promise.all(
        METHODS.map((m) => (c[m] as (...a: unknown[]) => Promise<unknown>)(...argsOf(m))),
      );
      const sentAs = (m: MetaMethod) => (m === 'putObject' ? 'putObjectStored' : m);
      expect(results).toEqual(METHODS.map((m) => `${sentAs(m)}-result`));
      expect(calls.map(([m]) => m).sort()).toEqual(METHODS.map(sentAs).sort());
      for (const [m, args] of calls) {
        if (m !== 'putObjectStored' || args[1] !== 'k') expect(args, m).toEqual(argsOf(m as never));
      }
      // putObject travels in stored form, encoded by the client.
      const stored = calls.find(([m, a]) => m === 'putObjectStored' && a[1] === 'k')!;
      expect(stored[1].slice(0, 2)).toEqual(['b', 'k']);
      expect(decodeObject('k', stored[1][2] as string)).toEqual(rec);
    }
  });

  it('retries a declared read elsewhere after a lost answer, and no other method', async () => {
    // The first replica takes every request and drops the connection unanswered.
    const dropper = await listen((req) => {
      req.resume();
      req.on('end', () => req.socket.destroy());
    });
    const got: string[] = [];
    const answerer = await listen((req, res) => {
      got.push(req.url ?? '');
      req.resume();
      req.on('end', () => res.end('{"r":"ok"}'));
    });
    for (const m of METHODS) {
      const c = new MetadataClient([dropper, answerer], auth, { batch: false, deadlineMs: 2000 });
      cleanups.push(() => c.close());
      const out = await (c[m] as (...a: unknown[]) => Promise<unknown>)(...argsOf(m)).catch(
        (e: unknown) => e,
      );
      if (READ_ONLY_METHODS.has(m)) expect(out, m).toBe('ok');
      else expect(out, m).toBeInstanceOf(AmbiguousMetadataError);
    }
    const reads = METHODS.filter(
      (m) => META_METHODS[m] === 'read' || META_METHODS[m] === 'replica-read',
    );
    expect([...READ_ONLY_METHODS].sort()).toEqual([...reads].sort());
    expect(got).toEqual(reads.map((m) => `/meta/${m}`));
  });

  it('has a Raft replica propose every write as its command and serve every read', async () => {
    const { spy, calls } = spyStore();
    const proposed: unknown[] = [];
    let barriers = 0;
    const host = {
      isLeader: true,
      leaderId: 'a',
      stateMachine: spy,
      readBarrier: async () => {
        barriers++;
      },
      propose: async (cmd: unknown) => {
        proposed.push(cmd);
        return { ok: true, value: 'applied' };
      },
      peerUrl: () => undefined,
      onLeaderChange: () => () => {},
    };
    const raft = new RaftMetadata(host as never, { auth, liveness: {} as never });
    for (const m of WRITE_METHODS) {
      if (m === 'putObjectStored') continue; // its text is checked first: below
      proposed.length = 0;
      await expect((raft[m] as (...a: unknown[]) => Promise<unknown>)(...argsOf(m))).resolves.toBe(
        'applied',
      );
      if (m === 'putObject') {
        expect(proposed).toEqual([
          { op: 'putObjectStored', args: ['b', 'k', expect.any(String), null] },
        ]);
      } else expect(proposed, m).toEqual([{ op: m, args: argsOf(m) }]);
    }
    for (const m of READ_METHODS) {
      calls.length = 0;
      await expect((raft[m] as (...a: unknown[]) => Promise<unknown>)(...argsOf(m))).resolves.toBe(
        `${m}-result`,
      );
      expect(calls, m).toEqual([[m, argsOf(m)]]);
    }
    expect(barriers).toBe(READ_METHODS.length);
  });
});
