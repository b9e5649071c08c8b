// Recovery must not truncate acknowledged needles that follow a corrupt one.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { StoreError } from './errors.ts';
import { IDX_HEADER_SIZE } from './index-file.ts';
import { NEEDLE_HEADER_SIZE, needleDiskSize, SUPERBLOCK_SIZE } from './needle.ts';
import { Store } from './store.ts';

const opts = { compactCheckMs: 0, scrubIntervalMs: 0, compression: 'off' as const };

describe('recovery with bit rot in acknowledged data', () => {
  it('keeps acknowledged needles after a corrupt needle when the unsynced .idx was lost', async () => {
    const dir = tempDir();
    const data = [1, 2, 3].map(() => crypto.randomBytes(1000));
    let s = await Store.open(dir, opts);
    await s.createVolume(1);
    // Each write is acknowledged (fdatasync'd) before the next starts.
    for (let i = 0; i < 3; i++) await s.write(1, BigInt(i + 1), 7, data[i]!);
    await s.close();

    // Power loss: the .idx is never synced, so its records may all be gone (FORMAT.md).
    fs.truncateSync(path.join(dir, '1.idx'), IDX_HEADER_SIZE);
    // Bit rot in the data of needle 2 (acknowledged long ago).
    const dat = path.join(dir, '1.dat');
    const sizeBefore = fs.statSync(dat).size;
    const fd = fs.openSync(dat, 'r+');
    const at = SUPERBLOCK_SIZE + needleDiskSize(1000) + NEEDLE_HEADER_SIZE + 10;
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);

    s = await Store.open(dir, opts);
    try {
      // Promise 4: the flipped needle is an error…
      const e2 = await s.read(1, 2n, 7).catch((e) => e);
      // Promise 1: …and needle 3, acknowledged, is still there.
      const r3 = await s.read(1, 3n, 7).catch((e) => e);
      expect(fs.statSync(dat).size).toBe(sizeBefore);
      expect(r3 instanceof StoreError ? r3.code : 'ok').toBe('ok');
      expect((r3 as { data: Buffer }).data.equals(data[2]!)).toBe(true);
      expect(e2 instanceof StoreError ? e2.code : 'ok').toBe('NeedleCorrupt');
    } finally {
      await s.close();
    }
  });
});
