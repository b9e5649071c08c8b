// The receiving side of snapshot transfers (raft/snapshot-receiver.ts), with real LevelDB
// imports on disk (level-state-machine.ts).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { LevelMetadata } from '../engine/meta-level.ts';
import { exportSnapshot } from '../engine/sm-snapshot.ts';
import { stagingReceiver } from '../raft/snapshot-receiver.ts';
import type { SnapshotMessage } from '../raft/transport.ts';
import type { SnapshotMeta } from '../raft/types.ts';
import { levelMachines } from './level-state-machine.ts';

async function snapshotBytes(buckets: number): Promise<Buffer[]> {
  const m = await LevelMetadata.open(tempDir());
  for (let i = 0; i < buckets; i++) {
    await m.createBucket({ name: `b${i}`, owner: 'o', createdAt: 1, region: 'r' });
  }
  const exp = exportSnapshot(m);
  const out: Buffer[] = [];
  for await (const c of exp.chunks()) out.push(c);
  await exp.close();
  await m.close();
  // Re-cut small, so a transfer is many chunks.
  const all = Buffer.concat(out);
  const parts: Buffer[] = [];
  for (let off = 0; off < all.length; off += 512) parts.push(all.subarray(off, off + 512));
  return parts;
}

const meta = (index: number): SnapshotMeta => ({
  index,
  term: 1,
  conf: { voters: ['a', 'b'], learners: [] },
});
const msg = (index: number) =>
  ({ type: 'snapshot', from: 'a', to: 'b', term: 1, meta: meta(index) }) as SnapshotMessage;

describe('stagingReceiver', () => {
  it('keeps a finished snapshot when the next transfer begins, each in its own directory', async () => {
    const root = tempDir('ks-recv-');
    const staged: Array<{ index: number; dir: string }> = [];
    const r = stagingReceiver(levelMachines(root), (m, _msg, dir) =>
      staged.push({ index: m.index, dir }),
    );
    const chunks = await snapshotBytes(30);
    const t1 = await r.begin('a', meta(10));
    for (const c of chunks) await r.chunk(t1, c);
    await r.finish(t1, msg(10));
    expect(staged).toHaveLength(1);
    // The host has not swapped it in yet; a newer transfer starts and is cut short.
    const t2 = await r.begin('a', meta(20));
    await r.chunk(t2, chunks[0]!);
    await r.abort(t2);
    const first = staged[0]!;
    expect(fs.existsSync(first.dir)).toBe(true);
    const sm = await LevelMetadata.open(first.dir);
    try {
      expect((await sm.listBuckets('o')).map((b) => b.name)).toHaveLength(30);
    } finally {
      await sm.close();
    }
    // The aborted transfer left nothing behind but the staged one.
    expect(fs.readdirSync(root)).toEqual([path.basename(first.dir)]);
  });

  it('holds a sender back while the import is behind (a bounded queue)', async () => {
    const root = tempDir('ks-recv-');
    const r = stagingReceiver(levelMachines(root), () => {});
    const chunks = await snapshotBytes(200);
    const id = await r.begin('a', meta(5));
    let answered = 0;
    // Fire every chunk at once, as a sender ignoring replies would: they must not all be
    // acknowledged before the import took most of them.
    const all = chunks.map((c) => r.chunk(id, c).then(() => answered++));
    await new Promise((res) => setImmediate(res));
    expect(answered).toBeLessThan(chunks.length);
    await Promise.all(all);
    await r.finish(id, msg(5));
    expect(answered).toBe(chunks.length);
  });
});
