import fs from 'node:fs';
import path from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { once } from '../../test/kit/fixture.ts';
import { testObject } from '../../test/kit/records.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import type { ObjectRecord } from '../model/api.ts';
import type { Command } from './commands.ts';
import { LevelMetadata } from './meta-level.ts';
import { exportSnapshot, importSnapshot, SNAPSHOT_CHUNK_BYTES } from './sm-snapshot.ts';

async function dump(m: LevelMetadata): Promise<Array<[string, string]>> {
  const entries = await m.rawIterator().all();
  return entries.map(([k, v]) => [k.toString('latin1'), v.toString('utf8')]);
}

const obj = (key: string, etag?: string, extra: Partial<ObjectRecord> = {}) =>
  testObject(key, etag, { userMeta: { n: key }, ...extra });

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

/** The stream re-cut at the given sizes, cycling through them. */
async function* recut(bytes: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield bytes.subarray(off, off + n);
    off += n;
  }
}

/** A small store with a value larger than several chunks of the given size. */
async function smallStore(): Promise<LevelMetadata> {
  const m = await LevelMetadata.open(tempDir());
  await m.createBucket({ name: 'b', owner: 'alice', createdAt: 1, region: 'r' });
  await m.putObject('b', obj('big', 'e', { userMeta: { blob: 'x'.repeat(5000) } }));
  for (let i = 0; i < 50; i++) await m.putObject('b', obj(`k${i}/é`));
  await m.applyReplicated([{ op: 'allocateVolumeId', args: [] }], 9);
  return m;
}

async function importAndDump(
  chunks: AsyncIterable<Buffer>,
): Promise<{ dump: Array<[string, string]>; applied: number }> {
  const dir = path.join(tempDir(), 'db');
  await importSnapshot(dir, chunks);
  const m = await LevelMetadata.open(dir);
  try {
    return { dump: await dump(m), applied: await m.appliedIndex() };
  } finally {
    await m.close();
  }
}

describe('state machine snapshots', () => {
  it('exports the state as of the export call while writes go on; imports it elsewhere', async () => {
    const m = await LevelMetadata.open(tempDir());
    try {
      await m.createBucket({ name: 'b', owner: 'alice', createdAt: 1, region: 'r' });
      const total = 20_000;
      const per = 1000;
      for (let i = 0; i < total / per; i++) {
        const cmds = Array.from(
          { length: per },
          (_, j): Command => ({
            op: 'putObject',
            args: ['b', obj(`obj/${String(i * per + j).padStart(6, '0')}`)],
          }),
        );
        await m.applyReplicated(cmds, i + 1);
      }
      const expected = await dump(m);
      expect(expected.length).toBeGreaterThan(total);

      const exp = exportSnapshot(m);
      // Overwrites, deletes, new keys and a new applied index, racing the export.
      let writesDone = 0;
      const writer = (async () => {
        for (let i = 0; i < 200; i++) {
          const n = String(i * 97).padStart(6, '0');
          await m.putObject('b', obj(`obj/${n}`, `changed-${i}`));
          await m.deleteObject('b', `obj/${String(i * 89 + 1).padStart(6, '0')}`);
          await m.applyReplicated([{ op: 'putObject', args: ['b', obj(`new/${i}`)] }], 100 + i);
          writesDone++;
        }
      })();
      const chunks: Buffer[] = [];
      let writesBeforeEnd = 0;
      for await (const c of exp.chunks()) {
        chunks.push(c);
        await tick();
        writesBeforeEnd = writesDone;
      }
      await writer;
      expect(writesBeforeEnd).toBeGreaterThan(0);
      expect(await exp.appliedIndex()).toBe(total / per);

      // Fixed-size chunks: frames straddle their boundaries.
      expect(chunks.length).toBeGreaterThan(2);
      for (const c of chunks.slice(0, -1)) expect(c.length).toBe(SNAPSHOT_CHUNK_BYTES);

      const got = await importAndDump(
        (async function* () {
          yield* chunks;
        })(),
      );
      expect(got.applied).toBe(total / per);
      expect(got.dump).toEqual(expected);
      // The writes happened, and are not in the snapshot.
      const now = await dump(m);
      expect(now).not.toEqual(expected);
      expect((await m.getObject('b', 'new/0'))!.etag).toBe('e-new/0');
      expect(got.dump.some(([k]) => k.includes('new/'))).toBe(false);
    } finally {
      await m.close();
    }
  }, 120_000);

  it('reads frames cut anywhere: tiny chunks, odd re-cuts, one whole buffer', async () => {
    const m = await smallStore();
    try {
      const expected = await dump(m);
      const tiny = await collect(exportSnapshot(m, 7).chunks());
      expect(tiny.slice(0, -1).every((c) => c.length === 7)).toBe(true);
      const bytes = Buffer.concat(tiny);
      expect(Buffer.concat(await collect(exportSnapshot(m).chunks()))).toEqual(bytes);
      for (const sizes of [[1], [3, 1000, 5, 4096], [bytes.length]]) {
        const got = await importAndDump(recut(bytes, sizes));
        expect(got.dump).toEqual(expected);
        expect(got.applied).toBe(9);
      }
    } finally {
      await m.close();
    }
  });

  it('fails loudly on a truncated, corrupted or overlong stream, leaving nothing behind', async () => {
    const m = await smallStore();
    let bytes: Buffer;
    try {
      bytes = Buffer.concat(await collect(exportSnapshot(m, 1000).chunks()));
    } finally {
      await m.close();
    }
    const corrupt = Buffer.from(bytes);
    corrupt[Math.floor(bytes.length / 2)]! ^= 0x20;
    const cases: Array<[string, Buffer, RegExp]> = [
      ['empty', Buffer.alloc(0), /truncated/],
      ['mid-header', bytes.subarray(0, 5), /truncated/],
      ['mid-frame', bytes.subarray(0, Math.floor(bytes.length / 2)), /truncated/],
      // Exactly at a frame boundary: only the trailer (16 bytes) is missing.
      ['no trailer', bytes.subarray(0, bytes.length - 16), /truncated/],
      ['last byte', bytes.subarray(0, bytes.length - 1), /truncated/],
      ['flipped bit', corrupt, /corrupt/],
      ['trailing bytes', Buffer.concat([bytes, Buffer.from([0])]), /after the trailer/],
      ['not a snapshot', Buffer.from('hello world, this is not it'), /not a snapshot/],
    ];
    for (const [what, b, err] of cases) {
      const parent = tempDir();
      const dir = path.join(parent, 'db');
      await expect(importSnapshot(dir, recut(b, [333])), what).rejects.toThrow(err);
      expect(fs.readdirSync(parent), what).toEqual([]);
    }
    // The intact stream imports.
    const dir = path.join(tempDir(), 'db');
    await importSnapshot(dir, once(bytes));
    const back = await LevelMetadata.open(dir);
    try {
      expect((await back.getObject('b', 'k3/é'))!.etag).toBe('e-k3/é');
    } finally {
      await back.close();
    }
  });

  it('carries empty values (the index entry of an access key) with a checksum that holds', async () => {
    const m = await smallStore();
    try {
      await m.createUser({ id: 'alice', displayName: 'Alice', createdAt: 1 });
      await m.addKey({
        accessKey: 'AKEXAMPLE',
        secretKey: 'sealed',
        userId: 'alice',
        createdAt: 1,
      });
      const raw = await m.rawIterator().all();
      expect(raw.some(([, v]) => v.length === 0)).toBe(true); // what the test is about
      const back = await importAndDump(exportSnapshot(m, 1000).chunks());
      expect(back.dump).toEqual(await dump(m));
    } finally {
      await m.close();
    }
  });

  it('refuses to import over an existing database', async () => {
    const m = await smallStore();
    try {
      const bytes = Buffer.concat(await collect(exportSnapshot(m).chunks()));
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, 'CURRENT'), 'x');
      await expect(importSnapshot(dir, once(bytes))).rejects.toThrow(/not empty/);
      // An empty directory is fine.
      const empty = tempDir();
      await importSnapshot(empty, once(bytes));
      const back = await LevelMetadata.open(empty);
      expect(await back.appliedIndex()).toBe(9);
      await back.close();
    } finally {
      await m.close();
    }
  });

  it('releases the snapshot when the stream is abandoned or never read', async () => {
    const m = await smallStore();
    try {
      const a = exportSnapshot(m, 64);
      for await (const _ of a.chunks()) break;
      const b = exportSnapshot(m);
      expect(await b.appliedIndex()).toBe(9);
      await b.close();
      await b.close();
      expect(() => a.chunks()).toThrow(/already consumed/);
    } finally {
      await m.close();
    }
  });
});
