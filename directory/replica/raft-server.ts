// One directory replica on the network: the Raft host (raft/host.ts), the metadata API for
// gateways (/meta/*, served by RaftMetadata), Raft traffic between replicas (/raft/msgs,
// /raft/snapshot/*), membership administration (/raft/admin/*), GET /status and the probes.
//
// Only the Kubernetes probes answer without authentication, and they say one word:
// GET /healthz (liveness: the process serves HTTP) is always `ok`; GET /readyz (readiness)
// is 200 `ok` once this replica knows a leader and has applied nearly all it knows to be
// committed, else 503 `no-leader` / `catching-up`. No ids, URLs or indexes. Everything
// else carries the cluster secret's HMAC (x-ks-auth), /status (role, peers and their URLs)
// and /cluster/liveness (the stores this replica hears from) included (issue 12 item 9),
// and GET /cluster/cache (the hot-object table and counts, issue 14).
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Config, DEFAULT_CONFIG } from '../../common/config.ts';
import type { InternalAuth } from '../../common/internal-auth.ts';
import {
  authorizeHead,
  close,
  createServer,
  InternalError,
  listen,
  readSignedBody,
  sendError,
  sendJson,
  toInternalError,
} from '../../common/internal-http.ts';
import type { Logger } from '../../common/log.ts';
import { ClusterManager, type ClusterManagerOptions } from '../cluster/cluster-manager.ts';
import { type ExtraReplicaOps, storeExtraOps } from '../cluster/hot-extras.ts';
import { type HotMeta, Hotness } from '../cluster/hotness.ts';
import { Liveness } from '../cluster/liveness.ts';
import type { LevelMetadata } from '../engine/meta-level.ts';
import { exportSnapshot } from '../engine/sm-snapshot.ts';
import { MetadataError } from '../model/api.ts';
import type { Heartbeat } from '../model/topology.ts';
import { RaftHost, type RaftHostOptions } from '../raft/host.ts';
import { raftRoutes } from '../raft/transport.ts';
import { LEADER_HEADER, MetadataServer } from '../wire/server.ts';
import { type DirectoryHost, levelMachines } from './level-state-machine.ts';
import { FORWARDED_HEADER, RaftMetadata } from './raft-metadata.ts';

export interface DirectoryServerOptions extends RaftHostOptions {
  listenHost: string;
  listenPort: number;
  waitMs?: number;
  /** Store failure handling (cluster-manager.ts): its timings, the rest is wired here. */
  cluster?: Omit<ClusterManagerOptions, 'meta' | 'isLeader' | 'liveness' | 'auth' | 'logger'>;
  /** The hot-object policy's settings (config `cache`; default DEFAULT_CONFIG.cache). */
  cache?: Config['cache'];
}

// Admin calls and heartbeats (a store with thousands of volumes sends a few hundred KiB).
const MAX_ADMIN_BODY = 4 * 1024 * 1024;
/** The leader's state-machine backup (`kubestorage admin directory backup`). */
export const BACKUP_PATH = '/cluster/backup';
/** /readyz: how far behind the commit index it knows a replica may apply and be ready. */
const READY_MAX_LAG = 1000;

export class DirectoryServer {
  readonly server: http.Server;
  readonly meta: RaftMetadata;
  readonly liveness = new Liveness();
  private readonly direct: MetadataServer;
  private readonly forwarded: MetadataServer;
  readonly manager: ClusterManager;
  /** Read counts and the hot-object policy: ticks on every replica, acts on the leader. */
  readonly hotness: Hotness;
  private readonly extraOps: ExtraReplicaOps;
  private readonly raft: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

  private constructor(
    readonly host: DirectoryHost,
    private readonly auth: InternalAuth,
    log: Logger,
    waitMs: number | undefined,
    cluster: DirectoryServerOptions['cluster'],
    cache: Config['cache'],
  ) {
    let hotness: Hotness | undefined;
    // One "down" for placement and for the manager: the same silence threshold.
    this.meta = new RaftMetadata(host, {
      auth,
      waitMs,
      liveness: this.liveness,
      aliveMs: cluster?.offlineAfterMs,
      hotness: () => hotness,
    });
    this.direct = new MetadataServer({ meta: this.meta, auth, logger: log });
    this.forwarded = new MetadataServer({ meta: this.meta.forwardedView(), auth, logger: log });
    this.manager = new ClusterManager({
      meta: this.meta,
      isLeader: () => host.isLeader,
      liveness: this.liveness,
      auth,
      logger: log,
      ...cluster,
    });
    this.manager.start();
    this.extraOps = storeExtraOps({
      auth,
      liveness: this.liveness,
      aliveMs: cluster?.offlineAfterMs ?? DEFAULT_CONFIG.cluster.offlineAfterMs,
    });
    // Its tick does nothing on a follower, and starts from empty counts on a new leader.
    hotness = this.hotness = new Hotness({
      meta: leaderLocalReads(this.meta, () => host.stateMachine.db),
      reportMeta: this.meta,
      barrier: () => host.readBarrier(),
      cache,
      extra: this.extraOps,
      log,
      isLeader: () => host.isLeader,
    });
    this.hotness.start();
    this.raft = raftRoutes({
      auth,
      onMessages: (msgs) => host.deliver(msgs),
      snapshots: host.snapshotReceiver,
    });
    this.server = createServer((req, res) => {
      this.route(req, res).catch((e: unknown) => {
        const err = toInternalError(e);
        if (err !== e) log.error({ err: e, url: req.url }, 'directory request failed');
        sendError(req, res, err);
      });
    });
  }

  /** Opens the replica's data, then listens. */
  static async start(
    o: DirectoryServerOptions,
  ): Promise<{ dir: DirectoryServer; addr: AddressInfo }> {
    const host = await RaftHost.open(o, { machines: levelMachines(o.dataDir) });
    const dir = new DirectoryServer(
      host,
      o.auth,
      o.logger,
      o.waitMs,
      o.cluster,
      o.cache ?? DEFAULT_CONFIG.cache,
    );
    const addr = await listen(dir.server, o.listenHost, o.listenPort);
    return { dir, addr };
  }

  async close(): Promise<void> {
    this.manager.stop();
    this.hotness.stop();
    await this.extraOps.close?.();
    await close(this.server);
    this.server.closeAllConnections();
    await this.meta.close();
    await this.host.close();
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    if (url.startsWith('/meta/')) {
      // The leader's URL is topology: only a request whose head carries a valid token learns
      // it (issue 12). Others get the 403 here, before any body is read; the handler checks
      // the token again with the body's digest.
      authorizeHead(req, this.auth);
      const forwarded = req.headers[FORWARDED_HEADER];
      const lead = forwarded ? null : this.host.leaderId;
      const leaderUrl = lead === null ? undefined : this.host.peerUrl(lead);
      // Clients that know this URL send their next calls to the leader (client.ts).
      if (leaderUrl) res.setHeader(LEADER_HEADER, leaderUrl);
      await (forwarded ? this.forwarded : this.direct).handle(req, res);
      return;
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (url === '/healthz') {
        probeAnswer(res, 200, 'ok');
        return;
      }
      if (url === '/readyz') {
        const word = this.readiness();
        probeAnswer(res, word === 'ok' ? 200 : 503, word);
        return;
      }
    }
    if (req.method === 'GET' && url === '/cluster/liveness') {
      // Which stores this replica hears from (ids and timings only), for readiness checks.
      authorizeHead(req, this.auth);
      sendJson(res, 200, this.liveness.list());
      return;
    }
    if (req.method === 'GET' && url === '/cluster/cache') {
      authorizeHead(req, this.auth);
      sendJson(res, 200, await this.cacheStatus());
      return;
    }
    if (req.method === 'GET' && url === '/status') {
      authorizeHead(req, this.auth);
      const s = this.host.status();
      sendJson(res, 200, { ...s, leaderUrl: s.leaderId ? this.host.peerUrl(s.leaderId) : null });
      return;
    }
    if (this.raft(req, res)) return;
    if (url === '/cluster/heartbeat' && req.method === 'POST') {
      const text = (await readSignedBody(req, this.auth, MAX_ADMIN_BODY)).toString('utf8');
      let h: Heartbeat;
      try {
        h = JSON.parse(text) as Heartbeat;
      } catch (e) {
        throw new InternalError(400, 'InvalidArgument', (e as Error).message);
      }
      await this.meta.heartbeat(h).catch((e: unknown) => {
        throw heartbeatError(e);
      });
      res.writeHead(204).end();
      return;
    }
    if (url.startsWith('/raft/admin/') && req.method === 'POST') {
      const text = (await readSignedBody(req, this.auth, MAX_ADMIN_BODY)).toString('utf8');
      await this.admin(url.slice('/raft/admin/'.length), text, res);
      return;
    }
    if (req.method === 'GET' && url === BACKUP_PATH) {
      await this.backup(req, res);
      return;
    }
    throw new InternalError(404, 'NotFound', `no route for ${req.method} ${url}`);
  }

  /**
   * GET /cluster/backup (authenticated, leader only: 409 NotLeader with its URL elsewhere):
   * the state machine as a snapshot stream (engine/sm-snapshot.ts), as of a read barrier —
   * every write acknowledged before the request is in it. `x-ks-applied-index` says which
   * Raft index it stands at. A failure mid-stream cuts the response short, which the
   * stream's trailer makes an error for the reader.
   */
  private async backup(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    authorizeHead(req, this.auth);
    if (!this.host.isLeader) {
      const leaderId = this.host.leaderId;
      throw new InternalError(409, 'NotLeader', 'backups are taken on the leader', {
        leaderId,
        leaderUrl: leaderId ? (this.host.peerUrl(leaderId) ?? null) : null,
      });
    }
    await this.host.readBarrier();
    const snap = exportSnapshot(this.host.stateMachine.db);
    try {
      const applied = await snap.appliedIndex();
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'cache-control': 'no-store',
        'x-ks-applied-index': String(applied),
      });
      for await (const chunk of snap.chunks()) {
        if (res.destroyed) break;
        if (!res.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              res.off('drain', done);
              res.off('close', done);
              resolve();
            };
            res.on('drain', done);
            res.on('close', done);
          });
        }
      }
      res.end();
    } catch (e) {
      if (!res.headersSent) throw e;
      res.destroy(e as Error);
    } finally {
      await snap.close();
    }
  }

  /**
   * GET /cluster/cache: the hot table and extra replicas (linearizable reads, the same on
   * every replica) and the counts, stats and gateways' reports, which only the leader has:
   * `leader.here` says whether these are its.
   */
  private async cacheStatus() {
    const [objects, extra] = await Promise.all([
      this.meta.listHotObjects(),
      this.meta.listExtraReplicas(),
    ]);
    const id = this.host.leaderId;
    return {
      leader: { id, url: id ? (this.host.peerUrl(id) ?? null) : null, here: this.host.isLeader },
      ...this.hotness.status(),
      objects,
      extra,
    };
  }

  /** /readyz's word: `ok` once a leader is known and this replica has nearly caught up. */
  private readiness(): 'ok' | 'no-leader' | 'catching-up' {
    if (this.host.leaderId === null) return 'no-leader';
    const s = this.host.status();
    return s.commitIndex - s.appliedIndex > READY_MAX_LAG ? 'catching-up' : 'ok';
  }

  private async admin(what: string, text: string, res: http.ServerResponse) {
    let body: { id?: unknown; url?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw invalid('body must be JSON {id[, url]}');
    }
    const id =
      typeof body.id === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(body.id) ? body.id : null;
    if (!id) throw invalid('id: 1-64 of [A-Za-z0-9._-]');
    if (!this.host.isLeader) {
      const leaderId = this.host.leaderId;
      throw new InternalError(409, 'NotLeader', 'membership changes go to the leader', {
        leaderId,
        leaderUrl: leaderId ? this.host.peerUrl(leaderId) : null,
      });
    }
    if (what === 'add' && (typeof body.url !== 'string' || !/^https?:\/\/[^/\s]+$/.test(body.url)))
      throw invalid('url: http://host:port');
    if (what !== 'add' && what !== 'remove' && what !== 'transfer')
      throw new InternalError(404, 'NotFound', `no admin action ${what}`);
    let conf: unknown;
    try {
      if (what === 'add') conf = await this.host.addNode(id, body.url as string);
      else if (what === 'remove') conf = await this.host.removeNode(id);
      else await this.host.transferLeadership(id);
    } catch (e) {
      throw new InternalError(409, 'Refused', (e as Error).message);
    }
    sendJson(res, 200, conf ? { ok: true, conf } : { ok: true });
  }
}

/** A probe's answer: a status word and nothing else (it is served to anyone). */
function probeAnswer(res: http.ServerResponse, status: number, word: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(word.length + 1),
    'cache-control': 'no-store',
  });
  res.end(`${word}\n`);
}

const invalid = (message: string) => new InternalError(400, 'InvalidArgument', message);

/**
 * What a failed heartbeat answers: a malformed one 400, a directory that cannot take it now
 * (Unavailable: closing, no leader) 503; anything else is unexpected (500).
 */
function heartbeatError(e: unknown): unknown {
  if (!(e instanceof MetadataError)) return e;
  if (e.code === 'Unavailable') return new InternalError(503, 'Unavailable', e.message);
  if (e.code === 'PreconditionFailed') return invalid(e.message);
  return e;
}

/** `meta` with the hot-object policy's reads served by this replica's applied state. */
function leaderLocalReads(meta: RaftMetadata, db: () => LevelMetadata): HotMeta {
  return {
    getObject: (b, k) => db().getObject(b, k),
    getObjects: (keys) => db().getObjects(keys),
    getVolume: (id) => db().getVolume(id),
    listNodes: () => db().listNodes(),
    listHotObjects: () => db().listHotObjects(),
    listExtraReplicas: () => db().listExtraReplicas(),
    putHotObject: (r) => meta.putHotObject(r),
    deleteHotObject: (b, k) => meta.deleteHotObject(b, k),
    setExtraReplicas: (r) => meta.setExtraReplicas(r),
  };
}
