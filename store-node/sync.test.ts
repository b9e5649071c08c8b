// Listing, raw copy and volume sync between real store nodes on loopback.
import { crc32c } from '@node-rs/crc32';
import { Client } from 'undici';
import { describe, expect, it } from 'vitest';
import { AUTH_HEADER } from '../common/internal-auth.ts';
import { payload, textPayload } from '../common/payload.ts';
import { useCleanups } from '../test/kit/fixture.ts';
import { flipDataByte, nodeStarter, type TestNode } from '../test/kit/test-nodes.ts';

const cleanups = useCleanups();
const node = nodeStarter(cleanups);

async function get(
  target: TestNode,
  path: string,
  sign = true,
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const client = new Client(target.url);
  try {
    const headers = sign ? { [AUTH_HEADER]: target.server.opts.auth.sign('GET', path) } : {};
    const res = await client.request({ method: 'GET', path, headers });
    return {
      status: res.statusCode,
      headers: res.headers,
      body: Buffer.from(await res.body.arrayBuffer()),
    };
  } finally {
    await client.close();
  }
}

/** Needle i: compressible text for even i, incompressible bytes otherwise. */
function dataOf(i: bigint): Buffer {
  return i % 2n === 0n ? textPayload(600 + Number(i % 700n)) : payload(i, 100 + Number(i % 900n));
}

async function fill(n: TestNode, ids: bigint[]): Promise<void> {
  await Promise.all(ids.map((i) => n.store.write(1, i, Number(i % 1000n) + 1, dataOf(i))));
}

async function expectSame(a: TestNode, b: TestNode, vid = 1): Promise<void> {
  const la = await a.client.listNeedles(vid, { limit: 10_000 });
  const lb = await b.client.listNeedles(vid, { limit: 10_000 });
  expect(lb.needles.map((n) => n.id)).toEqual(la.needles.map((n) => n.id));
  for (const { id } of la.needles) {
    const ref = { volumeId: vid, needleId: id, cookie: Number(id % 1000n) + 1 };
    expect((await b.client.get(ref)).data.equals(dataOf(id))).toBe(true);
  }
  // Same compression choices, so the same stored sizes.
  expect(lb.needles).toEqual(la.needles);
}

describe('needle listing and raw reads', () => {
  it('pages through live needles in ascending id order', async () => {
    const a = await node();
    const ids = [5n, 2n ** 40n + 1n, 3n, 2n ** 63n, 17n, 1n, 2n ** 32n, 2n ** 32n - 1n];
    await fill(a, ids);
    await a.store.delete(1, 17n);
    const want = ids.filter((i) => i !== 17n).sort((x, y) => (x < y ? -1 : 1));
    const seen: bigint[] = [];
    let after = 0n;
    for (;;) {
      const page = await a.client.listNeedles(1, { after, limit: 3 });
      expect(page.needles.length).toBeLessThanOrEqual(3);
      for (const n of page.needles) expect(n.size).toBeGreaterThan(0);
      seen.push(...page.needles.map((n) => n.id));
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(seen).toEqual(want);
    const all = await a.client.listNeedles(1, { limit: 10_000 });
    expect(all.next).toBeUndefined();
    expect(all.readOnly).toBe(false);

    const r = await get(a, '/volumes/1/needles?after=0&limit=2');
    expect(JSON.parse(r.body.toString())).toEqual({
      needles: [
        { id: '1', size: expect.any(Number) },
        { id: '3', size: expect.any(Number) },
      ],
      next: '3',
      readOnly: false,
    });
    for (const bad of ['limit=0', 'limit=10001', 'limit=x', 'after=-1', 'after=1e3']) {
      expect((await get(a, `/volumes/1/needles?${bad}`)).status).toBe(400);
    }
    expect((await get(a, '/volumes/9/needles')).status).toBe(404);
    expect((await get(a, '/volumes/1/needles', false)).status).toBe(403);
  });

  it('serves a needle raw with its cookie and CRC, without being given the cookie', async () => {
    const a = await node();
    await fill(a, [4n, 7n]);
    for (const id of [4n, 7n]) {
      const raw = await a.client.getRaw(1, id);
      expect(raw.cookie).toBe(Number(id % 1000n) + 1);
      expect(raw.data.equals(dataOf(id))).toBe(true);
      expect(raw.compressed).toBe(id === 4n);
    }
    const r = await get(a, '/volumes/1/needles/7/raw');
    expect(r.headers['x-ks-crc32c']).toBe(String(crc32c(dataOf(7n))));
    expect(r.headers['x-ks-cookie']).toBe('8');
    expect((await get(a, '/volumes/1/needles/7/raw', false)).status).toBe(403);
    await expect(a.client.getRaw(1, 8n)).rejects.toMatchObject({ code: 'NoSuchNeedle' });
    // A needle corrupt on disk is refused, never served.
    flipDataByte(a, 1, (await a.store.write(1, 9n, 1, payload(9n, 500))).offset);
    await expect(a.client.getRaw(1, 9n)).rejects.toMatchObject({ code: 'NeedleCorrupt' });
  });
});

describe('volume sync', () => {
  it('copies a whole volume to a node that lacks it, and a re-run copies nothing', async () => {
    const src = await node();
    const dst = await node([]);
    const ids = Array.from({ length: 2500 }, (_, k) => BigInt(k * 3 + 1));
    await fill(src, ids);
    const r = await dst.client.syncVolume(1, src.url);
    expect(r).toMatchObject({ copied: 2500, deleted: 0, bytes: expect.any(Number) });
    expect(r.bytes).toBe(ids.reduce((a, i) => a + dataOf(i).length, 0));
    await expectSame(src, dst);
    expect(await dst.client.syncVolume(1, src.url)).toMatchObject({ copied: 0, deleted: 0 });
    // createVolume on a replica that already has it: 409 unless asked to tolerate it.
    await expect(dst.client.createVolume(1)).rejects.toMatchObject({ code: 'VolumeExists' });
    await dst.client.createVolume(1, { ifMissing: true });
  });

  it('catches up a stale replica, deletes what the source deleted, re-copies corrupt needles', async () => {
    const src = await node();
    const dst = await node();
    await fill(src, [1n, 2n, 3n, 4n, 5n, 6n]);
    await fill(dst, [1n, 2n, 3n, 4n, 99n]); // 99: deleted at the source while dst was away
    const bad = await dst.store.volume(1).readRaw(3n);
    expect(bad.data.equals(dataOf(3n))).toBe(true);
    // Corrupt 3 on dst (its offset: rewrite to learn it, then flip a byte there).
    const w = await dst.store.write(1, 3n, 4, dataOf(3n));
    flipDataByte(dst, 1, w.offset);
    await expect(dst.store.read(1, 3n, 4)).rejects.toMatchObject({ code: 'NeedleCorrupt' });

    expect(await dst.client.syncVolume(1, src.url)).toMatchObject({ copied: 3, deleted: 0 });
    expect((await dst.store.read(1, 3n, 4)).data.equals(dataOf(3n))).toBe(true);
    expect(dst.store.volume(1).has(99n)).toBe(true); // no deletes unless asked
    expect(await dst.client.syncVolume(1, src.url, { deletes: true })).toMatchObject({
      copied: 0,
      deleted: 1,
    });
    await expectSame(src, dst);
  });

  it('syncs a sealed volume and seals the copy; refuses bad sources', async () => {
    const src = await node();
    await fill(src, [10n, 11n, 12n]);
    await src.store.seal(1);
    const dst = await node();
    await dst.store.seal(1); // a sealed, stale local copy still takes the missing needles
    expect(await dst.client.syncVolume(1, src.url)).toMatchObject({ copied: 3 });
    await expectSame(src, dst);
    const fresh = await node([]);
    await fresh.client.syncVolume(1, src.url);
    expect(fresh.store.volume(1).readOnly).toBe(true);
    await expect(fresh.client.syncVolume(1, 'ftp://x')).rejects.toMatchObject({
      code: 'InvalidArgument',
    });
    await expect(fresh.client.syncVolume(2, src.url)).rejects.toMatchObject({
      code: 'NoSuchVolume',
    });
    expect(fresh.store.volumeIds()).toEqual([1]);
  });
});
