// Replicated needle writes. The store that receives a PUT with `x-ks-replicas` writes the
// needle locally and forwards the same bytes to the other replicas in parallel; since each
// store acknowledges only after its own fdatasync (group commit), a 200 means the needle
// is durable on every replica (or on `x-ks-write-quorum` of them). A failed quorum leaves
// orphan copies behind on the replicas that did write: harmless, since no metadata points
// at them and the caller retries on another volume. The replica list is under the PUT's
// token and must name stores the directory knows (StoreServer checks both before reading
// the body), so a captured token cannot make a store call, with a token of its own,
// anything but a store of the cluster.

import { DEFAULT_CONFIG, MAX_REPLICAS } from '../common/config.ts';
import type { InternalAuth } from '../common/internal-auth.ts';
import type { Logger } from '../common/log.ts';
import type { NeedleRef } from './api.ts';
import { StoreClient } from './client.ts';
import { StoreError } from './errors.ts';

export { QUORUM_HEADER, REPLICAS_HEADER } from './api.ts';

/** Parses `x-ks-replicas` into distinct base URLs (origins). */
export function parseReplicas(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(',') : header;
  const out = new Set<string>();
  for (const part of text.split(',')) {
    const s = part.trim();
    if (s === '') continue;
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new StoreError('InvalidArgument', `bad replica URL ${JSON.stringify(s)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new StoreError('InvalidArgument', `replica URL ${s} is not http(s)`);
    out.add(u.origin);
  }
  // The other copies of a volume: at most MAX_REPLICAS - 1, one more while a volume moves.
  if (out.size > MAX_REPLICAS) throw new StoreError('InvalidArgument', 'too many replicas');
  return [...out];
}

/** Parses `x-ks-write-quorum` (total copies including the local one). */
export function parseQuorum(header: string | string[] | undefined, total: number): number {
  if (header === undefined) return total;
  const s = Array.isArray(header) ? header[0]! : header;
  if (!/^\d{1,3}$/.test(s)) throw new StoreError('InvalidArgument', `bad write quorum ${s}`);
  const n = Number(s);
  if (n < 1 || n > total)
    throw new StoreError('InvalidArgument', `write quorum ${n} not within 1..${total}`);
  return n;
}

export interface ReplicaFailure {
  url: string;
  error: string;
  message: string;
}

export interface ReplicatorOptions {
  auth: InternalAuth;
  /** Bound on one forwarded write, connect to answer (default config store.replicationTimeoutMs). */
  timeoutMs?: number;
  logger?: Logger;
}

export class Replicator {
  private readonly clients = new Map<string, StoreClient>();
  readonly timeoutMs: number;

  constructor(private readonly opts: ReplicatorOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_CONFIG.store.replicationTimeoutMs;
  }

  /** A keep-alive client per peer store, kept for the life of the server. */
  client(url: string): StoreClient {
    const origin = new URL(url).origin;
    let c = this.clients.get(origin);
    if (!c) {
      c = new StoreClient(origin, this.opts.auth, this.timeoutMs, 64);
      this.clients.set(origin, c);
    }
    return c;
  }

  /**
   * Runs `local` and forwards to `replicas` at once; resolves with the local result once
   * the local write and `quorum - 1` forwards succeeded. A local failure rejects with the
   * local error (it says why this volume cannot take the write, e.g. VolumeFull); too many
   * forward failures reject with ReplicaWriteFailed. Whatever is still running when the
   * answer is decided completes in the background and is only logged.
   */
  write<T>(
    local: () => Promise<T>,
    ref: NeedleRef,
    data: Buffer,
    o: { replicas: string[]; quorum: number; contentType?: string; crc32c: number },
  ): Promise<T> {
    const { replicas, quorum } = o;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let localResult: { v: T } | null = null;
      let ok = 0;
      const failed: ReplicaFailure[] = [];
      const decide = () => {
        if (settled) return;
        if (localResult && ok + 1 >= quorum) {
          settled = true;
          resolve(localResult.v);
        } else if (failed.length > replicas.length - (quorum - 1)) {
          settled = true;
          const what = failed.map((f) => `${f.url} (${f.error}: ${f.message})`).join(', ');
          reject(
            new StoreError('ReplicaWriteFailed', `replica write failed on ${what}`, { failed }),
          );
        }
      };
      local().then(
        (v) => {
          localResult = { v };
          decide();
        },
        (e) => {
          if (settled) this.opts.logger?.warn({ err: e, ref }, 'local write failed after answer');
          settled = true;
          reject(e);
        },
      );
      for (const url of replicas) {
        this.client(url)
          .replicaPut(ref, data, {
            contentType: o.contentType,
            crc32c: o.crc32c,
            timeoutMs: this.timeoutMs,
          })
          .then(
            () => {
              ok++;
              decide();
            },
            (e) => {
              const err = e instanceof StoreError ? e : null;
              failed.push({
                url,
                error: err?.code ?? 'Unreachable',
                message: (e as Error)?.message ?? String(e),
              });
              if (settled)
                this.opts.logger?.warn(
                  { err: e, replica: url, volume: ref.volumeId, needle: String(ref.needleId) },
                  'replica write failed after answer',
                );
              decide();
            },
          );
      }
    });
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.close().catch(() => {})));
  }
}
