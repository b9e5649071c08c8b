import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { RaftStorage } from './storage.ts';
import type { ConfState, Entry, HardState } from './types.ts';

const conf: ConfState = { voters: ['a', 'b', 'c'], learners: [] };

function ents(first: number, last: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = first; i <= last; i++)
    out.push({ index: i, term, kind: 'cmd', data: `${i}:${term}` });
  return out;
}

async function reopen(s: RaftStorage, dir: string): Promise<RaftStorage> {
  await s.close();
  return RaftStorage.open(dir);
}

describe('RaftStorage', () => {
  it('starts empty', async () => {
    const s = await RaftStorage.open(tempDir('raft-st-'));
    expect(await s.load()).toEqual({
      hardState: { term: 0, vote: null, commit: 0 },
      snapshot: null,
      entries: [],
    });
    expect(s.lastIndex()).toBe(0);
    await s.close();
  });

  it('persists hard state and entries across reopen', async () => {
    const dir = tempDir('raft-st-');
    let s = await RaftStorage.open(dir);
    const hs: HardState = { term: 3, vote: 'b', commit: 2 };
    await s.save(hs, ents(1, 5, 3));
    await s.save(undefined, ents(6, 6, 3));
    await s.save({ ...hs, commit: 6 }, []);
    await s.save(undefined, []);
    s = await reopen(s, dir);
    expect(s.lastIndex()).toBe(6);
    expect(await s.load()).toEqual({
      hardState: { term: 3, vote: 'b', commit: 6 },
      snapshot: null,
      entries: ents(1, 6, 3),
    });
    await s.close();
  });

  it('replaces a conflicting suffix', async () => {
    const dir = tempDir('raft-st-');
    let s = await RaftStorage.open(dir);
    await s.save(undefined, ents(1, 10, 1));
    await s.save(undefined, ents(6, 7, 2));
    expect(s.lastIndex()).toBe(7);
    const want = [...ents(1, 5, 1), ...ents(6, 7, 2)];
    expect((await s.load()).entries).toEqual(want);
    s = await reopen(s, dir);
    expect(s.lastIndex()).toBe(7);
    expect((await s.load()).entries).toEqual(want);
    // Appending again must not resurrect the old 8..10.
    await s.save(undefined, ents(8, 8, 2));
    s = await reopen(s, dir);
    expect((await s.load()).entries).toEqual([...want, ...ents(8, 8, 2)]);
    await s.close();
  });

  it('refuses gaps and non-contiguous batches without writing', async () => {
    const s = await RaftStorage.open(tempDir('raft-st-'));
    await s.save(undefined, ents(1, 3, 1));
    await expect(s.save({ term: 9, vote: null, commit: 0 }, ents(5, 5, 1))).rejects.toThrow(/gap/);
    const bad = [...ents(4, 4, 1), ...ents(6, 6, 1)];
    await expect(s.save(undefined, bad)).rejects.toThrow(/contiguous/);
    expect(await s.load()).toEqual({
      hardState: { term: 0, vote: null, commit: 0 },
      snapshot: null,
      entries: ents(1, 3, 1),
    });
    await s.close();
  });

  it('compacts the log prefix', async () => {
    const dir = tempDir('raft-st-');
    let s = await RaftStorage.open(dir);
    await s.save({ term: 2, vote: 'a', commit: 8 }, ents(1, 10, 2));
    const meta = { index: 4, term: 2, conf };
    await s.compact(meta);
    expect(await s.load()).toEqual({
      hardState: { term: 2, vote: 'a', commit: 8 },
      snapshot: meta,
      entries: ents(5, 10, 2),
    });
    s = await reopen(s, dir);
    expect(s.lastIndex()).toBe(10);
    expect(s.snapshotIndex()).toBe(4);
    expect((await s.load()).entries).toEqual(ents(5, 10, 2));
    // Entries the snapshot already covers are skipped, the rest appended.
    await s.save(undefined, ents(3, 11, 2));
    expect((await s.load()).entries).toEqual(ents(5, 11, 2));
    // Compacting at or beyond the end leaves an empty log that continues after it.
    await s.compact({ index: 11, term: 2, conf });
    expect(s.lastIndex()).toBe(11);
    await s.save(undefined, ents(12, 12, 3));
    s = await reopen(s, dir);
    const st = await s.load();
    expect(st.snapshot?.index).toBe(11);
    expect(st.entries).toEqual(ents(12, 12, 3));
    await s.close();
  });

  it('replaces the whole log on resetToSnapshot', async () => {
    const dir = tempDir('raft-st-');
    let s = await RaftStorage.open(dir);
    await s.save(undefined, ents(1, 10, 1));
    // A snapshot below lastIndex still discards the log: it came from a leader whose log
    // may disagree with ours after its index.
    await s.resetToSnapshot({ index: 5, term: 3, conf });
    expect(s.lastIndex()).toBe(5);
    expect((await s.load()).entries).toEqual([]);
    await s.save(undefined, ents(6, 6, 3));
    s = await reopen(s, dir);
    expect(s.lastIndex()).toBe(6);
    expect(await s.load()).toMatchObject({
      snapshot: { index: 5, term: 3 },
      entries: ents(6, 6, 3),
    });
    await s.resetToSnapshot({ index: 50, term: 4, conf });
    s = await reopen(s, dir);
    expect(s.lastIndex()).toBe(50);
    expect(await s.load()).toMatchObject({ snapshot: { index: 50, term: 4 }, entries: [] });
    await s.close();
  });

  it('keeps only the contiguous log after a snapshot on open', async () => {
    const dir = tempDir('raft-st-');
    let s = await RaftStorage.open(dir);
    await s.save(undefined, ents(1, 8, 1));
    await s.compact({ index: 2, term: 1, conf });
    await s.close();
    // Simulate leftovers: an entry below the snapshot and one beyond a hole.
    const db = new ClassicLevel<string, string>(dir);
    const key = (i: number) => `e${i.toString(16).padStart(16, '0')}`;
    await db.put(key(1), JSON.stringify(ents(1, 1, 1)[0]));
    await db.del(key(6));
    await db.close();
    s = await RaftStorage.open(dir);
    expect(s.lastIndex()).toBe(5);
    expect((await s.load()).entries).toEqual(ents(3, 5, 1));
    // Filling the hole must not bring back the stale 7..8.
    await s.save(undefined, ents(6, 6, 2));
    s = await reopen(s, dir);
    expect((await s.load()).entries).toEqual([...ents(3, 5, 1), ...ents(6, 6, 2)]);
    await s.close();
  });
});

// Child: saves in a loop with a few saves outstanding, announcing each operation on
// stdout before issuing it ("op first count term") and after it resolved ("ok").
// Writes to a pipe are synchronous on Linux, so a line printed is a line the parent gets.
const STORAGE_URL = new URL('./storage.ts', import.meta.url).href;
const CHILD = `
import { RaftStorage } from ${JSON.stringify(STORAGE_URL)};
const s = await RaftStorage.open(process.argv[1]);
let last = s.lastIndex();
let term = (await s.load()).hardState.term + 1;
let outstanding = 0;
for (let n = 0; ; n++) {
  if (n % 40 === 39) term++;
  const first = n % 7 === 6 ? Math.max(1, last - 3) : last + 1;
  const count = 1 + (n % 5);
  const es = [];
  for (let i = first; i < first + count; i++) es.push({ index: i, term, kind: 'cmd', data: i + ':' + term + ':' + 'x'.repeat(200) });
  last = first + count - 1;
  process.stdout.write('op ' + first + ' ' + count + ' ' + term + '\\n');
  outstanding++;
  s.save({ term, vote: 'n1', commit: first - 1 }, es).then(() => { outstanding--; process.stdout.write('ok\\n'); });
  while (outstanding >= 4) await new Promise((r) => setImmediate(r));
}
`;

interface Op {
  first: number;
  count: number;
  term: number;
}

function apply(log: Entry[], op: Op): [Entry[], HardState] {
  const next = log.filter((e) => e.index < op.first);
  for (let i = op.first; i < op.first + op.count; i++) {
    next.push({ index: i, term: op.term, kind: 'cmd', data: `${i}:${op.term}:${'x'.repeat(200)}` });
  }
  return [next, { term: op.term, vote: 'n1', commit: op.first - 1 }];
}

function runChild(dir: string): Promise<{ ops: Op[]; acked: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', CHILD, dir],
      { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const ops: Op[] = [];
    let acked = 0;
    let partial = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line === 'ok') {
          acked++;
          timer ??= setTimeout(() => child.kill('SIGKILL'), 300);
        } else {
          const [, a, b, c] = line.split(' ');
          ops.push({ first: Number(a), count: Number(b), term: Number(c) });
        }
      }
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(guard);
      clearTimeout(timer);
      if (signal !== 'SIGKILL' || timer === undefined) {
        reject(new Error(`child ended with ${signal ?? _code} before being killed: ${stderr}`));
      } else resolve({ ops, acked });
    });
  });
}

describe('RaftStorage crash safety', () => {
  it('never loses a resolved save when killed with SIGKILL', { timeout: 60_000 }, async () => {
    const dir = tempDir('raft-crash-');
    let log: Entry[] = [];
    let hs: HardState = { term: 0, vote: null, commit: 0 };
    for (let run = 0; run < 5; run++) {
      const { ops, acked } = await runChild(dir);
      expect(acked).toBeGreaterThan(0);
      const s = await RaftStorage.open(dir);
      const got = await s.load();
      await s.close();
      // Saves are serial, so the disk holds exactly the effect of some prefix of the ops
      // that covers at least every acknowledged one.
      const candidates: Array<[Entry[], HardState]> = [];
      let state: [Entry[], HardState] = [log, hs];
      ops.forEach((op, i) => {
        state = apply(state[0], op);
        if (i + 1 >= acked) candidates.push(state);
      });
      const match = candidates.find(
        ([l, h]) =>
          JSON.stringify(l) === JSON.stringify(got.entries) &&
          JSON.stringify(h) === JSON.stringify(got.hardState),
      );
      expect(match, `run ${run}: ${acked} acked of ${ops.length}`).toBeDefined();
      [log, hs] = match!;
    }
    expect(log.length).toBeGreaterThan(0);
  });
});
