import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { textPayload } from '../common/payload.ts';
import { payload, tempDir } from '../test/kit/temp-dirs.ts';
import { StoreError } from './errors.ts';
import { IDX_HEADER_SIZE } from './index-file.ts';
import { NEEDLE_HEADER_SIZE, SUPERBLOCK_SIZE } from './needle.ts';
import { Store } from './store.ts';

const opts = { compactCheckMs: 0, scrubIntervalMs: 0 };

async function withStore<T>(dir: string, fn: (s: Store) => Promise<T>, extra = {}): Promise<T> {
  const s = await Store.open(dir, { ...opts, ...extra });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

function code(e: unknown): string {
  return e instanceof StoreError ? e.code : String(e);
}

describe('volume engine', () => {
  it('writes, reads, reloads, repairs and deletes needles', async () => {
    const dir = tempDir();
    await withStore(dir, async (s) => {
      await s.createVolume(1);
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          s.write(1, BigInt(i + 1), 1000 + i, payload(BigInt(i + 1), i * 37)),
        ),
      );
      // Only a repair (scrub, sync) may rewrite a live needle, and only with its cookie.
      await s.write(1, 5n, 1004, payload(555n, 999), undefined, { repair: true });
      await s.delete(1, 7n, 1006);
    });
    await withStore(dir, async (s) => {
      for (let i = 0; i < 200; i++) {
        const id = BigInt(i + 1);
        if (id === 7n) {
          await expect(s.read(1, id, 1006)).rejects.toMatchObject({ code: 'NoSuchNeedle' });
          continue;
        }
        const want = id === 5n ? payload(555n, 999) : payload(id, i * 37);
        expect((await s.read(1, id, 1000 + i)).data.equals(want)).toBe(true);
      }
      expect(s.volume(1).needleCount).toBe(199);
      const st = s.volume(1).stats();
      expect(st.garbageBytes).toBeGreaterThan(0);
      expect(st.liveBytes + st.garbageBytes).toBe(st.fileBytes - SUPERBLOCK_SIZE);
    });
  });

  it('writes a needle id once: a retry of the same bytes succeeds, anything else is refused', async () => {
    const dir = tempDir();
    await withStore(dir, async (s) => {
      await s.createVolume(1);
      const data = payload(1n, 5000);
      const first = await s.write(1, 1n, 11, data);
      const size = s.volume(1).stats().fileBytes;
      // A retry (a gateway or a forward that did not see the answer): same answer, no append.
      expect(await s.write(1, 1n, 11, Buffer.from(data))).toEqual(first);
      expect(s.volume(1).stats().fileBytes).toBe(size);
      // Other bytes of the same size, another cookie, another size: refused.
      const other = Buffer.from(data);
      other[100]! ^= 1;
      for (const [cookie, bytes] of [
        [11, other],
        [12, data],
        [11, data.subarray(1)],
      ] as const) {
        await expect(s.write(1, 1n, cookie, bytes)).rejects.toMatchObject({
          code: 'NeedleExists',
          status: 409,
        });
      }
      // Two writes of one id at once: the second sees the first (one wins, one is refused).
      const race = await Promise.allSettled([
        s.write(1, 2n, 1, payload(2n, 3000)),
        s.write(1, 2n, 1, payload(22n, 3000)),
      ]);
      expect(race.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
      expect(code((race[1] as PromiseRejectedResult).reason)).toBe('NeedleExists');
      expect((await s.read(1, 2n, 1)).data.equals(payload(2n, 3000))).toBe(true);
      expect((await s.read(1, 1n, 11)).data.equals(data)).toBe(true);
      // A deleted id is not written again, not even with its old bytes…
      await s.delete(1, 1n, 11);
      await expect(s.write(1, 1n, 11, data)).rejects.toMatchObject({ code: 'NeedleExists' });
      // …but a repair (a replica copying back what it lacks) still may.
      await s.delete(1, 2n, 1);
      await s.write(1, 2n, 1, payload(2n, 3000), undefined, { repair: true });
    });
    // A restart does not reopen the window: the ids the .idx shows deleted stay refused.
    await withStore(dir, async (s) => {
      await expect(s.write(1, 1n, 11, payload(1n, 5000))).rejects.toMatchObject({
        code: 'NeedleExists',
      });
      expect((await s.read(1, 2n, 1)).data.equals(payload(2n, 3000))).toBe(true);
    });
  });

  it('replaces a needle whose stored copy is corrupt', async () => {
    const dir = tempDir();
    let off = 0;
    await withStore(dir, async (s) => {
      await s.createVolume(1);
      off = (await s.write(1, 3n, 7, payload(3n, 2000))).offset;
    });
    const fd = fs.openSync(path.join(dir, '1.dat'), 'r+');
    fs.writeSync(fd, Buffer.from([0x55]), 0, 1, off + NEEDLE_HEADER_SIZE + 10);
    fs.closeSync(fd);
    await withStore(dir, async (s) => {
      await expect(s.read(1, 3n, 7)).rejects.toMatchObject({ code: 'NeedleCorrupt' });
      await s.write(1, 3n, 7, payload(3n, 2000));
      expect((await s.read(1, 3n, 7)).data.equals(payload(3n, 2000))).toBe(true);
    });
  });

  it('checks cookies and serves byte ranges', async () => {
    await withStore(tempDir(), async (s) => {
      await s.createVolume(3);
      const data = textPayload(10_000);
      const w = await s.write(3, 9n, 77, data, 'text/plain');
      expect(w.compressed).toBe(true);
      expect(w.storedLength).toBeLessThan(data.length);
      await expect(s.read(3, 9n, 78)).rejects.toMatchObject({ code: 'CookieMismatch' });
      const r = await s.read(3, 9n, 77, { start: 100, end: 199 });
      expect(r.data.equals(data.subarray(100, 200))).toBe(true);
      expect(r.size).toBe(10_000);
      await expect(s.read(3, 9n, 77, { start: 10_000, end: 10_001 })).rejects.toMatchObject({
        code: 'InvalidRange',
      });
      expect(await s.head(3, 9n, 77)).toEqual({ size: 10_000, compressed: true });
      // Already-compressed content types and incompressible bytes are stored raw.
      expect((await s.write(3, 10n, 1, payload(10n, 10_000, true), 'image/jpeg')).compressed).toBe(
        false,
      );
      expect((await s.write(3, 11n, 1, payload(11n, 10_000))).compressed).toBe(false);
    });
  });

  it('rolls over to a new volume when the writable one is full, and reloads all', async () => {
    const dir = tempDir();
    const ids: [bigint, number][] = [];
    await withStore(
      dir,
      async (s) => {
        for (let i = 1n; i <= 100n; i++)
          ids.push([i, (await s.append(i, 1, payload(i, 3000))).volumeId]);
        expect(s.volumeIds().length).toBeGreaterThanOrEqual(4);
        expect(s.volume(1).readOnly).toBe(true);
        await expect(s.write(1, 999n, 1, Buffer.alloc(10))).rejects.toMatchObject({
          code: 'VolumeReadOnly',
        });
      },
      { maxSize: 64 * 1024 },
    );
    await withStore(dir, async (s) => {
      for (const [id, vid] of ids)
        expect((await s.read(vid, id, 1)).data.equals(payload(id, 3000))).toBe(true);
      expect(s.volume(1).readOnly).toBe(true);
    });
  });

  it('truncates a torn tail and rebuilds a lost or damaged .idx', async () => {
    const dir = tempDir();
    await withStore(dir, async (s) => {
      await s.createVolume(1);
      for (let i = 1n; i <= 50n; i++) await s.write(1, i, 1, payload(i, 500));
    });
    const dat = path.join(dir, '1.dat');
    const idx = path.join(dir, '1.idx');
    const goodSize = fs.statSync(dat).size;
    // A torn append: half a needle of garbage past the end, plus a short .idx tail.
    fs.appendFileSync(dat, payload(1n, 300));
    fs.truncateSync(idx, fs.statSync(idx).size - 20);
    await withStore(dir, async (s) => {
      expect(s.volume(1).needleCount).toBe(50);
      expect((await s.read(1, 50n, 1)).data.equals(payload(50n, 500))).toBe(true);
    });
    expect(fs.statSync(dat).size).toBe(goodSize);
    // The .idx gone entirely: rebuilt from the .dat.
    fs.rmSync(idx);
    await withStore(dir, async (s) => {
      expect(s.volume(1).needleCount).toBe(50);
      await s.write(1, 51n, 1, payload(51n, 10));
    });
    // The .idx pointing at the wrong needles: detected and rebuilt.
    const buf = fs.readFileSync(idx);
    buf.writeUInt32LE(12345, IDX_HEADER_SIZE + 50 * 16);
    fs.writeFileSync(idx, buf);
    await withStore(dir, async (s) => {
      expect(s.volume(1).needleCount).toBe(51);
      expect((await s.read(1, 51n, 1)).data.equals(payload(51n, 10))).toBe(true);
    });
  });

  it('detects a flipped byte on read and in scrub, never returning wrong bytes', async () => {
    const dir = tempDir();
    let off = 0;
    await withStore(dir, async (s) => {
      await s.createVolume(1);
      for (let i = 1n; i <= 20n; i++) {
        const w = await s.write(1, i, 1, payload(i, 4096));
        if (i === 13n) off = w.offset;
      }
    });
    const fd = fs.openSync(path.join(dir, '1.dat'), 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, off + NEEDLE_HEADER_SIZE + 1000);
    b[0]! ^= 0x04;
    fs.writeSync(fd, b, 0, 1, off + NEEDLE_HEADER_SIZE + 1000);
    fs.closeSync(fd);
    await withStore(dir, async (s) => {
      await expect(s.read(1, 13n, 1)).rejects.toMatchObject({ code: 'NeedleCorrupt' });
      expect((await s.read(1, 12n, 1)).data.equals(payload(12n, 4096))).toBe(true);
      const [r] = await s.scrub();
      expect(r!.checked).toBe(20);
      expect(r!.corrupt).toEqual([13n]);
      expect((await s.status()).lastScrub!.corrupt).toEqual(['1/13']);
    });
  });

  it('deletes a needle whose header is corrupt (it must not stay live forever)', async () => {
    const dir = tempDir();
    let off = 0;
    await withStore(dir, async (s) => {
      await s.createVolume(1);
      off = (await s.write(1, 5n, 9, payload(5n, 300))).offset;
      await s.write(1, 6n, 9, payload(6n, 300));
    });
    const fd = fs.openSync(path.join(dir, '1.dat'), 'r+');
    fs.writeSync(fd, Buffer.from([0xee]), 0, 1, off + 6); // inside the cookie: header CRC breaks
    fs.closeSync(fd);
    await withStore(dir, async (s) => {
      await expect(s.read(1, 5n, 9)).rejects.toMatchObject({ code: 'NeedleCorrupt' });
      await s.delete(1, 5n, 9);
      await expect(s.read(1, 5n, 9)).rejects.toMatchObject({ code: 'NoSuchNeedle' });
      expect((await s.read(1, 6n, 9)).data.equals(payload(6n, 300))).toBe(true);
    });
  });

  it('compacts online while writes, deletes and reads go on, then reloads', async () => {
    const dir = tempDir();
    const live = new Map<bigint, number>();
    await withStore(dir, async (s) => {
      await s.createVolume(1);
      for (let i = 1n; i <= 2000n; i++) {
        await s.write(1, i, 1, payload(i, 2000));
        live.set(i, 2000);
      }
      for (let i = 1n; i <= 2000n; i += 2n) {
        await s.delete(1, i, 1);
        live.delete(i);
      }
      const before = s.volume(1).stats();
      expect(before.garbageRatio).toBeGreaterThan(0.45);
      const during: Promise<unknown>[] = [];
      const compaction = s.compact(1);
      for (let i = 2001n; i <= 2300n; i++) {
        during.push(s.write(1, i, 1, payload(i, 1500)));
        live.set(i, 1500);
      }
      for (let i = 2n; i <= 400n; i += 4n) {
        during.push(s.delete(1, i, 1));
        live.delete(i);
      }
      for (let i = 402n; i <= 800n; i += 4n) {
        during.push(
          s.read(1, i, 1).then((r) => expect(r.data.equals(payload(i, 2000))).toBe(true)),
        );
      }
      await Promise.all(during);
      const r = await compaction;
      expect(r.afterBytes).toBeLessThan(r.beforeBytes * 0.7);
      for (const [id, len] of live)
        expect((await s.read(1, id, 1)).data.equals(payload(id, len))).toBe(true);
      expect(s.volume(1).needleCount).toBe(live.size);
      expect(s.volume(1).stats().generation).toBe(1);
    });
    expect(fs.readdirSync(dir).sort()).toEqual(['1.dat', '1.idx']);
    await withStore(dir, async (s) => {
      expect(s.volume(1).needleCount).toBe(live.size);
      for (const [id, len] of live)
        expect((await s.read(1, id, 1)).data.equals(payload(id, len))).toBe(true);
      for (let i = 2n; i <= 400n; i += 4n) {
        expect(code(await s.read(1, i, 1).catch((e) => e))).toBe('NoSuchNeedle');
      }
    });
  });

  it('compacts by garbage ratio only past both thresholds', async () => {
    await withStore(
      tempDir(),
      async (s) => {
        await s.createVolume(1);
        await s.createVolume(2);
        for (let i = 1n; i <= 100n; i++) {
          await s.write(1, i, 1, payload(i, 1000));
          await s.write(2, i, 1, payload(i, 1000));
        }
        for (let i = 1n; i <= 60n; i++) await s.delete(1, i, 1);
        for (let i = 1n; i <= 10n; i++) await s.delete(2, i, 1);
        const done = await s.compactIfNeeded();
        expect(done.map((d) => d.volumeId)).toEqual([1]);
        expect(s.volume(1).stats().garbageBytes).toBe(0);
      },
      { compactGarbageRatio: 0.3, compactMinGarbageBytes: 1000 },
    );
  });
});
