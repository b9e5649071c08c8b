// One directory replica on the network: the Raft host (raft/host.ts), the metadata API for
// gateways (/meta/*, served by RaftMetadata), Raft traffic between replicas (/raft/msgs,
// /raft/snapshot/*), membership administration (/raft/admin/*) and GET /status.
//
// /status and /healthz answer without authentication: they hold ids, indexes and URLs only,
// and Kubernetes probes (and the pod-label publisher) cannot sign requests. Everything else
// carries the cluster secret's HMAC.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as httpServer from '../../common/http-server.ts';
import { AUTH_HEADER, type InternalAuth } from '../../common/internal-auth.ts';
import type { Logger } from '../../common/log.ts';
import { ClusterManager } from '../cluster/cluster-manager.ts';
import { Liveness } from '../cluster/liveness.ts';
import type { Heartbeat } from '../model/topology.ts';
import { RaftHost, type RaftHostOptions } from '../raft/host.ts';
import { raftRoutes } from '../raft/transport.ts';
import { LEADER_HEADER, MetadataServer } from '../wire/server.ts';
import { FORWARDED_HEADER, RaftMetadata } from './raft-metadata.ts';

export interface DirectoryServerOptions extends RaftHostOptions {
  listenHost: string;
  listenPort: number;
  waitMs?: number;
  /** Store failure handling (cluster-manager.ts). */
  cluster?: {
    intervalMs?: number;
    offlineAfterMs?: number;
    rereplicateAfterMs?: number;
    sweepIntervalMs?: number;
    orphanGraceMs?: number;
  };
}

// Admin calls and heartbeats (a store with thousands of volumes sends a few hundred KiB).
const MAX_ADMIN_BODY = 4 * 1024 * 1024;

export class DirectoryServer {
  readonly server: http.Server;
  readonly meta: RaftMetadata;
  readonly liveness = new Liveness();
  private readonly direct: MetadataServer;
  private readonly forwarded: MetadataServer;
  readonly manager: ClusterManager;
  private readonly raft: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

  private constructor(
    readonly host: RaftHost,
    private readonly auth: InternalAuth,
    log: Logger,
    waitMs: number | undefined,
    cluster: DirectoryServerOptions['cluster'],
  ) {
    this.meta = new RaftMetadata(host, { auth, waitMs, liveness: this.liveness });
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
    this.raft = raftRoutes({
      auth,
      onMessages: (msgs) => host.deliver(msgs),
      snapshots: host.snapshotReceiver,
    });
    this.server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      this.route(req, res).catch((e) => {
        log.error({ err: e, url: req.url }, 'directory request failed');
        if (!res.headersSent) json(res, 500, { error: 'InternalError', message: String(e) });
        else res.destroy();
      });
    });
  }

  /** Opens the replica's data, then listens. */
  static async start(
    o: DirectoryServerOptions,
  ): Promise<{ dir: DirectoryServer; addr: AddressInfo }> {
    const host = await RaftHost.open(o);
    const dir = new DirectoryServer(host, o.auth, o.logger, o.waitMs, o.cluster);
    const addr = await httpServer.listen(dir.server, o.listenHost, o.listenPort);
    return { dir, addr };
  }

  async close(): Promise<void> {
    this.manager.stop();
    await httpServer.close(this.server);
    this.server.closeAllConnections();
    await this.meta.close();
    await this.host.close();
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    if (url.startsWith('/meta/')) {
      const forwarded = req.headers[FORWARDED_HEADER];
      const lead = forwarded ? null : this.host.leaderId;
      const leaderUrl = lead === null ? undefined : this.host.peerUrl(lead);
      // Clients that know this URL send their next calls to the leader (client.ts).
      if (leaderUrl) res.setHeader(LEADER_HEADER, leaderUrl);
      await (forwarded ? this.forwarded : this.direct).handle(req, res);
      return;
    }
    if (req.method === 'GET' && url === '/cluster/liveness') {
      // Which stores this replica hears from (ids and timings only), for readiness checks.
      json(res, 200, this.liveness.list());
      return;
    }
    if (req.method === 'GET' && (url === '/status' || url === '/healthz')) {
      const s = this.host.status();
      if (url === '/healthz') json(res, s.leaderId ? 200 : 503, { leaderId: s.leaderId });
      else json(res, 200, { ...s, leaderUrl: s.leaderId ? this.host.peerUrl(s.leaderId) : null });
      return;
    }
    if (this.raft(req, res)) return;
    if (url === '/cluster/heartbeat' && req.method === 'POST') {
      const text = await this.signedBody(req, res, url);
      if (text === null) return;
      let h: Heartbeat;
      try {
        h = JSON.parse(text) as Heartbeat;
        await this.meta.heartbeat(h);
      } catch (e) {
        json(res, 400, { error: 'InvalidArgument', message: (e as Error).message });
        return;
      }
      res.writeHead(204).end();
      return;
    }
    if (url.startsWith('/raft/admin/') && req.method === 'POST') {
      const text = await this.signedBody(req, res, url);
      if (text === null) return;
      await this.admin(url.slice('/raft/admin/'.length), text, res);
      return;
    }
    json(res, 404, { error: 'NotFound', message: `no route for ${req.method} ${url}` });
  }

  /** The body of a POST whose token covers it, or null once a 403/400 has been sent. */
  private async signedBody(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: string,
  ): Promise<string | null> {
    const token = req.headers[AUTH_HEADER] as string | undefined;
    const forbidden = () => {
      res.setHeader('connection', 'close');
      json(res, 403, { error: 'Forbidden', message: 'missing or invalid internal auth token' });
      return null;
    };
    if (!this.auth.fresh(token)) return forbidden();
    let text: string;
    try {
      text = await readSmall(req);
    } catch (e) {
      json(res, 400, { error: 'InvalidArgument', message: (e as Error).message });
      return null;
    }
    return this.auth.verify(token, 'POST', url, undefined, text) ? text : forbidden();
  }

  private async admin(what: string, text: string, res: http.ServerResponse) {
    let body: { id?: unknown; url?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      json(res, 400, { error: 'InvalidArgument', message: 'body must be JSON {id[, url]}' });
      return;
    }
    const id =
      typeof body.id === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(body.id) ? body.id : null;
    if (!id) {
      json(res, 400, { error: 'InvalidArgument', message: 'id: 1-64 of [A-Za-z0-9._-]' });
      return;
    }
    if (!this.host.isLeader) {
      const leaderId = this.host.leaderId;
      json(res, 409, {
        error: 'NotLeader',
        message: 'membership changes go to the leader',
        leaderId,
        leaderUrl: leaderId ? this.host.peerUrl(leaderId) : null,
      });
      return;
    }
    try {
      let conf: unknown;
      if (what === 'add') {
        if (typeof body.url !== 'string' || !/^https?:\/\/[^/\s]+$/.test(body.url)) {
          json(res, 400, { error: 'InvalidArgument', message: 'url: http://host:port' });
          return;
        }
        conf = await this.host.addNode(id, body.url);
      } else if (what === 'remove') conf = await this.host.removeNode(id);
      else if (what === 'transfer') await this.host.transferLeadership(id);
      else {
        json(res, 404, { error: 'NotFound', message: `no admin action ${what}` });
        return;
      }
      json(res, 200, conf ? { ok: true, conf } : { ok: true });
    } catch (e) {
      json(res, 409, { error: 'Refused', message: (e as Error).message });
    }
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function readSmall(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      text += c;
      if (text.length > MAX_ADMIN_BODY) {
        reject(new Error('body too large'));
        req.destroy();
      }
    });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}
