// The follower's side of a snapshot transfer: chunks stream straight into the importer
// (for the directory: a fresh LevelDB in a directory of the transfer's own), one transfer
// at a time (a newer one replaces an unfinished one). Only when every chunk is in and the
// import has been synced does the host get the snapshot message and the staged copy; it
// swaps the snapshot in if the core accepts it. A finished transfer's copy is the host's
// from then on: a later transfer never touches it (a staged snapshot waiting for the host
// loop was once deleted under it by the next transfer's start).
import type { SnapshotImporter } from './state-machine.ts';
import type { SnapshotMessage, SnapshotReceiver } from './transport.ts';
import type { SnapshotMeta } from './types.ts';

interface Transfer<S> {
  id: string;
  meta: SnapshotMeta;
  push: (b: Buffer | null) => Promise<void>;
  done: Promise<S>;
}

/** Chunks queued ahead of the import at most: a sender faster than LevelDB waits. */
const MAX_QUEUED = 4;

export function stagingReceiver<S>(
  importer: SnapshotImporter<S>,
  onStaged: (meta: SnapshotMeta, msg: SnapshotMessage, staged: S) => void,
): SnapshotReceiver {
  let cur: Transfer<S> | null = null;
  let n = 0;
  const end = async (t: Transfer<S>) => {
    await t.push(null);
    await t.done.catch(() => undefined);
    await importer.drop(t.id);
  };
  return {
    async begin(_from, meta) {
      if (cur) {
        const old = cur;
        cur = null;
        await end(old);
      }
      const id = `${Date.now().toString(36)}-${++n}`;
      await importer.drop(id);
      const queue: Array<Buffer | null> = [];
      let wake: (() => void) | null = null;
      let room: Array<() => void> = [];
      const freed = () => {
        const w = room;
        room = [];
        for (const f of w) f();
      };
      let stopped = false;
      async function* chunks(): AsyncGenerator<Buffer> {
        for (;;) {
          while (queue.length === 0) await new Promise<void>((r) => (wake = r));
          const b = queue.shift();
          freed();
          // null ends the stream: complete after finish, truncated (import fails) after abort.
          if (b === null || b === undefined) return;
          yield b;
        }
      }
      const push = async (b: Buffer | null) => {
        queue.push(b);
        wake?.();
        while (b !== null && queue.length > MAX_QUEUED && !stopped) {
          await new Promise<void>((r) => room.push(r));
        }
      };
      const t: Transfer<S> = { id, meta, push, done: importer.import(id, chunks()) };
      // However the import ends (a failure included), no sender is left waiting for room.
      t.done
        .catch(() => undefined)
        .finally(() => {
          stopped = true;
          freed();
        });
      cur = t;
      return id;
    },
    async chunk(id, data) {
      if (cur?.id !== id) throw new Error('unknown snapshot transfer');
      await cur.push(data);
    },
    async finish(id, msg) {
      if (cur?.id !== id) throw new Error('unknown snapshot transfer');
      const c = cur;
      cur = null;
      await c.push(null);
      let staged: S;
      try {
        staged = await c.done;
      } catch (e) {
        await importer.drop(c.id);
        throw e;
      }
      onStaged(c.meta, msg, staged);
    },
    async abort(id) {
      if (cur?.id !== id) return;
      const c = cur;
      cur = null;
      await end(c);
    },
  };
}
