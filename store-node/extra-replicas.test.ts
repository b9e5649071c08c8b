import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUTH_HEADER, InternalAuth } from '../common/internal-auth.ts';
import { payload } from '../common/payload.ts';
import { type RawReply, rawRequest } from '../test/kit/raw-http.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { startNode, type TestNode } from '../test/kit/test-nodes.ts';
import { CRC_HEADER, EXTRA_PUT_COVERED } from './api.ts';
import type { StoreClient } from './client.ts';
import type { Store } from './store.ts';

const auth = new InternalAuth('test-cluster-secret-0123456789');
const MAX = 256 * 1024;

let dir: string;
let node: TestNode;
let store: Store;
let port: number;
let client: StoreClient;

async function start(): Promise<void> {
  node = await startNode({
    dir,
    store: {
      cache: {
        bytes: 1 << 20,
        maxObjectBytes: 1 << 18,
        highWatermark: 0.95,
        lowWatermark: 0.8,
        periodMs: 0,
      },
    },
    server: { auth, maxNeedleSize: MAX },
    standalone: true,
  });
  ({ store, port, client } = node);
}

const stop = () => node.close();

beforeEach(async () => {
  dir = tempDir();
  await start();
  // This node holds volume 2, not volume 1: extra copies are of volume 1's needles.
  await store.createVolume(2);
});

afterEach(stop);

type Reply = RawReply;

function request(
  method: string,
  p: string,
  opts: {
    body?: Buffer;
    headers?: Record<string, string>;
    sign?: 'covered' | 'plain' | false;
  } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  const sign = opts.sign ?? 'covered';
  if (sign !== false)
    headers[AUTH_HEADER] = auth.sign(method, p, undefined, {
      contentLength: opts.body?.length,
      headers: sign === 'covered' ? EXTRA_PUT_COVERED.map((h) => headers[h]) : [],
    });
  return rawRequest(port, method, p, headers, opts.body);
}

const errorOf = (r: Reply) => (JSON.parse(r.body.toString()) as { error: string }).error;
const extraFiles = () => {
  try {
    return fs.readdirSync(path.join(dir, 'extra')).sort();
  } catch {
    return [];
  }
};

describe('extra replicas', () => {
  it('serves an extra copy through the normal needle GET and HEAD, cookie checked', async () => {
    const ref = { volumeId: 1, needleId: 2n ** 63n + 9n, cookie: 0xfeedbeef };
    const data = payload(9n, 20_000);
    expect(await client.putExtra(ref, data, 'image/png')).toEqual({ created: true, size: 20_000 });
    const got = await client.get(ref);
    expect(got.size).toBe(20_000);
    expect(got.data.equals(data)).toBe(true);
    expect(await client.head(ref)).toEqual({ size: 20_000 });
    const p = `/volumes/1/needles/${ref.needleId}?cookie=${ref.cookie}`;
    const ranged = await request('GET', p, { headers: { range: 'bytes=-100' }, sign: 'plain' });
    expect(ranged.status).toBe(206);
    expect(ranged.headers['content-range']).toBe('bytes 19900-19999/20000');
    expect(ranged.headers['x-ks-size']).toBe('20000');
    expect(ranged.headers[CRC_HEADER]).toBe(String(crc32c(data.subarray(19_900))));
    expect(ranged.body.equals(data.subarray(19_900))).toBe(true);
    // A wrong cookie gets what a volume answers for one.
    await client.put({ volumeId: 2, needleId: 1n, cookie: 5 }, Buffer.from('in a volume'));
    const fromVolume = await request('GET', '/volumes/2/needles/1?cookie=6', { sign: 'plain' });
    const fromExtra = await request('GET', `/volumes/1/needles/${ref.needleId}?cookie=6`, {
      sign: 'plain',
    });
    expect([fromExtra.status, errorOf(fromExtra)]).toEqual([
      fromVolume.status,
      errorOf(fromVolume),
    ]);
    const headVolume = await request('HEAD', '/volumes/2/needles/1?cookie=6', { sign: 'plain' });
    const headExtra = await request('HEAD', `/volumes/1/needles/${ref.needleId}?cookie=6`, {
      sign: 'plain',
    });
    expect([headExtra.status, headVolume.status]).toEqual([403, 403]);
    // A needle id this node has no copy of is still unknown.
    await expect(client.get({ ...ref, needleId: 3n })).rejects.toMatchObject({
      code: 'NoSuchVolume',
    });
    const list = await client.listExtra();
    expect(list).toEqual({
      count: 1,
      bytes: 20_000,
      needles: [{ ...ref, size: 20_000, contentType: 'image/png' }],
    });
    expect((await client.cacheStatus()).extra).toEqual(list);
  });

  it('also answers for a volume it holds when the needle is only an extra copy', async () => {
    const ref = { volumeId: 2, needleId: 40n, cookie: 4 };
    await client.putExtra(ref, Buffer.from('forty'));
    expect((await client.get(ref)).data.toString()).toBe('forty');
  });

  it('keeps extra copies across a restart on the same data dir', async () => {
    const a = { volumeId: 1, needleId: 5n, cookie: 55 };
    const b = { volumeId: 3, needleId: 6n, cookie: 66 };
    await client.putExtra(a, payload(5n, 1000));
    await client.putExtra(b, payload(6n, 0));
    await stop();
    // What a crash in the middle of a copy leaves, and a copy damaged on disk.
    fs.writeFileSync(path.join(dir, 'extra', '1-7.xn.0011aa.tmp'), 'half a copy');
    const bFile = path.join(dir, 'extra', '3-6.xn');
    fs.writeFileSync(bFile, Buffer.concat([fs.readFileSync(bFile), Buffer.from('x')]));
    await start();
    expect((await client.get(a)).data.equals(payload(5n, 1000))).toBe(true);
    expect(await client.listExtra()).toMatchObject({ count: 1, needles: [{ needleId: 5n }] });
    expect(extraFiles()).toEqual(['1-5.xn']);
    await expect(client.get(b)).rejects.toMatchObject({ code: 'NoSuchVolume' });
  });

  it('is idempotent for the same bytes and refuses other bytes for the same id', async () => {
    const ref = { volumeId: 1, needleId: 8n, cookie: 8 };
    const data = payload(8n, 3000);
    await client.putExtra(ref, data);
    const p = `/extra/1/8?cookie=8`;
    const again = await request('PUT', p, {
      body: data,
      headers: { [CRC_HEADER]: String(crc32c(data)) },
    });
    expect([again.status, JSON.parse(again.body.toString())]).toEqual([
      200,
      { created: false, size: 3000 },
    ]);
    const other = payload(80n, 3000);
    await expect(client.putExtra(ref, other)).rejects.toMatchObject({ code: 'NeedleExists' });
    await expect(client.putExtra({ ...ref, cookie: 9 }, data)).rejects.toMatchObject({
      code: 'NeedleExists',
    });
    expect((await client.get(ref)).data.equals(data)).toBe(true);
    expect(extraFiles()).toEqual(['1-8.xn']);
    // A copy damaged on disk is refused on reads and healed by the same PUT again.
    const file = path.join(dir, 'extra', '1-8.xn');
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1]! ^= 0xff;
    fs.writeFileSync(file, bytes);
    await expect(client.get(ref)).rejects.toMatchObject({ code: 'NeedleCorrupt' });
    expect(await client.putExtra(ref, data)).toEqual({ created: true, size: 3000 });
    expect((await client.get(ref)).data.equals(data)).toBe(true);
  });

  it('refuses a copy removed by DELETE /extra from a request signed before (a replay)', async () => {
    // What the /extra PUT route hands over: the time its token was signed (issue 12 item 2).
    const ref = { volumeId: 1, needleId: 12n, cookie: 12 };
    const data = payload(12n, 2000);
    const captured = Date.now() - 2000; // a token signed 2 s ago is still good for minutes
    expect(await store.extras.put(ref, data, undefined, captured)).toEqual({ created: true });
    expect((await request('DELETE', '/extra/1/12', { sign: 'plain' })).status).toBe(204);
    await expect(store.extras.put(ref, data, undefined, captured)).rejects.toMatchObject({
      code: 'NeedleExists',
    });
    expect(extraFiles()).toEqual([]);
    await expect(client.get(ref)).rejects.toMatchObject({ code: 'NoSuchVolume' });
    // Placed again by a request signed after the removal (the object got hot again).
    const later = Date.now() + 1000;
    expect(await store.extras.put(ref, data, undefined, later)).toEqual({ created: true });
  });

  it('refuses a captured PUT /extra replayed over HTTP after DELETE /extra', async () => {
    const data = payload(13n, 1500);
    const p = '/extra/1/13?cookie=13';
    const headers: Record<string, string> = { [CRC_HEADER]: String(crc32c(data)) };
    // A token signed 2 s ago, as an eavesdropper would hold it: still inside its lifetime.
    headers[AUTH_HEADER] = auth.sign('PUT', p, Date.now() - 2000, {
      contentLength: data.length,
      headers: EXTRA_PUT_COVERED.map((h) => headers[h]),
    });
    expect((await rawRequest(port, 'PUT', p, headers, data)).status).toBe(201);
    expect((await request('DELETE', '/extra/1/13', { sign: 'plain' })).status).toBe(204);
    const replay = await rawRequest(port, 'PUT', p, headers, data);
    expect(replay.status).toBe(409);
    expect(extraFiles()).toEqual([]);
    // A fresh request places it again (the object got hot again).
    expect(
      (await request('PUT', p, { body: data, headers: { [CRC_HEADER]: headers[CRC_HEADER]! } }))
        .status,
    ).toBe(201);
  });

  it('refuses a body that does not match its CRC, a missing CRC, and unsigned requests', async () => {
    const data = Buffer.from('hot object bytes');
    const p = '/extra/1/10?cookie=1';
    const cases: [Reply, number, string][] = [
      [
        await request('PUT', p, {
          body: data,
          headers: { [CRC_HEADER]: String((crc32c(data) + 1) % 2 ** 32) },
        }),
        400,
        'BadChecksum',
      ],
      [await request('PUT', p, { body: data }), 400, 'InvalidArgument'],
      [
        await request('PUT', p, {
          body: data,
          headers: { [CRC_HEADER]: String(crc32c(data)) },
          sign: false,
        }),
        403,
        'Forbidden',
      ],
      // The token covers the CRC: one signed without it does not pass with it.
      [
        await request('PUT', p, {
          body: data,
          headers: { [CRC_HEADER]: String(crc32c(data)) },
          sign: 'plain',
        }),
        403,
        'Forbidden',
      ],
      [await request('GET', '/extra', { sign: false }), 403, 'Forbidden'],
      [await request('DELETE', '/extra/1/10', { sign: false }), 403, 'Forbidden'],
      [
        await request('PUT', '/extra/1/10', {
          body: data,
          headers: { [CRC_HEADER]: String(crc32c(data)) },
        }),
        400,
        'InvalidArgument',
      ],
      [
        await request('PUT', '/extra/0/10?cookie=1', {
          body: data,
          headers: { [CRC_HEADER]: String(crc32c(data)) },
        }),
        400,
        'InvalidArgument',
      ],
      [await request('POST', '/extra/1/10?cookie=1', { sign: 'plain' }), 405, 'MethodNotAllowed'],
    ];
    for (const [r, status, code] of cases) expect([r.status, errorOf(r)]).toEqual([status, code]);
    expect((await client.listExtra()).count).toBe(0);
    expect(extraFiles()).toEqual([]);
    await expect(client.get({ volumeId: 1, needleId: 10n, cookie: 1 })).rejects.toMatchObject({
      code: 'NoSuchVolume',
    });
  });

  it('deletes a copy by DELETE /extra, and with a needle DELETE (tombstone) here', async () => {
    const a = { volumeId: 1, needleId: 11n, cookie: 1 };
    const b = { volumeId: 1, needleId: 12n, cookie: 2 };
    await client.putExtra(a, Buffer.from('a'));
    await client.putExtra(b, Buffer.from('b'));
    await client.get(a, undefined, { cache: 'fill' });
    expect((await client.cacheStatus()).cache?.entries).toBe(1);
    await client.deleteExtra(a);
    // Its cached copy went with it.
    expect((await client.cacheStatus()).cache?.entries).toBe(0);
    await expect(client.get(a)).rejects.toMatchObject({ code: 'NoSuchVolume' });
    await expect(client.deleteExtra(a)).rejects.toMatchObject({ code: 'NoSuchNeedle' });
    // The needle DELETE checks the cookie like a volume does …
    await expect(client.delete({ ...b, cookie: 3 })).rejects.toMatchObject({
      code: 'CookieMismatch',
    });
    // … and drops the copy.
    await client.delete(b);
    expect((await client.listExtra()).count).toBe(0);
    expect(extraFiles()).toEqual([]);
    await expect(client.delete(b)).rejects.toMatchObject({ code: 'NoSuchVolume' });
    // A deleted needle's copy cannot be brought back (a replayed PUT); one the directory
    // only moved away (DELETE /extra) can be placed again when it gets hot again.
    await expect(client.putExtra(b, Buffer.from('b'))).rejects.toMatchObject({
      code: 'NeedleExists',
    });
    expect(await client.putExtra(a, Buffer.from('a'))).toEqual({ created: true, size: 1 });
  });
});
