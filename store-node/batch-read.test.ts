import fc from 'fast-check';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUTH_HEADER, DIGEST_HEADER, InternalAuth } from '../common/internal-auth.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import {
  BATCH_READ_PATH,
  decodeReadAnswer,
  decodeReadRequest,
  encodeReadAnswer,
  encodeReadRequest,
} from './batch-read.ts';
import { ReadBatcher } from './batch-read-client.ts';
import { StoreClient } from './client.ts';
import { StoreError } from './errors.ts';
import { StoreServer } from './server.ts';
import { Store } from './store.ts';

const auth = new InternalAuth('test-cluster-secret-0123456789');

describe('read batch codec', () => {
  it('round-trips requests, and refuses bodies that are not whole items', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            volumeId: fc.integer({ min: 0, max: 0xffffffff }),
            needleId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
            cookie: fc.integer({ min: 0, max: 0xffffffff }),
            hint: fc.constantFrom(undefined, 'fill' as const, 'drop' as const),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        (items) => {
          expect(decodeReadRequest(encodeReadRequest(items))).toEqual(items);
        },
      ),
      { numRuns: 200 },
    );
    expect(() => decodeReadRequest(Buffer.alloc(0))).toThrow(StoreError);
    expect(() => decodeReadRequest(Buffer.alloc(18))).toThrow(/read batch of 18/);
    const bad = encodeReadRequest([{ volumeId: 1, needleId: 2n, cookie: 3 }]);
    bad[16] = 7;
    expect(() => decodeReadRequest(bad)).toThrow(/cache hint 7/);
  });

  it('decodes any bytes to results or a StoreError, never a crash or foreign bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 5 }), (b, n) => {
        try {
          const r = decodeReadAnswer(Buffer.from(b), n);
          expect(r).toHaveLength(n);
        } catch (e) {
          expect(e).toBeInstanceOf(StoreError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('keeps each item apart: bytes, errors, and a needle damaged in transit', () => {
    const a = Buffer.from('first needle');
    const parts = encodeReadAnswer([
      { ok: true, data: a, size: a.length },
      { ok: false, error: new StoreError('NoSuchNeedle', 'gone') },
      { ok: true, data: Buffer.from('third'), size: 5 },
    ]);
    const body = Buffer.concat(parts);
    const [r1, r2, r3] = decodeReadAnswer(body, 3);
    expect(r1).toEqual({ ok: true, data: a, size: a.length });
    expect(r2?.ok === false && r2.error.code).toBe('NoSuchNeedle');
    expect(r3?.ok && r3.data.toString()).toBe('third');
    // One flipped byte in the first needle: that item fails, the others stand.
    const damaged = Buffer.from(body);
    damaged[13] = damaged[13]! ^ 1;
    const d = decodeReadAnswer(damaged, 3);
    expect(d[0]?.ok === false && d[0].error.code).toBe('NeedleCorrupt');
    expect(d[2]?.ok).toBe(true);
    // A count that does not match the frames fails the batch.
    expect(() => decodeReadAnswer(body, 4)).toThrow(/cut short/);
    expect(() => decodeReadAnswer(body, 2)).toThrow(/too long/);
  });
});

describe('ReadBatcher', () => {
  it('sends the first reads alone and those made meanwhile together, in order', async () => {
    const sent: number[] = [];
    const gates: Array<() => void> = [];
    const b = new ReadBatcher(
      async (body, count) => {
        sent.push(count);
        const items = decodeReadRequest(body);
        return Buffer.concat(
          encodeReadAnswer(
            items.map((it) =>
              it.needleId === 13n
                ? { ok: false, error: new StoreError('NoSuchNeedle', 'none') }
                : { ok: true, data: Buffer.from(`n${it.needleId}`), size: 2 },
            ),
          ),
        );
      },
      (item) =>
        new Promise((resolve) => {
          gates.push(() => resolve({ data: Buffer.from(`one${item.needleId}`), size: 4 }));
        }),
      { maxInFlight: 2 },
    );
    const ref = (n: number) => ({ volumeId: 1, needleId: BigInt(n), cookie: 0 });
    const first = [b.read(ref(1), 10), b.read(ref(2), 10)];
    const rest = [10, 11, 12, 13, 14].map((n) => b.read(ref(n), 10));
    expect(b.stats.singles).toBe(2);
    expect(sent).toEqual([]); // the queue waits for a free slot
    gates.shift()?.();
    expect((await first[0])?.data.toString()).toBe('one1');
    const settled = await Promise.allSettled(rest);
    expect(sent).toEqual([5]);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value.data.toString() : 'x'))).toEqual([
      'n10',
      'n11',
      'n12',
      'x',
      'n14',
    ]);
    const failed = settled[3];
    expect(failed?.status === 'rejected' && (failed.reason as StoreError).code).toBe(
      'NoSuchNeedle',
    );
    gates.shift()?.();
    await first[1];
  });

  it('splits a queue by the bytes a batch may ask for', async () => {
    const sent: number[] = [];
    let release: () => void = () => {};
    const b = new ReadBatcher(
      async (body, count) => {
        sent.push(count);
        const items = decodeReadRequest(body);
        return Buffer.concat(
          encodeReadAnswer(items.map(() => ({ ok: true, data: Buffer.alloc(1), size: 1 }))),
        );
      },
      () =>
        new Promise((resolve) => {
          release = () => resolve({ data: Buffer.alloc(1), size: 1 });
          if (sent.length > 0) release(); // only the first single waits
        }),
      { maxInFlight: 1, maxBytes: 300 },
    );
    const ref = (n: number) => ({ volumeId: 1, needleId: BigInt(n), cookie: 0 });
    const lone = b.read(ref(0), 100);
    const queued = Array.from({ length: 7 }, (_, i) => b.read(ref(i + 1), 100));
    release();
    await lone;
    await Promise.all(queued);
    expect(sent).toEqual([3, 3]);
    expect(b.stats.singles).toBe(2); // the lone first read and the last one of the queue
  });
});

describe('POST /needles/_read on a store', () => {
  let store: Store;
  let server: StoreServer;
  let url: string;

  beforeEach(async () => {
    store = await Store.open(tempDir(), { compactCheckMs: 0, scrubIntervalMs: 0 });
    await store.createVolume(1);
    server = new StoreServer({ store, auth, maxNeedleSize: 1 << 20 });
    url = `http://127.0.0.1:${(await server.listen('127.0.0.1', 0)).port}`;
  });

  afterEach(async () => {
    await server.close();
    await store.close();
  });

  it('serves concurrent whole-needle reads in batches, each with its own bytes or error', async () => {
    const client = new StoreClient(url, auth);
    const n = 60;
    const data = Array.from({ length: n }, (_, i) => Buffer.from(`needle ${i} `.repeat(i + 1)));
    for (let i = 0; i < n; i++) {
      await client.put({ volumeId: 1, needleId: BigInt(i + 1), cookie: 100 + i }, data[i]!);
    }
    const reads = await Promise.allSettled(
      data.map((d, i) =>
        client.get(
          // Needle 7 with the wrong cookie; needle 9 asked under an id never written.
          {
            volumeId: 1,
            needleId: i === 9 ? 999n : BigInt(i + 1),
            cookie: i === 7 ? 1 : 100 + i,
          },
          undefined,
          { expectedSize: d.length },
        ),
      ),
    );
    expect(client.batcher.stats.batches).toBeGreaterThan(0);
    expect(client.batcher.stats.batchedReads).toBeGreaterThan(n / 2);
    reads.forEach((r, i) => {
      if (i === 7 || i === 9) {
        expect(r.status).toBe('rejected');
        const code = r.status === 'rejected' ? (r.reason as StoreError).code : '';
        expect(code).toBe(i === 7 ? 'CookieMismatch' : 'NoSuchNeedle');
      } else {
        expect(r.status === 'fulfilled' && r.value.data.equals(data[i]!)).toBe(true);
        expect(r.status === 'fulfilled' && r.value.size).toBe(data[i]!.length);
      }
    });
  });

  it('refuses a batch without a token, or whose body is not the one signed', async () => {
    const body = encodeReadRequest([{ volumeId: 1, needleId: 1n, cookie: 1 }]);
    const unsigned = await request(`${url}${BATCH_READ_PATH}`, { method: 'POST', body });
    expect(unsigned.statusCode).toBe(403);
    await unsigned.body.dump();
    // A token over another body of the same length (a captured one, replayed).
    const other = encodeReadRequest([{ volumeId: 1, needleId: 2n, cookie: 1 }]);
    const headers = auth.signBody('POST', BATCH_READ_PATH, other);
    const swapped = await request(`${url}${BATCH_READ_PATH}`, { method: 'POST', body, headers });
    expect(swapped.statusCode).toBe(403);
    await swapped.body.dump();
    // The same token without its digest header: the MAC no longer checks out.
    const noDigest = await request(`${url}${BATCH_READ_PATH}`, {
      method: 'POST',
      body: other,
      headers: { [AUTH_HEADER]: headers[AUTH_HEADER]! },
    });
    expect(noDigest.statusCode).toBe(403);
    await noDigest.body.dump();
    expect(headers[DIGEST_HEADER]).toMatch(/^[0-9a-f]{64}$/);
  });

  it('answers a malformed batch 400 InvalidArgument', async () => {
    const body = Buffer.alloc(20);
    const res = await request(`${url}${BATCH_READ_PATH}`, {
      method: 'POST',
      body,
      headers: auth.signBody('POST', BATCH_READ_PATH, body),
    });
    expect(res.statusCode).toBe(400);
    expect(((await res.body.json()) as { error: string }).error).toBe('InvalidArgument');
  });
});
