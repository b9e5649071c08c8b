// The store node's HTTP API (internal: only gateways and the directory talk to it).
// Plain node:http rather than Hono: binary bodies on the needle path, a handful of fixed
// routes, and no per-request framework allocation on the hottest path of the system.
//
//   PUT|GET|HEAD|DELETE /volumes/:vid/needles/:nid?cookie=N   (GET/HEAD honour Range)
//   POST /needles/_read           several needle GETs in one request (batch-read.ts)
//   POST /volumes/:vid            create     POST /volumes/:vid/seal     seal
//   POST /volumes/:vid/compact    compact    POST /scrub[?volume=N]      scrub
//   GET  /status                  JSON       GET  /metrics               Prometheus
//   cluster routes (listing, raw copy, sync): see server-cluster.ts
//   PUT|DELETE /extra/:vid/:nid, GET /extra, GET /cache: extra replicas and the needle
//   cache of hot objects, see extra-replicas.ts; a needle GET takes `x-ks-cache: fill|drop`
// A needle PUT with `x-ks-replicas: <url>,<url>` [and `x-ks-write-quorum: N`] is also
// forwarded to those replicas (replication.ts); 502 ReplicaWriteFailed when too few made it.
// Every request must carry a valid x-ks-auth token (InternalAuth), checked before any body
// byte is read; /metrics also takes the metrics bearer token. A needle PUT's token also
// covers its CRC32C, content type, replica list and quorum (NEEDLE_PUT_COVERED), the CRC
// is required, a needle id is written once (Volume.write), and replicas must be stores the
// directory knows (`knownStore`): a captured token can neither replace a needle nor send it
// anywhere else (issue 12 item 2). Errors are JSON {error, message} with a 4xx/5xx status.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32c } from '@node-rs/crc32';
import type { InternalAuth } from '../common/internal-auth.ts';
import {
  authorizeHead,
  close,
  createServer,
  InternalError,
  listen,
  readBody,
  sendError,
  sendJson,
  splitUrl,
} from '../common/internal-http.ts';
import type { Logger } from '../common/log.ts';
import { CACHE_HEADER, CRC_HEADER, EXTRA_PUT_COVERED, NEEDLE_PUT_COVERED } from './api.ts';
import { BATCH_READ_PATH, serveReadBatch } from './batch-read.ts';
import { StoreError } from './errors.ts';
import { EXTRA_RE } from './extra-replicas.ts';
import { type ExtraRouteContext, extraRoute } from './extra-routes.ts';
import { StoreMetrics } from './metrics.ts';
import { parseCacheHint } from './needle-cache.ts';
import {
  parseQuorum,
  parseReplicas,
  QUORUM_HEADER,
  REPLICAS_HEADER,
  Replicator,
} from './replication.ts';
import { type ClusterRouteContext, clusterRoute } from './server-cluster.ts';
import type { Store } from './store.ts';

export interface StoreServerOptions {
  store: Store;
  auth: InternalAuth;
  /** Largest needle body accepted; larger ones get 413 before any byte is stored. */
  maxNeedleSize: number;
  logger?: Logger;
  /** Bound on one write forwarded to another replica (default 10 s). */
  replicationTimeoutMs?: number;
  /**
   * Whether `origin` (scheme://host:port) is a store of this cluster: the only places a
   * needle PUT's `x-ks-replicas` may send it and a sync may copy from. Backed by the
   * directory's node list in a cluster (directory-link.ts directoryKnownStores). Without
   * it this store forwards to nobody and syncs from nobody (a standalone store).
   */
  knownStore?: (origin: string) => Promise<boolean>;
  /** Whether this node can serve (GET /readyz): volumes are loaded; joined, with a directory. */
  ready?: () => boolean;
}

const NEEDLE_RE = /^\/volumes\/([^/]+)\/needles\/([^/]+)$/;
const VOLUME_RE = /^\/volumes\/([^/]+)(?:\/(seal|compact))?$/;
const U64_MAX = 2n ** 64n - 1n;

export function parseVolumeId(s: string): number {
  if (!/^\d{1,10}$/.test(s))
    throw new StoreError('InvalidArgument', `bad volume id ${JSON.stringify(s)}`);
  const n = Number(s);
  if (n < 1 || n > 0xffff_ffff)
    throw new StoreError('InvalidArgument', `volume id ${s} out of range`);
  return n;
}

export function parseNeedleId(s: string): bigint {
  if (!/^\d{1,20}$/.test(s))
    throw new StoreError('InvalidArgument', `bad needle id ${JSON.stringify(s)}`);
  const n = BigInt(s);
  if (n < 1n || n > U64_MAX) throw new StoreError('InvalidArgument', `needle id ${s} out of range`);
  return n;
}

export function parseCookie(s: string | null): number {
  if (s === null || !/^\d{1,10}$/.test(s)) {
    throw new StoreError('InvalidArgument', 'cookie must be a decimal u32');
  }
  const n = Number(s);
  if (n > 0xffff_ffff) throw new StoreError('InvalidArgument', 'cookie out of range');
  return n;
}

/** Parses a single `bytes=` range against a known size; null when absent. */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | null {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === ''))
    throw new StoreError('InvalidRange', `bad range ${header}`);
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw new StoreError('InvalidRange', 'empty suffix range');
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start)
      throw new StoreError('InvalidRange', `bad range ${header}`);
  }
  if (start >= size) throw new StoreError('InvalidRange', `range starts past the end (${size})`);
  return { start, end };
}

export class StoreServer {
  readonly server: http.Server;
  readonly metrics: StoreMetrics;
  readonly replicator: Replicator;
  private readonly cluster: ClusterRouteContext;
  private readonly extra: ExtraRouteContext;

  constructor(readonly opts: StoreServerOptions) {
    this.metrics = new StoreMetrics(opts.store);
    this.replicator = new Replicator({
      auth: opts.auth,
      timeoutMs: opts.replicationTimeoutMs,
      logger: opts.logger,
    });
    this.cluster = {
      store: opts.store,
      replicator: this.replicator,
      logger: opts.logger,
      parseVolumeId,
      parseNeedleId,
      syncing: new Set(),
      checkKnown: (origins) => this.checkKnown(origins),
    };
    this.extra = {
      store: opts.store,
      maxNeedleSize: opts.maxNeedleSize,
      parseVolumeId,
      parseNeedleId,
      parseCookie,
      onBytesIn: (n) => this.metrics.bytesIn.inc(n),
    };
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return listen(this.server, host, port);
  }

  async close(): Promise<void> {
    // Peers keep pooled keep-alive connections (replica forwards, syncs): one that turns
    // idle after close() began would otherwise hold the close until the peer drops it.
    const sweep = setInterval(() => this.server.closeIdleConnections(), 50);
    try {
      await close(this.server);
    } finally {
      clearInterval(sweep);
    }
    await this.replicator.close();
  }

  /** Requests being served that touch needles (the heartbeat's load figure). */
  get load(): number {
    return this.metrics.inflightReads + this.metrics.inflightWrites;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = performance.now();
    const rawUrl = req.url ?? '/';
    const method = req.method ?? 'GET';
    let op = 'unknown';
    try {
      const { path: pathname, query } = splitUrl(rawUrl);
      // Kubernetes probes: anonymous, and they tell nothing but one word.
      if (method === 'GET' && (pathname === '/healthz' || pathname === '/readyz')) {
        const ok = pathname === '/healthz' || (this.opts.ready?.() ?? true);
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(ok ? 'ok\n' : 'not-ready\n');
        op = 'probe';
        return;
      }
      const scrape =
        pathname === '/metrics' && this.opts.auth.verifyMetricsBearer(req.headers.authorization);
      // A needle PUT's token covers more of its head than other routes' (NEEDLE_PUT_COVERED).
      const covered =
        method !== 'PUT'
          ? []
          : NEEDLE_RE.test(pathname)
            ? NEEDLE_PUT_COVERED
            : EXTRA_RE.test(pathname)
              ? EXTRA_PUT_COVERED
              : [];
      if (!scrape) authorizeHead(req, this.opts.auth, covered);
      op = await this.route(req, res, method, pathname, new URLSearchParams(query));
    } catch (e) {
      const err =
        e instanceof StoreError || e instanceof InternalError
          ? e
          : new StoreError('InternalError', (e as Error)?.message ?? String(e));
      if (err.status >= 500) {
        this.metrics.errors++;
        this.opts.logger?.error({ err: e, method, url: rawUrl }, 'store request failed');
      }
      sendError(req, res, err);
    } finally {
      this.metrics.requests.inc({ op, status: String(res.statusCode) });
      this.metrics.duration.observe({ op }, (performance.now() - started) / 1000);
    }
  }

  private async route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    method: string,
    pathname: string,
    query: URLSearchParams,
  ): Promise<string> {
    const { store } = this.opts;
    const n = NEEDLE_RE.exec(pathname);
    if (n) {
      const vid = parseVolumeId(n[1]!);
      const nid = parseNeedleId(n[2]!);
      const cookie = parseCookie(query.get('cookie'));
      switch (method) {
        case 'PUT':
          return this.put(req, res, vid, nid, cookie);
        case 'GET':
        case 'HEAD':
          return this.get(req, res, vid, nid, cookie, method === 'HEAD');
        case 'DELETE':
          await store.delete(vid, nid, cookie);
          res.writeHead(204).end();
          return 'delete';
        default:
          throw new StoreError('MethodNotAllowed', `${method} not allowed on a needle`);
      }
    }
    if (pathname === BATCH_READ_PATH && method === 'POST') {
      return serveReadBatch(store, this.metrics, req, res);
    }
    const clusterOp = await clusterRoute(this.cluster, res, method, pathname, query);
    if (clusterOp !== null) return clusterOp;
    const extraOp = await extraRoute(this.extra, req, res, method, pathname, query);
    if (extraOp !== null) return extraOp;
    const v = VOLUME_RE.exec(pathname);
    if (v) {
      if (method !== 'POST') throw new StoreError('MethodNotAllowed', `${method} not allowed here`);
      const vid = parseVolumeId(v[1]!);
      if (v[2] === 'seal') {
        await store.seal(vid);
        sendJson(res, 200, store.volume(vid).stats());
        return 'seal';
      }
      if (v[2] === 'compact') {
        sendJson(res, 200, await store.compact(vid));
        return 'compact';
      }
      await store.createVolume(vid);
      sendJson(res, 201, store.volume(vid).stats());
      return 'create';
    }
    if (pathname === '/status' && method === 'GET') {
      sendJson(res, 200, {
        ...(await store.status()),
        inflightReads: this.metrics.inflightReads,
        inflightWrites: this.metrics.inflightWrites,
        errors: { io: store.ioErrors(), requests5xx: this.metrics.errors },
      });
      return 'status';
    }
    if (pathname === '/metrics' && method === 'GET') {
      const text = await this.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      res.end(text);
      return 'metrics';
    }
    if (pathname === '/scrub' && method === 'POST') {
      const vol = query.get('volume');
      const results = await store.scrub(vol === null ? undefined : parseVolumeId(vol));
      sendJson(res, 200, results);
      return 'scrub';
    }
    throw new StoreError('NotFound', `no route for ${method} ${pathname}`);
  }

  private async put(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    vid: number,
    nid: bigint,
    cookie: number,
  ): Promise<string> {
    const vol = this.opts.store.volume(vid); // 404 before reading any body
    // Everything the head says is checked before the body is read: the CRC the token
    // covers (required: it is what binds the token to these bytes), the replicas (known
    // stores only) and the quorum.
    const sent = req.headers[CRC_HEADER];
    if (typeof sent !== 'string' || !/^\d{1,10}$/.test(sent) || Number(sent) > 0xffff_ffff) {
      throw new StoreError('InvalidArgument', `a needle PUT needs ${CRC_HEADER}: <decimal u32>`);
    }
    const replicas = parseReplicas(req.headers[REPLICAS_HEADER]);
    const quorum =
      replicas.length === 0 ? 1 : parseQuorum(req.headers[QUORUM_HEADER], replicas.length + 1);
    if (replicas.length > 0) await this.checkKnown(replicas);
    this.metrics.inflightWrites++;
    try {
      const body = await readBody(req, this.opts.maxNeedleSize);
      // End-to-end integrity: the needle CRC is computed here, so bytes damaged between
      // the gateway and this process must be caught against the sender's CRC first.
      const crc = crc32c(body);
      if (sent !== String(crc)) {
        throw new StoreError('BadChecksum', `body CRC32C ${crc} does not match ${sent}`);
      }
      const ct = req.headers['content-type'];
      // A taken id (write-once) is this write's own error, before anything is forwarded.
      if (replicas.length > 0) await vol.checkNew(nid, cookie, body);
      const local = () => vol.write(nid, cookie, body, ct);
      const w =
        replicas.length === 0
          ? await local()
          : await this.replicator.write(local, { volumeId: vid, needleId: nid, cookie }, body, {
              replicas,
              quorum,
              contentType: ct,
              crc32c: crc,
            });
      this.metrics.bytesIn.inc(body.length);
      sendJson(res, 201, {
        size: body.length,
        storedSize: w.storedLength,
        compressed: w.compressed,
      });
      return 'put';
    } finally {
      this.metrics.inflightWrites--;
    }
  }

  /**
   * Refuses (403 UnknownReplica) unless every origin is a store of this cluster; 502
   * ReplicaWriteFailed when that cannot be told now (directory unreachable).
   */
  private async checkKnown(origins: string[]): Promise<void> {
    const known = this.opts.knownStore;
    if (!known) {
      throw new StoreError(
        'UnknownReplica',
        'this store forwards to no other store (it has no directory to know them)',
      );
    }
    for (const origin of origins) {
      let ok: boolean;
      try {
        ok = await known(origin);
      } catch (e) {
        throw new StoreError(
          'ReplicaWriteFailed',
          `cannot tell whether ${origin} is a store: ${(e as Error)?.message ?? String(e)}`,
        );
      }
      if (!ok) {
        throw new StoreError('UnknownReplica', `${origin} is not a store the directory knows`);
      }
    }
  }

  private async get(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    vid: number,
    nid: bigint,
    cookie: number,
    headOnly: boolean,
  ): Promise<string> {
    this.metrics.inflightReads++;
    try {
      if (headOnly && req.headers.range === undefined) {
        const h = await this.opts.store.head(vid, nid, cookie);
        res.writeHead(200, {
          'content-length': h.size,
          'accept-ranges': 'bytes',
          'x-ks-size': h.size,
        });
        res.end();
        return 'head';
      }
      const hint = parseCacheHint(req.headers[CACHE_HEADER]);
      const r = await this.opts.store.read(vid, nid, cookie, undefined, { cache: hint });
      const range = parseRange(req.headers.range, r.size);
      const body = range ? r.data.subarray(range.start, range.end + 1) : r.data;
      const headers: http.OutgoingHttpHeaders = {
        'content-type': 'application/octet-stream',
        'content-length': body.length,
        'accept-ranges': 'bytes',
        'x-ks-size': r.size,
        [CRC_HEADER]: crc32c(body),
      };
      if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${r.size}`;
      res.writeHead(range ? 206 : 200, headers);
      res.end(headOnly ? undefined : body);
      if (!headOnly) this.metrics.bytesOut.inc(body.length);
      return headOnly ? 'head' : 'get';
    } finally {
      this.metrics.inflightReads--;
    }
  }
}
