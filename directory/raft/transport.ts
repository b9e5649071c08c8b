// Replica-to-replica HTTP for Raft: batched message delivery and chunked snapshot streaming.
//
// Messages are fire-and-forget: Raft retransmits on its own, so a failed POST just drops its
// batch. Per peer at most one message POST is in flight; whatever send() queues meanwhile
// goes out as the next POST. One in flight keeps a peer's messages in order (two
// connections could overtake each other) and turns a burst into a few large bodies. The
// pool's second connection is left for snapshot chunks, so a long snapshot transfer does not
// hold up heartbeats.
import type http from 'node:http';
import { Pool } from 'undici';
import type { InternalAuth } from '../../common/internal-auth.ts';
import {
  InternalError,
  readSignedBody,
  sendError,
  sendJson,
  splitUrl,
  toInternalError,
} from '../../common/internal-http.ts';
import type { Message, MessageType, NodeId, SnapshotMeta } from './types.ts';

export type SnapshotMessage = Message & { type: 'snapshot' };

export interface SnapshotSource {
  /** Streams the state-machine snapshot as chunks. */
  open(): AsyncIterable<Buffer>;
  meta: SnapshotMeta;
}

export interface SnapshotReceiver {
  begin(from: NodeId, meta: SnapshotMeta): Promise<string>;
  chunk(id: string, data: Buffer): Promise<void>;
  /** All chunks are in: hand the core the snapshot message. */
  finish(id: string, msg: SnapshotMessage): Promise<void>;
  abort(id: string): Promise<void>;
}

export interface RaftTransportOptions {
  self: NodeId;
  /** Base URLs (http://host:port); only the origin is used. */
  peers: Map<NodeId, string>;
  auth: InternalAuth;
  /** At most one call per peer every 5 s; failures in between are not reported. */
  onError?(peer: NodeId, err: Error): void;
  /** Connect / headers / body timeout per request (default 10 s). */
  timeoutMs?: number;
}

const MAX_QUEUE = 10_000;
const MAX_BATCH_MSGS = 2_000;
// Well under the receiver's 64 MiB cap, so a batch of large appends is split, not refused.
const MAX_BATCH_BYTES = 8 << 20;
const MAX_CHUNK = 16 << 20;
const MAX_BODY = 64 << 20;
const ERROR_INTERVAL_MS = 5_000;
const JSON_TYPE = 'application/json';
/**
 * /raft/msgs body: framed messages (see encodeFrame). A JSON array of messages is accepted
 * too, which keeps the route easy to drive by hand and from tests; peers always send frames.
 */
const FRAME_TYPE = 'application/x-raft-msgs';

class Peer {
  queue: Message[] = [];
  /** A message POST is in flight. */
  busy = false;
  snapshotting = false;
  removed = false;
  constructor(
    readonly id: NodeId,
    public url: string,
    public pool: Pool,
  ) {}
}

/** Rough size of a message on the wire; only entry payloads can make one large. */
function approxSize(m: Message): number {
  if (m.type !== 'append') return 150;
  let n = 200;
  for (const e of m.entries) n += 80 + (e.data?.length ?? 0);
  return n;
}

export class RaftTransport {
  private readonly peers = new Map<NodeId, Peer>();
  private readonly lastError = new Map<NodeId, number>();
  private closed = false;

  constructor(private readonly opts: RaftTransportOptions) {
    for (const [id, url] of opts.peers) this.setPeer(id, url);
  }

  /** Queues messages for their peers; never throws, drops what cannot be delivered. */
  send(msgs: Message[]): void {
    try {
      const touched = new Set<Peer>();
      for (const m of msgs) {
        const p = this.peers.get(m.to);
        if (!p || this.closed) continue;
        p.queue.push(m);
        touched.add(p);
      }
      for (const p of touched) {
        // Drop the oldest: newer messages carry more current terms and indices.
        if (p.queue.length > MAX_QUEUE) p.queue.splice(0, p.queue.length - MAX_QUEUE);
        this.pump(p);
      }
    } catch (err) {
      this.report(this.opts.self, err);
    }
  }

  setPeer(id: NodeId, url: string): void {
    if (id === this.opts.self || this.closed) return;
    const origin = new URL(url).origin;
    const p = this.peers.get(id);
    if (p?.url === origin) return;
    const timeout = this.opts.timeoutMs ?? 10_000;
    const pool = new Pool(origin, {
      connections: 2,
      connectTimeout: Math.min(timeout, 5_000),
      headersTimeout: timeout,
      bodyTimeout: timeout,
      keepAliveTimeout: 30_000,
    });
    if (!p) {
      this.peers.set(id, new Peer(id, origin, pool));
      return;
    }
    // Requests in flight finish on the old pool; the queue carries over to the new address.
    const old = p.pool;
    p.pool = pool;
    p.url = origin;
    old.close().catch(() => {});
  }

  removePeer(id: NodeId): void {
    const p = this.peers.get(id);
    if (!p) return;
    this.peers.delete(id);
    p.removed = true;
    p.queue = [];
    p.pool.destroy().catch(() => {});
  }

  /**
   * Streams a snapshot to msg.to, then delivers msg, and resolves true. Rejects if the
   * transfer failed (after telling the receiver to abort); resolves false at once, sending
   * nothing, if a snapshot to that peer is already under way (its own outcome will tell).
   */
  async sendSnapshot(msg: SnapshotMessage, source: SnapshotSource): Promise<boolean> {
    const p = this.peers.get(msg.to);
    if (!p || this.closed) throw new Error(`raft transport: no peer ${msg.to}`);
    if (p.snapshotting) return false;
    if (source.meta.index !== msg.meta.index || source.meta.term !== msg.meta.term) {
      throw new Error('raft transport: snapshot source does not match the message');
    }
    p.snapshotting = true;
    let query: string | undefined;
    try {
      const begin = JSON.stringify({ from: this.opts.self, meta: msg.meta });
      const r = JSON.parse(await this.post(p, '/raft/snapshot/begin', begin));
      if (typeof r?.id !== 'string') throw new Error('raft transport: bad snapshot begin reply');
      query = `id=${encodeURIComponent(r.id)}`;
      let seq = 0;
      for await (const chunk of source.open()) {
        for (let off = 0; off < chunk.length; off += MAX_CHUNK) {
          const part = chunk.subarray(off, off + MAX_CHUNK);
          const path = `/raft/snapshot/chunk?${query}&seq=${seq++}`;
          await this.post(p, path, part, 'application/octet-stream');
        }
      }
      await this.post(p, `/raft/snapshot/finish?${query}`, JSON.stringify(msg));
      return true;
    } catch (err) {
      if (query !== undefined) {
        await this.post(p, `/raft/snapshot/abort?${query}`, '').catch(() => {});
      }
      throw err;
    } finally {
      p.snapshotting = false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const peers = [...this.peers.values()];
    this.peers.clear();
    for (const p of peers) {
      p.removed = true;
      p.queue = [];
    }
    await Promise.all(peers.map((p) => p.pool.destroy().catch(() => {})));
  }

  private pump(p: Peer): void {
    if (p.busy || p.removed || p.queue.length === 0) return;
    let n = 0;
    let bytes = 0;
    while (n < p.queue.length && n < MAX_BATCH_MSGS) {
      bytes += approxSize(p.queue[n]!);
      if (n > 0 && bytes > MAX_BATCH_BYTES) break;
      n++;
    }
    const batch = p.queue.splice(0, n);
    p.busy = true;
    // A batch that fails is lost, which Raft tolerates: it retransmits.
    this.post(p, '/raft/msgs', encodeFrame(batch), FRAME_TYPE)
      .catch((err) => this.report(p.id, err))
      .finally(() => {
        p.busy = false;
        this.pump(p);
      });
  }

  private async post(p: Peer, path: string, body: string | Buffer, type = JSON_TYPE) {
    const headers = {
      ...this.opts.auth.signBody('POST', path, body),
      'content-type': type,
    };
    const res = await p.pool.request({ method: 'POST', path, headers, body });
    const text = await res.body.text();
    if (res.statusCode >= 300) {
      const err = new Error(`raft ${p.id} ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
      throw Object.assign(err, { status: res.statusCode });
    }
    return text;
  }

  private report(peer: NodeId, err: unknown): void {
    if (this.closed || !this.opts.onError) return;
    const now = Date.now();
    if (now - (this.lastError.get(peer) ?? -Infinity) < ERROR_INTERVAL_MS) return;
    this.lastError.set(peer, now);
    try {
      this.opts.onError(peer, err instanceof Error ? err : new Error(String(err)));
    } catch {
      // a faulty callback must not break delivery
    }
  }
}

// ---- framing ----
//
// A framed /raft/msgs body keeps entry payloads out of the JSON: they are usually JSON text
// themselves (a batch of commands), which JSON.stringify would escape and the receiver
// unescape again, a large part of a replica's CPU. Layout:
//   u32 BE   n = byte length of the header
//   n bytes  the messages as JSON (UTF-8), each entry's `data` replaced by its UTF-8 byte length
//   …        the entries' data (UTF-8), concatenated in message and entry order
// An entry without data has no `data` in the header either.

/** Encodes messages as a framed /raft/msgs body. */
export function encodeFrame(msgs: Message[]): Buffer {
  const payloads: string[] = [];
  const lengths: number[] = [];
  let payloadBytes = 0;
  const header = msgs.map((m) => {
    if (m.type !== 'append' || m.entries.length === 0) return m;
    const entries = m.entries.map((e) => {
      if (typeof e.data !== 'string') return e;
      const n = Buffer.byteLength(e.data, 'utf8');
      payloads.push(e.data);
      lengths.push(n);
      payloadBytes += n;
      return { ...e, data: n };
    });
    return { ...m, entries };
  });
  const head = JSON.stringify(header);
  const headBytes = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafe(4 + headBytes + payloadBytes);
  out.writeUInt32BE(headBytes, 0);
  let off = 4 + out.write(head, 4, 'utf8');
  for (let i = 0; i < payloads.length; i++) {
    const n = out.write(payloads[i]!, off, 'utf8');
    if (n !== lengths[i]) throw new Error('raft transport: payload length changed');
    off += n;
  }
  return out;
}

/** Decodes a framed body; throws (status 400) when it is not well formed. */
export function decodeFrame(body: Buffer): unknown {
  if (body.length < 4) return fail(400, 'short frame');
  const headBytes = body.readUInt32BE(0);
  if (headBytes > body.length - 4) return fail(400, 'bad frame header length');
  let msgs: unknown;
  try {
    msgs = JSON.parse(body.toString('utf8', 4, 4 + headBytes));
  } catch {
    return fail(400, 'malformed frame header');
  }
  if (!Array.isArray(msgs)) return fail(400, 'bad messages');
  let off = 4 + headBytes;
  for (const m of msgs as Array<{ type?: unknown; entries?: unknown }>) {
    if (m?.type !== 'append' || !Array.isArray(m.entries)) continue;
    for (const e of m.entries as Array<{ data?: unknown } | null>) {
      if (e === null || typeof e !== 'object' || e.data === undefined) continue;
      const n = e.data;
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > body.length - off) {
        return fail(400, 'bad frame payload length');
      }
      e.data = body.toString('utf8', off, off + n);
      off += n;
    }
  }
  if (off !== body.length) return fail(400, 'trailing bytes in frame');
  return msgs;
}

// ---- incoming ----

export interface RaftRoutesOptions {
  auth: InternalAuth;
  onMessages(msgs: Message[]): void;
  snapshots: SnapshotReceiver;
}

// Record<MessageType, …> makes the compiler flag a message type added to types.ts but not here.
const TYPES: Record<MessageType, boolean> = {
  prevote: true,
  prevoteResp: true,
  vote: true,
  voteResp: true,
  append: true,
  appendResp: true,
  readIndex: true,
  readIndexResp: true,
  // A snapshot message without its data would make the core install nothing; it may only
  // arrive through /raft/snapshot/finish.
  snapshot: false,
  timeoutNow: true,
};

function hasEnvelope(v: unknown): v is Record<string, unknown> {
  const m = v as Record<string, unknown> | null;
  return typeof m?.from === 'string' && typeof m.to === 'string' && typeof m.term === 'number';
}

function isMessage(v: unknown): v is Message {
  return (
    hasEnvelope(v) &&
    typeof v.type === 'string' &&
    Object.hasOwn(TYPES, v.type) &&
    TYPES[v.type as MessageType]
  );
}

function isMeta(v: unknown): v is SnapshotMeta {
  const m = v as { index?: unknown; term?: unknown; conf?: Record<string, unknown> } | null;
  const c = m?.conf;
  return (
    typeof m?.index === 'number' &&
    typeof m.term === 'number' &&
    Array.isArray(c?.voters) &&
    Array.isArray(c?.learners)
  );
}

interface Staging {
  id: string;
  meta: SnapshotMeta;
  next: number;
  /** The chunk being written, if any: an abort waits for it rather than racing it. */
  pending: Promise<void> | null;
}

const CODES: Record<number, string> = {
  400: 'InvalidArgument',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
};

const fail = (status: number, message: string): never => {
  throw new InternalError(status, CODES[status] ?? 'InternalError', message);
};

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return fail(400, 'malformed JSON');
  }
}

/**
 * A node:http handler piece for /raft/msgs and /raft/snapshot/{begin,chunk,finish,abort}.
 * Returns false (touching nothing) for any other path.
 *
 * At most one snapshot is staged at a time: a node follows one leader, so a new transfer
 * supersedes an older one (whose sender then gets 404 and stops). This also bounds what a
 * sender that died mid-transfer leaves behind.
 */
export function raftRoutes(
  opts: RaftRoutesOptions,
): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
  const { auth, snapshots } = opts;
  let cur: Staging | null = null;

  const current = (params: URLSearchParams): Staging => {
    if (cur?.id !== params.get('id')) fail(404, 'unknown snapshot transfer');
    return cur!;
  };
  const abort = async (s: Staging): Promise<void> => {
    if (cur === s) cur = null;
    await s.pending?.catch(() => {});
    await snapshots.abort(s.id);
  };

  const routes: Record<
    string,
    (body: Buffer, params: URLSearchParams, type: string | undefined) => Promise<unknown>
  > = {
    '/raft/msgs': async (body, _params, type) => {
      const msgs = type === FRAME_TYPE ? decodeFrame(body) : parseJson(body);
      if (!Array.isArray(msgs) || !msgs.every(isMessage)) fail(400, 'bad messages');
      opts.onMessages(msgs as Message[]);
    },
    '/raft/snapshot/begin': async (body) => {
      const b = parseJson(body) as { from?: unknown; meta?: unknown } | null;
      if (typeof b?.from !== 'string' || !isMeta(b.meta)) return fail(400, 'bad begin');
      const id = await snapshots.begin(b.from, b.meta);
      const prev = cur;
      cur = { id, meta: b.meta, next: 0, pending: null };
      if (prev) await abort(prev).catch(() => {});
      return { id };
    },
    '/raft/snapshot/chunk': async (body, params) => {
      const s = current(params);
      if (s.pending || params.get('seq') !== String(s.next)) fail(409, 'out of order');
      s.pending = snapshots.chunk(s.id, body);
      try {
        await s.pending;
        s.next++;
      } finally {
        s.pending = null;
      }
    },
    '/raft/snapshot/finish': async (body, params) => {
      const s = current(params);
      if (s.pending) fail(409, 'chunk in progress');
      const msg = parseJson(body);
      const ok =
        hasEnvelope(msg) &&
        msg.type === 'snapshot' &&
        isMeta(msg.meta) &&
        msg.meta.index === s.meta.index &&
        msg.meta.term === s.meta.term;
      if (!ok) fail(400, 'bad snapshot message');
      cur = null;
      try {
        await snapshots.finish(s.id, msg as SnapshotMessage);
      } catch (err) {
        await snapshots.abort(s.id).catch(() => {});
        throw err;
      }
    },
    '/raft/snapshot/abort': async (_body, params) => {
      if (cur?.id === params.get('id')) await abort(cur!);
    },
  };

  return (req, res) => {
    const { path, query } = splitUrl(req.url ?? '/');
    if (!Object.hasOwn(routes, path)) return false;
    const run = async (): Promise<void> => {
      if (req.method !== 'POST') fail(405, 'POST only');
      const body = await readSignedBody(req, auth, MAX_BODY);
      const out = await routes[path]!(
        body,
        new URLSearchParams(query),
        req.headers['content-type'],
      );
      if (out === undefined) res.writeHead(204).end();
      else sendJson(res, 200, out);
    };
    run().catch((e: unknown) => {
      const err = toInternalError(e);
      // Raft peers' error bodies carry the message alone.
      sendError(req, res, err, { error: err.message });
    });
    return true;
  };
}
