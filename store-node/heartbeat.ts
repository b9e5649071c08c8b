// Heartbeats: every interval a store tells each directory replica who it is, how full it
// is and which volumes it holds (directory/model/topology.ts Heartbeat). Fire and forget with a
// short timeout; a directory that is slow or down must cost the store nothing, so a beat
// to a directory whose previous beat is still in flight is skipped, never queued. Each beat
// is one signed POST on the metadata client's code path (directory/wire/post.ts).
//
// Each beat carries the data directory's incarnation: a random id written into the
// directory at its first start (INCARNATION_FILE, next to the volumes). A store removed for
// good stays removed while it heartbeats with the incarnation it was removed with; a new
// data directory under the same id (a StatefulSet scaled down, then up) is re-admitted.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Pool } from 'undici';
import { DEFAULT_CONFIG } from '../common/config.ts';
import type { InternalAuth } from '../common/internal-auth.ts';
import type { Logger } from '../common/log.ts';
import type { Heartbeat } from '../directory/model/topology.ts';
import { encodeJson } from '../directory/wire/json.ts';
import { type PostOptions, signedPost } from '../directory/wire/post.ts';
import type { Store } from './store.ts';

export const HEARTBEAT_PATH = '/cluster/heartbeat';

export interface HeartbeatSenderOptions {
  /** Base URLs of the directory replicas. */
  directories: string[];
  auth: InternalAuth;
  intervalMs: number;
  /** Bound on one beat (default: the interval, at most 2 s). */
  timeoutMs?: number;
  collect: () => Promise<Heartbeat>;
  logger?: Logger;
}

interface Target {
  url: string;
  pool: Pool;
  path: string;
  inFlight: boolean;
  failing: boolean;
}

export class HeartbeatSender {
  private readonly targets: Target[];
  private timer: NodeJS.Timeout | null = null;
  private readonly post: PostOptions;
  private running = new Set<Promise<void>>();
  /** Beats sent and answered 2xx, failed, and skipped because the last was in flight. */
  readonly counts = { ok: 0, failed: 0, skipped: 0 };

  constructor(private readonly opts: HeartbeatSenderOptions) {
    const timeoutMs =
      opts.timeoutMs ?? Math.min(opts.intervalMs, DEFAULT_CONFIG.store.heartbeatTimeoutMs);
    this.post = {
      auth: opts.auth,
      headers: { 'content-type': 'application/json' },
      timeoutMs,
      totalMs: timeoutMs,
    };
    this.targets = opts.directories.map((d) => {
      const u = new URL(d);
      return {
        url: d,
        pool: new Pool(u.origin, {
          connections: 1,
          keepAliveTimeout: 60_000,
          connectTimeout: timeoutMs,
        }),
        path: `${u.pathname.replace(/\/+$/, '')}${HEARTBEAT_PATH}`,
        inFlight: false,
        failing: false,
      };
    });
  }

  start(): void {
    if (this.timer) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** One round: a beat to every directory that is not still busy with the previous one. */
  tick(): void {
    const idle = this.targets.filter((t) => !t.inFlight);
    this.counts.skipped += this.targets.length - idle.length;
    if (idle.length === 0) return;
    for (const t of idle) t.inFlight = true;
    const p = this.opts
      .collect()
      .then(
        (hb) => {
          const body = encodeJson(hb);
          return Promise.all(idle.map((t) => this.send(t, body)));
        },
        (e) => {
          for (const t of idle) t.inFlight = false;
          this.opts.logger?.warn({ err: e }, 'heartbeat: collecting status failed');
        },
      )
      .then(() => {});
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  private async send(t: Target, body: string): Promise<void> {
    try {
      const { status } = await signedPost(t.pool, t.path, body, this.post);
      if (status >= 300) throw new Error(`HTTP ${status}`);
      this.counts.ok++;
      if (t.failing) this.opts.logger?.info({ directory: t.url }, 'heartbeat: directory back');
      t.failing = false;
    } catch (e) {
      this.counts.failed++;
      // Once per outage, not once a second.
      if (!t.failing)
        this.opts.logger?.warn({ err: e, directory: t.url }, 'heartbeat: directory unreachable');
      t.failing = true;
    } finally {
      t.inFlight = false;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.running]);
    await Promise.all(this.targets.map((t) => t.pool.destroy().catch(() => {})));
  }
}

/** The data directory's incarnation id, in this file of the store's data directory. */
export const INCARNATION_FILE = 'incarnation';

const INCARNATION_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** A new incarnation id: 128 random bits, hex. */
export function newIncarnation(): string {
  return crypto.randomBytes(16).toString('hex');
}

/**
 * The incarnation of data directory `dir`: read from its INCARNATION_FILE, or (first start)
 * made, written and synced there before it is used. `replace` writes a new one even when
 * there is one (the directory has been retired: see cli/store.ts).
 */
export function storeIncarnation(dir: string, replace = false): string {
  const file = path.join(dir, INCARNATION_FILE);
  if (!replace) {
    try {
      const text = fs.readFileSync(file, 'utf8').trim();
      if (INCARNATION_RE.test(text)) return text;
      throw new Error(`${file}: not an incarnation id; remove the file to get a new one`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  fs.mkdirSync(dir, { recursive: true });
  const inc = newIncarnation();
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, `${inc}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const d = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(d);
  } finally {
    fs.closeSync(d);
  }
  return inc;
}

/** What this store reports; capacity defaults to what its volumes use plus the disk's free. */
export async function collectHeartbeat(
  store: Store,
  self: { id: string; url: string; zone: string; capacity?: number; incarnation?: string },
  load: () => number,
): Promise<Heartbeat> {
  const st = await store.status();
  const used = st.volumes.reduce((a, v) => a + v.fileBytes, 0);
  return {
    id: self.id,
    url: self.url,
    zone: self.zone,
    capacity: self.capacity ?? used + st.freeBytes,
    used,
    volumes: st.volumes.map((v) => ({
      id: v.id,
      size: v.fileBytes,
      needles: v.needles,
      readOnly: v.readOnly,
    })),
    load: load(),
    ...(self.incarnation !== undefined ? { incarnation: self.incarnation } : {}),
  };
}
