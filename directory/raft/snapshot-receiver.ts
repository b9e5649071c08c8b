// The follower's side of a snapshot transfer: chunks stream straight into a fresh LevelDB
// (importSnapshot) in a staging directory, one transfer at a time (a newer one replaces
// an unfinished one). Only when every chunk is in and the import has been synced does the
// host hand the core the snapshot message; the swap happens if the core accepts it.
import fs from 'node:fs/promises';
import { importSnapshot } from '../sm-snapshot.ts';
import type { SnapshotMessage, SnapshotReceiver } from './transport.ts';
import type { SnapshotMeta } from './types.ts';

interface Transfer {
  id: string;
  meta: SnapshotMeta;
  push: (b: Buffer | null) => void;
  done: Promise<void>;
}

export function stagingReceiver(
  dir: string,
  onStaged: (meta: SnapshotMeta, msg: SnapshotMessage) => void,
): SnapshotReceiver {
  let cur: Transfer | null = null;
  let n = 0;
  return {
    async begin(_from, meta) {
      if (cur) {
        cur.push(null);
        await cur.done.catch(() => undefined);
      }
      await fs.rm(dir, { recursive: true, force: true });
      const queue: Array<Buffer | null> = [];
      let wake: (() => void) | null = null;
      async function* chunks(): AsyncGenerator<Buffer> {
        for (;;) {
          while (queue.length === 0) await new Promise<void>((r) => (wake = r));
          const b = queue.shift();
          // null ends the stream: complete after finish, truncated (import fails) after abort.
          if (b === null || b === undefined) return;
          yield b;
        }
      }
      const push = (b: Buffer | null) => {
        queue.push(b);
        wake?.();
      };
      const id = `s${++n}`;
      cur = { id, meta, push, done: importSnapshot(dir, chunks()) };
      return id;
    },
    async chunk(id, data) {
      if (cur?.id !== id) throw new Error('unknown snapshot transfer');
      cur.push(data);
    },
    async finish(id, msg) {
      if (cur?.id !== id) throw new Error('unknown snapshot transfer');
      const c = cur;
      c.push(null);
      cur = null;
      await c.done;
      onStaged(c.meta, msg);
    },
    async abort(id) {
      if (cur?.id !== id) return;
      const c = cur;
      cur = null;
      c.push(null);
      await c.done.catch(() => undefined);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
