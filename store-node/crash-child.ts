// Child process for crash.test.ts: hammers a Store with concurrent writes and deletes
// (and, in `compact` mode, back-to-back compactions of one volume) until it is killed.
//
//   node --import tsx store-node/crash-child.ts <dir> write   <seed>
//   node --import tsx store-node/crash-child.ts <dir> compact <seed> <vid> [<crash step>]
//
// Every acknowledgement is reported on stdout, one line each, only after its promise
// resolved, so the parent can hold the store to exactly what was reported:
//   W <vid> <id> <cookie> <len> <ascii0|1>   write acknowledged (bytes = payload(id, len, ascii))
//   d <vid> <id>                             delete about to be issued (reported first)
//   D <vid> <id>                             delete acknowledged
//   G <vid> <generation>                     generation before the compaction loop starts
//   READY                                    compaction mode: setup done, loop starting
//   C <vid> <generation>                     a compaction finished (committed)
//   E <code> <message>                       an operation failed (the parent decides if allowed)
// A delete's `d` line is handed to the pipe before the delete is issued: a tombstone
// that reached the file without its ack being reported must not look like a lost write.
import { mulberry32, payload } from '../common/payload.ts';
import { StoreError } from './errors.ts';
import { idFromParts } from './needle-map.ts';
import { Store } from './store.ts';

const CRASH_MAX_VOLUME = 4 * 1024 * 1024;
const IN_FLIGHT = 48;
const FILL_TO = 3 * 1024 * 1024;
const MAX_LEN = 20_000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Resolves once the line has been handed to the kernel (the pipe). */
function sayFlushed(line: string): Promise<void> {
  return new Promise((resolve, reject) =>
    process.stdout.write(`${line}\n`, (e) => (e ? reject(e) : resolve())),
  );
}

function report(e: unknown): void {
  const code = e instanceof StoreError ? e.code : 'Error';
  const msg = e instanceof Error ? e.message : String(e);
  say(`E ${code} ${msg.replace(/\s+/g, ' ')}`);
}

interface Acked {
  vid: number;
  id: bigint;
  cookie: number | undefined;
}

class Driver {
  private counter = 0;
  /** Acknowledged, reported and not yet picked for deletion. */
  readonly live: Acked[] = [];

  constructor(
    readonly store: Store,
    readonly seed: number,
    readonly rand: () => number,
  ) {}

  nextId(): bigint {
    if (this.counter >= 999_999) throw new Error('id space of this trial exhausted');
    return BigInt(this.seed) * 1_000_000n + BigInt(++this.counter);
  }

  /** One write; `vid` null means store.append (rollover), else store.write to that volume. */
  async write(vid: number | null): Promise<void> {
    const id = this.nextId();
    const len = 1 + Math.floor(this.rand() * MAX_LEN);
    const ascii = (id & 1n) === 1n;
    const cookie = Math.floor(this.rand() * 0x1_0000_0000) >>> 0;
    const data = payload(id, len, ascii);
    let at: number;
    if (vid === null) at = (await this.store.append(id, cookie, data)).volumeId;
    else {
      await this.store.write(vid, id, cookie, data);
      at = vid;
    }
    say(`W ${at} ${id} ${cookie} ${len} ${ascii ? 1 : 0}`);
    this.live.push({ vid: at, id, cookie });
  }

  /** Deletes a random previously acknowledged needle; false when there is none. */
  async delete(): Promise<boolean> {
    if (this.live.length === 0) return false;
    const i = Math.floor(this.rand() * this.live.length);
    const victim = this.live[i]!;
    this.live[i] = this.live[this.live.length - 1]!;
    this.live.pop();
    await sayFlushed(`d ${victim.vid} ${victim.id}`);
    await this.store.delete(victim.vid, victim.id, victim.cookie);
    say(`D ${victim.vid} ${victim.id}`);
    return true;
  }
}

async function pool(n: number, op: () => Promise<boolean>): Promise<void> {
  const worker = async () => {
    for (;;) {
      try {
        if (!(await op())) return;
      } catch (e) {
        report(e);
        // Yield to I/O: a run of failures must not starve the event loop.
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  };
  await Promise.all(Array.from({ length: n }, worker));
}

async function writeMode(d: Driver): Promise<void> {
  await pool(IN_FLIGHT, async () => {
    if (d.rand() < 0.2 && d.live.length > 0) await d.delete();
    else await d.write(null);
    return true;
  });
}

async function compactMode(store: Store, d: Driver, vid: number): Promise<void> {
  if (!store.volumeIds().includes(vid)) await store.createVolume(vid);
  const v = store.volume(vid);
  // Needles left by earlier trials (cookies unknown here: deleted without one).
  v.g.map.forEach((lo, hi) => {
    d.live.push({ vid, id: idFromParts(lo, hi), cookie: undefined });
  });
  await pool(IN_FLIGHT, async () => {
    if (v.end + MAX_LEN + 64 > FILL_TO) return false;
    await d.write(vid);
    return true;
  });
  let toDelete = Math.floor(d.live.length / 2);
  await pool(IN_FLIGHT, async () => toDelete-- > 0 && (await d.delete()));
  say(`G ${vid} ${v.stats().generation}`);
  await sayFlushed('READY');

  const compactions = (async () => {
    for (;;) {
      try {
        await store.compact(vid);
        say(`C ${vid} ${v.stats().generation}`);
      } catch (e) {
        report(e);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  })();
  const ops = pool(IN_FLIGHT, async () => {
    const full = v.freeBytes < 256 * 1024;
    if (d.live.length > 0 && (full || d.rand() < 0.4)) await d.delete();
    else await d.write(vid);
    return true;
  });
  await Promise.all([compactions, ops]);
}

async function main(): Promise<void> {
  const [dir, mode, seedArg, vidArg, crashAt] = process.argv.slice(2);
  const seed = Number(seedArg);
  if (!dir || (mode !== 'write' && mode !== 'compact') || !Number.isInteger(seed) || seed < 1) {
    throw new Error('usage: crash-child.ts <dir> write|compact <seed> [<vid> [<crash step>]]');
  }
  say('OPENING');
  const store = await Store.open(dir, {
    compactCheckMs: 0,
    scrubIntervalMs: 0,
    maxSize: CRASH_MAX_VOLUME,
    crashPoint: (step) => {
      if (step === crashAt) process.kill(process.pid, 'SIGKILL');
    },
  });
  const d = new Driver(store, seed, mulberry32(Math.imul(seed, 0x9e3779b1) ^ 0x5eed));
  if (mode === 'write') await writeMode(d);
  else await compactMode(store, d, Number(vidArg));
}

main().catch((e) => {
  process.stderr.write(`crash-child: ${(e as Error).stack ?? e}\n`);
  process.exit(2);
});
