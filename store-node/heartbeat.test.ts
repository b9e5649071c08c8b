// The heartbeat sender against a small real HTTP peer standing in for the directory.
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { payload } from '../common/payload.ts';
import type { Heartbeat } from '../directory/model/topology.ts';
import { useCleanups } from '../test/kit/fixture.ts';
import { auth, startNode, verifySignedBody } from '../test/kit/test-nodes.ts';
import { sleep } from '../test/kit/until.ts';
import { collectHeartbeat, HeartbeatSender } from './heartbeat.ts';

const cleanups = useCleanups();

interface Received {
  at: number;
  path: string;
  authOk: boolean;
  body: Heartbeat;
}

/** A directory stand-in: records heartbeats; with `hang`, never answers them. */
async function directoryPeer(hang = false) {
  const got: Received[] = [];
  let open = 0;
  let maxOpen = 0;
  const server = http.createServer((req, res) => {
    open++;
    maxOpen = Math.max(maxOpen, open);
    res.on('close', () => open--);
    let text = '';
    req.on('data', (c: Buffer) => (text += c));
    req.on('end', () => {
      got.push({
        at: performance.now(),
        path: req.url!,
        authOk: verifySignedBody(auth, req, text),
        body: JSON.parse(text) as Heartbeat,
      });
      if (!hang) res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { url, got, maxOpen: () => maxOpen };
}

describe('heartbeats', () => {
  it('sends signed heartbeats with the node status to every directory at the interval', async () => {
    const n = await startNode({ volumes: [1, 2] });
    cleanups.push(() => n.close());
    for (let i = 1n; i <= 10n; i++) await n.store.write(1, i, 1, payload(i, 1000));
    await n.store.seal(2);
    const d1 = await directoryPeer();
    const d2 = await directoryPeer();
    const self = { id: 'store-a', url: n.url, zone: 'z1' };
    const sender = new HeartbeatSender({
      directories: [d1.url, `${d2.url}/`],
      auth,
      intervalMs: 100,
      collect: () => collectHeartbeat(n.store, self, () => n.server.load),
    });
    const t0 = performance.now();
    sender.start();
    await sleep(1050);
    await sender.stop();
    const elapsed = performance.now() - t0;
    for (const d of [d1, d2]) {
      // One right away, then one per 100 ms.
      expect(d.got.length).toBeGreaterThanOrEqual(8);
      expect(d.got.length).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1);
      const gaps = d.got.slice(1).map((g, i) => g.at - d.got[i]!.at);
      expect(gaps.reduce((a, g) => a + g, 0) / gaps.length).toBeGreaterThan(70);
      for (const g of d.got) {
        expect(g.path).toBe('/cluster/heartbeat');
        expect(g.authOk).toBe(true);
      }
      const hb = d.got.at(-1)!.body;
      const st = await n.store.status();
      expect(hb).toEqual({
        id: 'store-a',
        url: n.url,
        zone: 'z1',
        capacity: expect.any(Number),
        used: st.volumes[0]!.fileBytes + st.volumes[1]!.fileBytes,
        volumes: [
          { id: 1, size: st.volumes[0]!.fileBytes, needles: 10, readOnly: false },
          { id: 2, size: 64, needles: 0, readOnly: true },
        ],
        load: 0,
      });
      expect(hb.capacity).toBeGreaterThan(hb.used);
    }
    expect(sender.counts.failed).toBe(0);
    // An explicit capacity is reported as given.
    const hb = await collectHeartbeat(n.store, { ...self, capacity: 5e9 }, () => 3);
    expect(hb).toMatchObject({ capacity: 5e9, load: 3 });
  });

  it('never piles up beats on a directory that hangs, and keeps beating the others', async () => {
    const n = await startNode({ volumes: [1] });
    cleanups.push(() => n.close());
    const hung = await directoryPeer(true);
    const ok = await directoryPeer();
    const sender = new HeartbeatSender({
      directories: [hung.url, ok.url, 'http://127.0.0.1:1'],
      auth,
      intervalMs: 50,
      timeoutMs: 400,
      collect: () => collectHeartbeat(n.store, { id: 'x', url: n.url, zone: '' }, () => 0),
    });
    sender.start();
    await sleep(1000);
    await sender.stop();
    // At most one beat open at a time on the hung one: ~1000/400 of them, not ~20.
    expect(hung.maxOpen()).toBe(1);
    expect(hung.got.length).toBeGreaterThanOrEqual(2);
    expect(hung.got.length).toBeLessThanOrEqual(4);
    expect(ok.got.length).toBeGreaterThanOrEqual(15);
    expect(sender.counts.skipped).toBeGreaterThan(10);
    expect(sender.counts.failed).toBeGreaterThanOrEqual(2);
  });
});
