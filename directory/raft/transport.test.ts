import crypto from 'node:crypto';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { AUTH_HEADER, InternalAuth } from '../../common/internal-auth.ts';
import { close, listen } from '../../common/internal-http.ts';
import { until as poll } from '../../test/kit/until.ts';
import {
  decodeFrame,
  encodeFrame,
  RaftTransport,
  raftRoutes,
  type SnapshotMessage,
  type SnapshotReceiver,
  type SnapshotSource,
} from './transport.ts';
import type { Message, NodeId } from './types.ts';

const auth = new InternalAuth('raft-transport-test-secret');
const servers: http.Server[] = [];
const transports: RaftTransport[] = [];

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => close(s)));
});

const until = (cond: () => boolean, what: string, ms = 5_000) =>
  poll(what, cond, ms, { everyMs: 5 });

/** Records what the receiving side saw. */
class Receiver implements SnapshotReceiver {
  posts: Message[][] = [];
  staged = new Map<string, Buffer[]>();
  chunks = 0;
  finished: Array<{ id: string; msg: SnapshotMessage; data: Buffer }> = [];
  aborted: string[] = [];
  begun = 0;

  get msgs(): Message[] {
    return this.posts.flat();
  }
  async begin(): Promise<string> {
    const id = `snap-${++this.begun}`;
    this.staged.set(id, []);
    return id;
  }
  async chunk(id: string, data: Buffer): Promise<void> {
    this.chunks++;
    this.staged.get(id)!.push(Buffer.from(data));
  }
  async finish(id: string, msg: SnapshotMessage): Promise<void> {
    this.finished.push({ id, msg, data: Buffer.concat(this.staged.get(id)!) });
    this.staged.delete(id);
  }
  async abort(id: string): Promise<void> {
    this.aborted.push(id);
    this.staged.delete(id);
  }
}

async function startPeer(rx: Receiver, port = 0): Promise<string> {
  const routes = raftRoutes({
    auth,
    onMessages: (m) => rx.posts.push(m),
    snapshots: rx,
  });
  const server = http.createServer((req, res) => {
    if (!routes(req, res)) res.writeHead(404).end('not raft');
  });
  servers.push(server);
  const addr = await listen(server, '127.0.0.1', port);
  return `http://127.0.0.1:${addr.port}`;
}

function transport(peers: Record<NodeId, string>, opts: Partial<{ auth: InternalAuth }> = {}) {
  const errors: Array<{ peer: NodeId; err: Error }> = [];
  const t = new RaftTransport({
    self: 'a',
    peers: new Map(Object.entries(peers)),
    auth: opts.auth ?? auth,
    onError: (peer, err) => errors.push({ peer, err }),
    timeoutMs: 2_000,
  });
  transports.push(t);
  return { t, errors };
}

function resp(to: NodeId, i: number): Message {
  return {
    type: 'appendResp',
    from: 'a',
    to,
    term: 1,
    success: true,
    index: i,
    hint: 0,
    readSeq: 0,
  };
}

function indices(msgs: Message[]): number[] {
  return msgs.map((m) => (m.type === 'appendResp' ? m.index : -1));
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

function signedPost(base: string, path: string, body: string | Buffer): Promise<Response> {
  return fetch(base + path, {
    method: 'POST',
    headers: { ...auth.signBody('POST', path, body) },
    body,
  });
}

describe('RaftTransport messages', () => {
  it('batches a burst into few POSTs and keeps per-peer order', async () => {
    const rb = new Receiver();
    const rc = new Receiver();
    const { t, errors } = transport({ b: await startPeer(rb), c: await startPeer(rc) });
    for (let i = 0; i < 1000; i++) t.send([resp('b', i), resp('c', i)]);
    // A second burst spread over event-loop turns still coalesces behind the POST in flight.
    for (let i = 1000; i < 1500; i++) {
      t.send([resp('b', i)]);
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => rb.msgs.length === 1500 && rc.msgs.length === 1000, 'delivery');
    expect(indices(rb.msgs)).toEqual(range(1500));
    expect(indices(rc.msgs)).toEqual(range(1000));
    expect(rb.posts.length).toBeLessThan(30);
    expect(rc.posts.length).toBeLessThan(10);
    expect(rb.msgs.every((m) => m.to === 'b')).toBe(true);
    expect(errors).toEqual([]);
  });

  it('refuses a bad signature with 403 and delivers nothing', async () => {
    const rb = new Receiver();
    const url = await startPeer(rb);
    const { t, errors } = transport(
      { b: url },
      { auth: new InternalAuth('some-other-secret-value') },
    );
    t.send([resp('b', 1)]);
    await until(() => errors.length > 0, 'error report');
    expect(errors[0]!.peer).toBe('b');
    expect(errors[0]!.err.message).toMatch(/403/);
    const unsigned = await fetch(`${url}/raft/msgs`, { method: 'POST', body: '[]' });
    expect(unsigned.status).toBe(403);
    // A token for another path does not carry over.
    const other = await fetch(`${url}/raft/msgs`, {
      method: 'POST',
      headers: { ...auth.signBody('POST', '/raft/snapshot/begin', '[]') },
      body: '[]',
    });
    expect(other.status).toBe(403);
    // Nor does a token for another body (a header seen on the wire, replayed with a forgery).
    const forged = await fetch(`${url}/raft/msgs`, {
      method: 'POST',
      headers: { ...auth.signBody('POST', '/raft/msgs', '[]') },
      body: '[{"type":"vote","from":"x","to":"b","term":99}]',
    });
    expect(forged.status).toBe(403);
    // And a token without a body does not pass for one with it.
    const pathOnly = await fetch(`${url}/raft/msgs`, {
      method: 'POST',
      headers: { [AUTH_HEADER]: auth.sign('POST', '/raft/msgs') },
      body: '[]',
    });
    expect(pathOnly.status).toBe(403);
    expect(rb.posts).toEqual([]);
  });

  it('rejects malformed bodies with 400 and leaves other paths alone', async () => {
    const rb = new Receiver();
    const url = await startPeer(rb);
    const ok = resp('b', 1);
    const bad = [
      '{not json',
      JSON.stringify({ ...ok }),
      JSON.stringify([ok, null]),
      JSON.stringify([{ ...ok, to: undefined }]),
      JSON.stringify([{ ...ok, term: '1' }]),
      JSON.stringify([{ ...ok, type: 'nonsense' }]),
      // Snapshots only come through /raft/snapshot/finish, with their data.
      JSON.stringify([{ type: 'snapshot', from: 'a', to: 'b', term: 1, meta: {} }]),
    ];
    for (const body of bad) expect((await signedPost(url, '/raft/msgs', body)).status).toBe(400);
    expect(rb.posts).toEqual([]);
    expect((await signedPost(url, '/raft/msgs', JSON.stringify([ok]))).status).toBe(204);
    expect(rb.msgs).toEqual([ok]);
    expect((await fetch(`${url}/raft/msgs`)).status).toBe(405);
    const elsewhere = await fetch(`${url}/raft/other`, { method: 'POST' });
    expect(await elsewhere.text()).toBe('not raft');
  });

  it('frames entry payloads as raw bytes and restores them exactly', async () => {
    const rb = new Receiver();
    const { t, errors } = transport({ b: await startPeer(rb) });
    const append: Message = {
      type: 'append',
      from: 'a',
      to: 'b',
      term: 3,
      prevIndex: 6,
      prevTerm: 2,
      entries: [
        { index: 7, term: 3, kind: 'cmd', data: '[{"op":"putObject","args":["b\\"q\\u0000"]}]' },
        { index: 8, term: 3, kind: 'noop' },
        { index: 9, term: 3, kind: 'cmd', data: '' },
        {
          index: 10,
          term: 3,
          kind: 'conf',
          data: '{"id":"é😀","url":"x"}',
          conf: { voters: ['a'], learners: [] },
        },
      ],
      commit: 6,
      readSeq: 0,
    };
    const msgs = [append, resp('b', 1), { ...append, entries: [] }];
    expect(decodeFrame(encodeFrame(msgs))).toEqual(msgs);
    t.send(msgs);
    await until(() => rb.msgs.length === 3, 'delivery');
    expect(rb.msgs).toEqual(msgs);
    expect(errors).toEqual([]);
    const frame = encodeFrame(msgs);
    const type = { 'content-type': 'application/x-raft-msgs' };
    const bad = [
      frame.subarray(0, 3),
      frame.subarray(0, frame.length - 1),
      Buffer.concat([frame, Buffer.from('x')]),
    ];
    for (const body of bad) {
      const r = await fetch(`${await startPeer(rb)}/raft/msgs`, {
        method: 'POST',
        headers: { ...auth.signBody('POST', '/raft/msgs', body), ...type },
        body,
      });
      expect(r.status).toBe(400);
    }
    expect(rb.msgs.length).toBe(3);
  });

  it('survives a peer that is down and delivers once it is back', async () => {
    const probe = http.createServer();
    const { port } = await listen(probe, '127.0.0.1', 0);
    await close(probe);
    const { t, errors } = transport({ b: `http://127.0.0.1:${port}` });
    for (let i = 0; i < 100; i++) expect(() => t.send([resp('b', i)])).not.toThrow();
    await until(() => errors.length > 0, 'error report');
    await new Promise((r) => setTimeout(r, 100));
    // Rate-limited: a burst of failures is one report.
    expect(errors.length).toBe(1);

    const rb = new Receiver();
    await startPeer(rb, port);
    // As Raft does: keep sending until the peer answers.
    for (let i = 1000; rb.msgs.length === 0; i++) {
      t.send([resp('b', i)]);
      await new Promise((r) => setTimeout(r, 20));
      if (i > 1200) throw new Error('peer never reached');
    }
    const before = rb.msgs.length;
    for (let i = 0; i < 100; i++) t.send([resp('b', 5000 + i)]);
    await until(() => rb.msgs.length === before + 100, 'delivery after recovery');
    expect(indices(rb.msgs.slice(before))).toEqual(range(100, 5000));
  });

  it('follows setPeer to a new address and stops at removePeer', async () => {
    const r1 = new Receiver();
    const r2 = new Receiver();
    const { t } = transport({ b: await startPeer(r1) });
    t.send([resp('b', 1)]);
    await until(() => r1.msgs.length === 1, 'first peer');
    t.setPeer('b', await startPeer(r2));
    t.send([resp('b', 2)]);
    await until(() => r2.msgs.length === 1, 'moved peer');
    t.removePeer('b');
    t.send([resp('b', 3)]);
    await new Promise((r) => setTimeout(r, 50));
    expect(indices([...r1.msgs, ...r2.msgs])).toEqual([1, 2]);
  });
});

const meta = { index: 42, term: 3, conf: { voters: ['a', 'b', 'c'], learners: [] } };
const snapMsg: SnapshotMessage = { type: 'snapshot', from: 'a', to: 'b', term: 3, meta };

function source(data: Buffer, chunk: number, failAt = Infinity): SnapshotSource {
  return {
    meta,
    async *open() {
      for (let off = 0, n = 0; off < data.length; off += chunk, n++) {
        if (n === failAt) throw new Error('source broke');
        if (n % 8 === 0) await new Promise((r) => setImmediate(r));
        yield data.subarray(off, off + chunk);
      }
    },
  };
}

describe('RaftTransport snapshots', () => {
  it('streams a snapshot byte-identical and finishes once', async () => {
    const rb = new Receiver();
    const { t } = transport({ b: await startPeer(rb) });
    const data = crypto.randomBytes(5 * 1024 * 1024 + 123);
    const sending = t.sendSnapshot(snapMsg, source(data, 64 * 1024));
    // A second transfer to the same peer is a no-op while the first runs, and says so.
    await expect(t.sendSnapshot(snapMsg, source(Buffer.from('other'), 1))).resolves.toBe(false);
    expect(rb.finished).toEqual([]);
    await expect(sending).resolves.toBe(true);
    expect(rb.begun).toBe(1);
    expect(rb.chunks).toBe(81);
    expect(rb.finished.length).toBe(1);
    expect(rb.finished[0]!.msg).toEqual(snapMsg);
    expect(rb.finished[0]!.data.equals(data)).toBe(true);
    expect(rb.aborted).toEqual([]);
    // Messages still flow alongside.
    t.send([resp('b', 7)]);
    await until(() => rb.msgs.length === 1, 'message after snapshot');
  });

  it('aborts when the source throws midway', async () => {
    const rb = new Receiver();
    const { t } = transport({ b: await startPeer(rb) });
    const data = crypto.randomBytes(1024 * 1024);
    await expect(t.sendSnapshot(snapMsg, source(data, 64 * 1024, 5))).rejects.toThrow(
      /source broke/,
    );
    expect(rb.aborted).toEqual(['snap-1']);
    expect(rb.chunks).toBe(5);
    expect(rb.finished).toEqual([]);
    // The peer is free for the next attempt.
    await t.sendSnapshot(snapMsg, source(data, 64 * 1024));
    expect(rb.finished.length).toBe(1);
    expect(rb.finished[0]!.data.equals(data)).toBe(true);
  });

  it('refuses out-of-order chunks and unknown transfers', async () => {
    const rb = new Receiver();
    const url = await startPeer(rb);
    const begin = await signedPost(
      url,
      '/raft/snapshot/begin',
      JSON.stringify({ from: 'a', meta }),
    );
    expect(begin.status).toBe(200);
    const { id } = (await begin.json()) as { id: string };
    const chunk = (seq: number) =>
      signedPost(url, `/raft/snapshot/chunk?id=${id}&seq=${seq}`, Buffer.from([seq]));
    expect((await chunk(1)).status).toBe(409);
    expect((await chunk(0)).status).toBe(204);
    expect((await chunk(0)).status).toBe(409);
    expect((await chunk(1)).status).toBe(204);
    const wrongMeta = { ...snapMsg, meta: { ...meta, index: 41 } };
    const finish = (m: unknown) =>
      signedPost(url, `/raft/snapshot/finish?id=${id}`, JSON.stringify(m));
    expect((await finish(wrongMeta)).status).toBe(400);
    expect((await finish(snapMsg)).status).toBe(204);
    expect(rb.finished[0]!.data).toEqual(Buffer.from([0, 1]));
    expect((await chunk(2)).status).toBe(404);
    const bad = await signedPost(url, '/raft/snapshot/begin', JSON.stringify({ from: 'a' }));
    expect(bad.status).toBe(400);
    // A newer transfer (say from a new leader) supersedes a staged one.
    const begin1 = JSON.stringify({ from: 'a', meta });
    const { id: old } = (await (await signedPost(url, '/raft/snapshot/begin', begin1)).json()) as {
      id: string;
    };
    const begin2 = JSON.stringify({ from: 'c', meta: { ...meta, term: 4 } });
    expect((await signedPost(url, '/raft/snapshot/begin', begin2)).status).toBe(200);
    expect(rb.aborted).toEqual([old]);
    const stale = `/raft/snapshot/chunk?id=${old}&seq=0`;
    expect((await signedPost(url, stale, Buffer.from([1]))).status).toBe(404);
  });
});
