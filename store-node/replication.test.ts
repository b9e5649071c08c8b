// Replicated writes between real store nodes on loopback: forwarding, quorum, failures.

import http from 'node:http';
import { crc32c } from '@node-rs/crc32';
import { Client } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import { AUTH_HEADER } from '../common/internal-auth.ts';
import { payload, textPayload } from '../common/payload.ts';
import { useCleanups } from '../test/kit/fixture.ts';
import { auth, nodeStarter, startBlackHole, type TestNode } from '../test/kit/test-nodes.ts';
import { CRC_HEADER, NEEDLE_PUT_COVERED } from './api.ts';
import { StoreError } from './errors.ts';

const cleanups = useCleanups();
const starter = nodeStarter(cleanups);
const node = (volumes = [1], replicationTimeoutMs?: number) =>
  starter(volumes, { replicationTimeoutMs });

/** A needle PUT signed as StoreClient signs one (CRC of the body unless given). */
async function rawPut(
  target: TestNode,
  path: string,
  body: Buffer,
  given: Record<string, string>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { [CRC_HEADER]: String(crc32c(body)), ...given };
  const client = new Client(target.url);
  try {
    const res = await client.request({
      method: 'PUT',
      path,
      headers: {
        [AUTH_HEADER]: auth.sign('PUT', path, undefined, {
          contentLength: body.length,
          headers: NEEDLE_PUT_COVERED.map((h) => headers[h]),
        }),
        ...headers,
      },
      body,
    });
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
  } finally {
    await client.close();
  }
}

describe('replicated writes', () => {
  it('writes locally and on every listed replica before answering', async () => {
    const [a, b, c] = [await node(), await node(), await node()];
    for (let i = 1n; i <= 50n; i++) {
      const ref = { volumeId: 1, needleId: i, cookie: 1000 + Number(i) };
      const data = i % 2n ? textPayload(3000 + Number(i)) : payload(i, 5000);
      await a.client.put(ref, data, 'text/plain', { replicas: [b.url, c.url] });
      // Straight after the answer, with no waiting: the ack means it is on all three.
      for (const n of [a, b, c]) expect((await n.client.get(ref)).data.equals(data)).toBe(true);
      await expect(b.client.get({ ...ref, cookie: ref.cookie + 1 })).rejects.toMatchObject({
        code: 'CookieMismatch',
      });
    }
    // Replicas made the same compression choice from the forwarded content type.
    const sa = a.store.volume(1).stats();
    for (const n of [b, c]) expect(n.store.volume(1).stats().liveBytes).toBe(sa.liveBytes);
    // Forwards carry no replicas header: b and c did not forward further.
    expect(b.server.replicator.client(c.url)).toBeDefined();
  });

  it('answers 502 ReplicaWriteFailed naming the failed replicas; the others keep copies', async () => {
    const a = await node();
    const b = await node();
    const noVolume = await node([2]);
    const ref = { volumeId: 1, needleId: 7n, cookie: 77 };
    const data = payload(7n, 2000);
    const err = await a.client
      .put(ref, data, undefined, { replicas: [b.url, noVolume.url] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: 'ReplicaWriteFailed', status: 502 });
    expect((err as Error).message).toContain(noVolume.url);
    expect((err as Error).message).not.toContain(b.url);
    // The answer went out as soon as the quorum was out of reach; the other writes finish
    // in the background as orphans (nothing points at them), nothing on the failed one.
    await vi.waitFor(async () => {
      expect((await a.client.get(ref)).data.equals(data)).toBe(true);
      expect((await b.client.get(ref)).data.equals(data)).toBe(true);
    });

    const path = '/volumes/1/needles/8?cookie=1';
    const r = await rawPut(a, path, data, { 'x-ks-replicas': `${b.url}, ${noVolume.url}` });
    expect(r.status).toBe(502);
    expect(r.json).toMatchObject({
      error: 'ReplicaWriteFailed',
      failed: [{ url: noVolume.url, error: 'NoSuchVolume' }],
    });
  });

  it('answers at the write quorum, not waiting for a hung replica; fails when below it', async () => {
    const a = await node([1], 400);
    const b = await node();
    const hole = await startBlackHole();
    cleanups.push(() => hole.close());
    const ref = { volumeId: 1, needleId: 9n, cookie: 9 };
    const data = payload(9n, 1000);
    let t0 = performance.now();
    await a.client.put(ref, data, undefined, { replicas: [b.url, hole.url], writeQuorum: 2 });
    expect(performance.now() - t0).toBeLessThan(350);
    expect((await b.client.get(ref)).data.equals(data)).toBe(true);

    t0 = performance.now();
    const ref2 = { ...ref, needleId: 10n };
    await expect(
      a.client.put(ref2, data, undefined, { replicas: [b.url, hole.url] }),
    ).rejects.toMatchObject({ code: 'ReplicaWriteFailed' });
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(350); // waited for the forward's bound…
    expect(took).toBeLessThan(3000); // …and no longer

    // A replica that is not listening at all fails fast.
    const dead = await node();
    const deadUrl = dead.url;
    await dead.close();
    await expect(
      a.client.put({ ...ref, needleId: 11n }, data, undefined, { replicas: [deadUrl] }),
    ).rejects.toMatchObject({ code: 'ReplicaWriteFailed' });
    await a.client.put({ ...ref, needleId: 12n }, data, undefined, {
      replicas: [deadUrl],
      writeQuorum: 1,
    });
  });

  it('returns the local error when the local write fails, and validates the headers', async () => {
    const a = await node();
    const b = await node();
    await a.store.seal(1);
    await expect(
      a.client.put({ volumeId: 1, needleId: 1n, cookie: 1 }, payload(1n, 10), undefined, {
        replicas: [b.url],
      }),
    ).rejects.toMatchObject({ code: 'VolumeReadOnly' });
    // The forward was already under way; b's copy is an orphan, like any failed write's.
    const body = payload(2n, 10);
    const crc = String(crc32c(body));
    const cases: Array<Record<string, string>> = [
      { 'x-ks-replicas': 'not a url' },
      { 'x-ks-replicas': 'ftp://x' },
      { 'x-ks-replicas': b.url, 'x-ks-write-quorum': '3' },
      { 'x-ks-replicas': b.url, 'x-ks-write-quorum': '0' },
      { 'x-ks-replicas': b.url, 'x-ks-write-quorum': 'x' },
    ];
    for (const headers of cases) {
      const r = await rawPut(b, '/volumes/1/needles/2?cookie=1', body, {
        ...headers,
        'x-ks-crc32c': crc,
      });
      expect(r.status).toBe(400);
      expect(r.json.error).toBe('InvalidArgument');
    }
    // A bad wire CRC is refused before anything is written or forwarded.
    const r = await rawPut(a, '/volumes/1/needles/3?cookie=1', body, {
      'x-ks-replicas': b.url,
      'x-ks-crc32c': '1',
    });
    expect(r.json.error).toBe('BadChecksum');
    expect(b.store.volume(1).has(3n)).toBe(false);
  });

  it('refuses a taken id with NeedleExists before forwarding; an identical retry succeeds', async () => {
    const a = await node();
    const b = await node();
    const ref = { volumeId: 1, needleId: 50n, cookie: 5 };
    const data = payload(50n, 3000);
    await a.client.put(ref, data, undefined, { replicas: [b.url] });
    const other = payload(51n, 3000);
    for (let i = 0; i < 5; i++) {
      await expect(
        a.client.put(ref, other, undefined, { replicas: [b.url] }),
      ).rejects.toMatchObject({ code: 'NeedleExists', status: 409 });
    }
    // A retry of the same write (the answer was lost): every replica already has it.
    await a.client.put(ref, data, undefined, { replicas: [b.url] });
    // A replica that lacks it gets it from the retry; the others keep theirs.
    const c = await node();
    await a.client.put(ref, data, undefined, { replicas: [b.url, c.url] });
    for (const n of [a, b, c]) expect((await n.client.get(ref)).data.equals(data)).toBe(true);
  });

  it('forwards only to stores it knows: an unknown origin is refused before any write', async () => {
    const a = await node();
    const b = await node();
    // Not a store of this cluster: it must never be called, with a fresh token or otherwise.
    let calls = 0;
    const stranger = http.createServer((req, res) => {
      calls++;
      req.resume();
      res.writeHead(201, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => stranger.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => stranger.close(() => r())));
    const strangerUrl = `http://127.0.0.1:${(stranger.address() as { port: number }).port}`;
    const ref = { volumeId: 1, needleId: 40n, cookie: 4 };
    const data = payload(40n, 2000);
    await expect(
      a.client.put(ref, data, undefined, { replicas: [b.url, strangerUrl] }),
    ).rejects.toMatchObject({ code: 'UnknownReplica', status: 403 });
    expect(a.store.volume(1).has(40n)).toBe(false);
    expect(b.store.volume(1).has(40n)).toBe(false);
    // Nor does a sync copy from it.
    await expect(b.client.syncVolume(1, strangerUrl)).rejects.toMatchObject({
      code: 'UnknownReplica',
    });
    expect(calls).toBe(0);
    // The directory's answer decides: once it knows the store, the forward goes out.
    const known = new Set([b.url]);
    const c = await starter([1], { knownStore: async (o) => known.has(o) });
    await expect(
      c.client.put(ref, data, undefined, { replicas: [strangerUrl] }),
    ).rejects.toMatchObject({ code: 'UnknownReplica' });
    await c.client.put(ref, data, undefined, { replicas: [b.url] });
    expect((await b.client.get(ref)).data.equals(data)).toBe(true);
    // A directory that cannot be asked: refused as a failed replicated write (retryable).
    const d = await starter([1], {
      knownStore: async () => {
        throw new Error('no directory');
      },
    });
    await expect(
      d.client.put({ ...ref, needleId: 41n }, data, undefined, { replicas: [b.url] }),
    ).rejects.toMatchObject({ code: 'ReplicaWriteFailed' });
    expect(d.store.volume(1).has(41n)).toBe(false);
    expect(calls).toBe(0);
  });
});
