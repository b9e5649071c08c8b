import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import { MetadataError, type ObjectRecord, type PartRecord } from '../model/api.ts';
import { encodeObject } from '../model/object-codec.ts';
import { type Command, isJsonStable, MUTATING_METHODS, proposedForm } from './commands.ts';
import * as K from './keys.ts';
import { LevelMetadata } from './meta-level.ts';
import type { Outcome } from './writer.ts';

// ---- helpers ----

async function dump(m: LevelMetadata): Promise<Array<[string, string]>> {
  const entries = await m.rawIterator().all();
  return entries.map(([k, v]) => [k.toString('latin1'), v.toString('utf8')]);
}

function withoutApplied(d: Array<[string, string]>): Array<[string, string]> {
  return d.filter(([k]) => k !== K.NS.raftApplied);
}

/** Outcomes as comparable data: an error by its class, code and message. */
function norm(o: Outcome): unknown {
  if (o.ok) return { ok: true, value: o.value };
  const e = o.error as Error;
  return { ok: false, name: e.name, code: (e as MetadataError).code, message: e.message };
}

async function viaMethod(m: LevelMetadata, cmd: Command): Promise<Outcome> {
  try {
    const f = m[cmd.op] as (...a: unknown[]) => Promise<unknown>;
    return { ok: true, value: await f.apply(m, cmd.args) };
  } catch (error) {
    return { ok: false, error };
  }
}

const BUCKETS = ['b0', 'b1', 'b2'];
const KEYS = Array.from({ length: 10 }, (_, i) => `k${i}`);
const UPLOADS = ['u1', 'u2'];
const USERS = ['alice', 'bob'];
const ACCESS = ['AK1', 'AK2', 'AK3'];
const ETAGS = ['e1', 'e2', 'e3'];
const NEEDLES = ['1', '2', '3', '4'];

const bucket = fc.constantFrom(...BUCKETS);
// Few keys get most of the traffic, so commands meet each other's records.
const key = fc.oneof(fc.constantFrom('k0', 'k1'), fc.constantFrom(...KEYS));
const uploadId = fc.constantFrom(...UPLOADS);
const user = fc.constantFrom(...USERS);
const needle = fc.constantFrom(...NEEDLES);
const partNo = fc.integer({ min: 1, max: 3 });

function chunk(n: string) {
  return { volumeId: 2, needleId: n, cookie: 1, size: 5 };
}

const objRec = (k: string, etag: string, needles: string[]): ObjectRecord => ({
  key: k,
  size: needles.length * 5,
  etag,
  lastModified: 1_700_000_000_000,
  userMeta: { m: etag },
  chunks: needles.map(chunk),
  owner: 'alice',
});

const partRec = (n: number, nd: string): PartRecord => ({
  partNumber: n,
  etag: `p${n}-${nd}`,
  size: 5,
  lastModified: 1,
  chunks: [chunk(nd)],
});

const cond = fc.oneof(
  fc.constant(undefined),
  fc.constant({ ifNoneMatch: true }),
  fc.record({ ifMatch: fc.constantFrom('*', '"e1"', 'e2', 'e3') }),
);

const upload = (b: string, k: string, u: string): Command => ({
  op: 'createUpload',
  args: [
    {
      uploadId: u,
      bucket: b,
      key: k,
      initiated: 1,
      owner: 'alice',
      object: { userMeta: {}, owner: 'alice' },
    },
  ],
});

const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });

const command: fc.Arbitrary<Command> = fc.oneof(
  w(
    1,
    fc
      .record({ name: bucket, owner: user, createdAt: fc.nat(100) })
      .map((b): Command => ({ op: 'createBucket', args: [{ ...b, region: 'us-east-1' }] })),
  ),
  w(
    1,
    bucket.map((b): Command => ({ op: 'deleteBucket', args: [b] })),
  ),
  w(
    6,
    fc.tuple(bucket, key, fc.constantFrom(...ETAGS), cond).map(([b, k, e, c]): Command => {
      const rec = objRec(k, e, ['9']);
      return { op: 'putObject', args: c === undefined ? [b, rec] : [b, rec, c] };
    }),
  ),
  w(
    2,
    fc.tuple(bucket, key, fc.constantFrom(...ETAGS), cond).map(
      ([b, k, e, c]): Command => ({
        op: 'putObjectStored',
        args: [b, k, encodeObject(objRec(k, e, ['8'])), c ?? null],
      }),
    ),
  ),
  w(
    3,
    fc.tuple(bucket, key).map(([b, k]): Command => ({ op: 'deleteObject', args: [b, k] })),
  ),
  w(
    2,
    fc.tuple(bucket, key, uploadId).map(([b, k, u]) => upload(b, k, u)),
  ),
  w(
    4,
    fc
      .tuple(bucket, key, uploadId, fc.integer({ min: 0, max: 9 }), needle)
      // Part 0 is invalid: about one in ten.
      .map(
        ([b, k, u, n, nd]): Command => ({
          op: 'putPart',
          args: [b, k, u, partRec(Math.min(n, 3), nd)],
        }),
      ),
  ),
  w(
    3,
    fc
      .tuple(
        bucket,
        key,
        uploadId,
        fc.uniqueArray(partNo, { maxLength: 3 }),
        fc.array(needle, { maxLength: 2 }),
      )
      .map(
        ([b, k, u, used, nds]): Command => ({
          op: 'completeUpload',
          args: [b, k, u, objRec(k, `m-${nds.length}`, nds), used],
        }),
      ),
  ),
  // Aimed at the setup's uploads, so that completions often succeed.
  w(
    3,
    fc
      .tuple(
        fc.constantFrom('b0', 'b1'),
        fc.constantFrom<number[]>([], [1], [1, 2]),
        fc.constantFrom<string[]>([], ['1'], ['3'], ['1', '2']),
      )
      .map(
        ([b, used, nds]): Command => ({
          op: 'completeUpload',
          args: [b, 'k0', 'u1', objRec('k0', `m-${nds.length}`, nds), used],
        }),
      ),
  ),
  w(
    1,
    fc
      .tuple(bucket, key, uploadId)
      .map(([b, k, u]): Command => ({ op: 'abortUpload', args: [b, k, u] })),
  ),
  w(
    1,
    user.map(
      (id): Command => ({ op: 'createUser', args: [{ id, displayName: id, createdAt: 1 }] }),
    ),
  ),
  w(
    1,
    user.map((id): Command => ({ op: 'deleteUser', args: [id] })),
  ),
  w(
    2,
    fc.tuple(fc.constantFrom(...ACCESS), user).map(
      ([a, u]): Command => ({
        op: 'addKey',
        args: [{ accessKey: a, secretKey: `s-${a}`, userId: u, createdAt: 2 }],
      }),
    ),
  ),
  w(
    1,
    fc.constantFrom(...ACCESS).map((a): Command => ({ op: 'deleteKey', args: [a] })),
  ),
  w(
    1,
    fc.integer({ min: 0, max: 5 }).map((n): Command => ({ op: 'allocateNeedleIds', args: [n] })),
  ),
  w(1, fc.constant<Command>({ op: 'allocateVolumeId', args: [] })),
  // Malformed whatever the state: must fail the same way everywhere.
  w(1, fc.constant<Command>({ op: 'deleteObject', args: ['', 'k0'] })),
);

// Without it most random commands would just fail for want of a bucket, user or upload.
const SETUP: Command[] = [
  { op: 'createBucket', args: [{ name: 'b0', owner: 'alice', createdAt: 1, region: 'r' }] },
  { op: 'createBucket', args: [{ name: 'b1', owner: 'bob', createdAt: 1, region: 'r' }] },
  { op: 'createUser', args: [{ id: 'alice', displayName: 'Alice', createdAt: 1 }] },
  upload('b0', 'k0', 'u1'),
  upload('b0', 'k1', 'u2'),
  upload('b1', 'k0', 'u1'),
  { op: 'putPart', args: ['b0', 'k0', 'u1', partRec(1, '1')] },
  { op: 'putPart', args: ['b0', 'k0', 'u1', partRec(2, '2')] },
  { op: 'putPart', args: ['b1', 'k0', 'u1', partRec(1, '3')] },
];

/** Cuts `xs` into consecutive runs of the given sizes (the last run takes the rest). */
function split<T>(xs: T[], sizes: number[]): T[][] {
  const out: T[][] = [];
  let i = 0;
  for (const s of sizes) {
    if (i >= xs.length) break;
    out.push(xs.slice(i, i + s));
    i += s;
  }
  if (i < xs.length) out.push(xs.slice(i));
  return out;
}

// ---- tests ----

describe('commands', () => {
  it('names every mutating method once', () => {
    expect(new Set(MUTATING_METHODS).size).toBe(MUTATING_METHODS.length);
    expect(MUTATING_METHODS).toContain('updateVolume');
  });

  it('apply deterministically: same sequence, any batch split, JSON round trip or local calls', async () => {
    let failures = 0;
    let total = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(command, { minLength: 1, maxLength: 40, size: 'max' }),
        fc.array(fc.integer({ min: 1, max: 12 }), { maxLength: 40 }),
        async (random, sizes) => {
          const cmds = [...SETUP, ...random];
          const [a, b, c, d] = await Promise.all([
            LevelMetadata.open(tempDir()),
            LevelMetadata.open(tempDir()),
            LevelMetadata.open(tempDir()),
            LevelMetadata.open(tempDir()),
          ]);
          try {
            // A: one command per log entry.
            const outA: Outcome[] = [];
            for (const [i, cmd] of cmds.entries()) {
              outA.push(...(await a.applyReplicated([cmd], i + 1)));
            }
            // B: the same commands as they come out of a log, in other batches.
            const outB: Outcome[] = [];
            let index = 0;
            for (const run of split(cmds, sizes)) {
              index += run.length;
              const logged = JSON.parse(JSON.stringify(run)) as Command[];
              outB.push(...(await b.applyReplicated(logged, index)));
            }
            // C: the local, non-replicated path.
            const outC: Outcome[] = [];
            for (const cmd of cmds) outC.push(await viaMethod(c, cmd));
            // D: as a Raft leader proposes them (putObject in stored form), through JSON.
            const proposed = JSON.parse(JSON.stringify(cmds.map(proposedForm))) as Command[];
            const puts = (l: Command[], ops: string[]) =>
              l.filter((p) => ops.includes(p.op)).length;
            expect(puts(proposed, ['putObjectStored'])).toBe(
              puts(cmds, ['putObject', 'putObjectStored']),
            );
            const outD = await d.applyReplicated(proposed, cmds.length);

            expect(outB.map(norm)).toEqual(outA.map(norm));
            expect(outC.map(norm)).toEqual(outA.map(norm));
            expect(outD.map(norm)).toEqual(outA.map(norm));
            const dumpA = await dump(a);
            expect(await dump(b)).toEqual(dumpA);
            expect(await dump(d)).toEqual(dumpA);
            expect(await dump(c)).toEqual(withoutApplied(dumpA));
            expect(await a.appliedIndex()).toBe(cmds.length);
            expect(await b.appliedIndex()).toBe(cmds.length);
            expect(await c.appliedIndex()).toBe(0);
            total += outA.length;
            failures += outA.filter((o) => !o.ok).length;
          } finally {
            await Promise.all([a, b, c, d].map((m) => m.close()));
          }
        },
      ),
      { numRuns: 50 },
    );
    // The sequences exercised both paths.
    expect(failures).toBeGreaterThan(total / 10);
    expect(failures).toBeLessThan(total * 0.9);
  }, 120_000);
});

describe('applyBatch / applyReplicated', () => {
  it('a failing command leaves its writes out, the others go in, in one synced batch', async () => {
    const m = await LevelMetadata.open(tempDir());
    try {
      const before = m.writeStats.batches;
      const cmds: Command[] = [
        { op: 'createBucket', args: [{ name: 'b', owner: 'alice', createdAt: 1, region: 'r' }] },
        { op: 'putObject', args: ['b', objRec('x', 'e1', ['1'])] },
        // Sees the put above: fails, so its record must not replace it.
        { op: 'putObject', args: ['b', objRec('x', 'e2', ['2']), { ifNoneMatch: true }] },
        { op: 'putObject', args: ['nope', objRec('y', 'e1', ['1'])] },
        { op: 'putPart', args: ['b', 'x', 'u', partRec(0, '1')] },
        { op: 'putObject', args: ['b', objRec('z', 'e3', ['3'])] },
        { op: 'allocateNeedleIds', args: [10] },
        { op: 'allocateNeedleIds', args: [5] },
      ];
      const out = await m.applyReplicated(cmds, 7);
      expect(m.writeStats.batches).toBe(before + 1);
      expect(out.map((o) => o.ok)).toEqual([true, true, false, false, false, true, true, true]);
      const err = (i: number) => (out[i] as { error: unknown }).error;
      expect(err(2)).toBeInstanceOf(MetadataError);
      expect((err(2) as MetadataError).code).toBe('PreconditionFailed');
      expect((err(3) as MetadataError).code).toBe('NoSuchBucket');
      expect((err(4) as Error).message).toMatch(/part numbers start at 1/);
      expect(out[6]).toEqual({ ok: true, value: { first: 1n, count: 10 } });
      expect(out[7]).toEqual({ ok: true, value: { first: 11n, count: 5 } });
      expect((await m.getObject('b', 'x'))!.etag).toBe('e1');
      expect((await m.getObject('b', 'z'))!.etag).toBe('e3');
      expect(await m.appliedIndex()).toBe(7);
      expect(await m.allocateNeedleIds(1)).toEqual({ first: 16n, count: 1 });
    } finally {
      await m.close();
    }
  });

  it('is ordered with local mutations queued before and after it', async () => {
    const m = await LevelMetadata.open(tempDir());
    try {
      await m.createBucket({ name: 'b', owner: 'alice', createdAt: 1, region: 'r' });
      const first = m.putObject('b', objRec('k', 'local-1', ['1']));
      const replicated = m.applyReplicated(
        [{ op: 'putObject', args: ['b', objRec('k', 'raft', ['2']), { ifMatch: 'local-1' }] }],
        1,
      );
      const last = m.putObject('b', objRec('k', 'local-2', ['3']), { ifMatch: 'raft' });
      expect(await first).toBeNull();
      const [o] = await replicated;
      expect(o!.ok).toBe(true);
      expect((o as { value: ObjectRecord }).value.etag).toBe('local-1');
      expect((await last)!.etag).toBe('raft');
      expect((await m.getObject('b', 'k'))!.etag).toBe('local-2');
    } finally {
      await m.close();
    }
  });

  it('records the applied index even for an empty run; refuses a bad index', async () => {
    const m = await LevelMetadata.open(tempDir());
    try {
      expect(await m.appliedIndex()).toBe(0);
      expect(await m.applyReplicated([], 42)).toEqual([]);
      expect(await m.appliedIndex()).toBe(42);
      await expect(m.applyReplicated([], -1)).rejects.toThrow(/applied index/);
    } finally {
      await m.close();
    }
    await expect(m.applyReplicated([], 43)).rejects.toMatchObject({ code: 'Unavailable' });
  });

  it('calls only string-and-flag object writes JSON-stable (a leader applies those as is)', () => {
    const stored = encodeObject(objRec('k', 'e1', ['1']));
    const yes: Command[] = [
      { op: 'putObjectStored', args: ['b', 'k', stored, null] },
      {
        op: 'putObjectStored',
        args: ['b', 'k', stored, { ifMatch: 'e1', ifNoneMatch: undefined }],
      },
      { op: 'deleteObject', args: ['b', 'k'] },
    ];
    for (const c of yes) {
      expect(isJsonStable(c)).toBe(true);
      const { args } = JSON.parse(JSON.stringify(c)) as Command;
      expect((args as unknown[]).slice(0, 3)).toEqual((c.args as unknown[]).slice(0, 3));
    }
    const no = [
      { op: 'putObject', args: ['b', objRec('k', 'e1', ['1'])] },
      { op: 'createBucket', args: [{ name: 'b', owner: 'o', createdAt: 1, region: 'r' }] },
      { op: 'putObjectStored', args: ['b', 'k', stored, new Map()] },
      { op: 'putObjectStored', args: ['b', 'k', stored, { ifMatch: 5 }] },
      { op: 'putObjectStored', args: ['b', 7, stored, null] },
      { op: 'deleteObject', args: ['b', 'k', 'extra'] },
    ] as unknown as Command[];
    for (const c of no) expect(isJsonStable(c), JSON.stringify(c)).toBe(false);
  });

  it('refuses a run holding a command this build does not know, writing nothing', async () => {
    const m = await LevelMetadata.open(tempDir());
    try {
      const mk: Command = {
        op: 'createBucket',
        args: [{ name: 'nb', owner: 'o', createdAt: 1, region: 'r' }],
      };
      const future = { op: 'putObjectV9', args: ['nb', 'k'] } as unknown as Command;
      await expect(m.applyReplicated([mk, future], 7)).rejects.toThrow(
        /unknown command putObjectV9/,
      );
      expect(await m.getBucket('nb')).toBeNull();
      expect(await m.appliedIndex()).toBe(0);
      // A known command that is malformed is an outcome like any other failure.
      const bad = { op: 'deleteObject', args: ['', 'k'] } as Command;
      const out = await m.applyReplicated([mk, bad], 8);
      expect(out.map((o) => o.ok)).toEqual([true, false]);
      expect(await m.appliedIndex()).toBe(8);
    } finally {
      await m.close();
    }
  });
});
