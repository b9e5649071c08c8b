// List phase: a bucket of --keys keys, then pages of it through the directory client (to a
// follower and to the leader) and through the S3 API of a `kubestorage server --directory`.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { SERVER_NODE_FLAGS } from '../../cli/node-flags.ts';
import { MetadataClient } from '../../directory/wire/client.ts';
import { signRequest } from '../../gateway/auth/sign.ts';
import { uriEncode } from '../../gateway/auth/sigv4-canonical.ts';
import { Prng } from '../lib/prng.ts';
import { type S3Server, startS3Server } from '../lib/proc.ts';
import { fmtInt, progress } from '../lib/stats.ts';
import type { Args } from './args.ts';
import { type Cluster, makeClients, type Replica } from './cluster.ts';
import { ACCESS_KEY, LIST_BUCKET, parseListV2, SECRET_KEY } from './common.ts';
import { type ListResult, type PageFn, randomPages, readFloor, walk, warmUp } from './pages.ts';
import { preload } from './preload.ts';

/** The S3 gateway on the directory: it creates the root user, so the bucket gets its owner. */
function startGateway(
  root: string,
  cluster: Cluster,
  secret: string,
  nodeArgs: string[],
): Promise<S3Server> {
  return startS3Server({
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    args: ['--directory', cluster.urls.join(',')],
    dir: path.join(root, 'gateway'),
    nodeArgs: [...SERVER_NODE_FLAGS, ...nodeArgs],
    env: { KUBESTORAGE_CLUSTER_SECRET: secret },
    what: 'kubestorage server --directory',
  });
}

class S3 {
  readonly pool: Pool;
  private readonly host: string;
  constructor(endpoint: string) {
    const u = new URL(endpoint);
    this.host = u.host;
    this.pool = new Pool(u.origin, { connections: 4, keepAliveTimeout: 60_000 });
  }
  async request(method: string, rawPath: string, query: [string, string][] = []) {
    const headers = signRequest({
      method,
      rawPath,
      query,
      headers: { host: this.host },
      accessKey: ACCESS_KEY,
      secretKey: SECRET_KEY,
    }).headers;
    const qs = query.map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).join('&');
    const res = await this.pool.request({
      method: method as 'GET',
      path: qs ? `${rawPath}?${qs}` : rawPath,
      headers,
    });
    const text = await res.body.text();
    return { status: res.statusCode, text };
  }
}

export async function listPhase(
  a: Args,
  root: string,
  cluster: Cluster,
  secret: string,
  leader: Replica,
  followers: Replica[],
  initiallyLoaded: number,
  results: Record<string, unknown>,
): Promise<void> {
  const rng = new Prng(a.seed);
  const out: Record<string, unknown> = {};
  results.list = out;
  // The gateway first: it creates the root user and key, and the bucket gets its owner.
  let gw: S3Server | undefined;
  const client = makeClients(leader.url, cluster, 1, a.preloadConcurrency)[0]!;
  try {
    let owner = 'bench-owner';
    if (a.s3) {
      gw = await startGateway(root, cluster, secret, a.gatewayNodeArgs);
      progress(`kubestorage server --directory … on ${gw.endpoint}`);
      const s3 = new S3(gw.endpoint);
      const r = await s3.request('PUT', `/${LIST_BUCKET}`);
      if (r.status !== 200 && !/BucketAlreadyOwnedByYou/.test(r.text)) {
        throw new Error(`create bucket: HTTP ${r.status} ${r.text.slice(0, 200)}`);
      }
      owner = (await client.getBucket(LIST_BUCKET))?.owner ?? owner;
      await s3.pool.close();
    } else if (!(await client.getBucket(LIST_BUCKET))) {
      await client.createBucket({
        name: LIST_BUCKET,
        owner,
        createdAt: Date.now(),
        region: 'us-east-1',
      });
    }

    const pre = await preload({
      a,
      cluster,
      leader,
      client,
      owner,
      root,
      secret,
      loaded: initiallyLoaded,
    });
    const loaded = pre.loaded;
    out.preload = pre.preload;
    out.keys = loaded;
    progress(`listing a bucket of ${fmtInt(loaded)} keys, pages of ${a.pageSize}`);

    // (a) MetadataClient.listObjects, follower then leader.
    const clientsToClose: MetadataClient[] = [];
    const viaClient = (r: Replica): PageFn & { floor: () => Promise<void> } => {
      const c = new MetadataClient([r.url], cluster.auth, { connections: 4, timeoutMs: 60_000 });
      clientsToClose.push(c);
      const fn = async (after: string | undefined) => {
        const p = await c.listObjects(LIST_BUCKET, { after, maxKeys: a.pageSize });
        return {
          keys: p.objects.length,
          first: p.objects[0]?.key,
          last: p.last,
          truncated: p.isTruncated,
        };
      };
      // The smallest linearizable read (one ReadIndex round plus a point get): the floor
      // under every page's latency.
      return Object.assign(fn, {
        floor: async () => {
          if (!(await c.getBucket(LIST_BUCKET))) throw new Error('getBucket: no bucket');
        },
      });
    };
    const runs: ListResult[] = [];
    try {
      for (const [role, r] of [
        ['follower', followers[0]],
        ['leader', leader],
      ] as const) {
        if (!r) continue;
        const fn = viaClient(r);
        await warmUp(a, loaded, rng, fn);
        runs.push(await readFloor(a, `client→${role} (${r.id})`, fn.floor));
        runs.push(await walk(a, `client→${role} (${r.id})`, loaded, fn));
        runs.push(await randomPages(a, `client→${role} (${r.id})`, loaded, rng, fn));
      }
    } finally {
      await Promise.all(clientsToClose.map((c) => c.close()));
    }

    // (b) ListObjectsV2 through the S3 gateway.
    if (gw) {
      const s3 = new S3(gw.endpoint);
      const base: [string, string][] = [
        ['list-type', '2'],
        ['max-keys', String(a.pageSize)],
      ];
      const fn: PageFn = async (after, token) => {
        const q = [...base];
        if (token !== undefined) q.push(['continuation-token', token]);
        else if (after !== undefined) q.push(['start-after', after]);
        // Request sent → whole response received: what any S3 client waits for. Our own
        // regex reading of the XML afterwards is not the server's latency.
        const s = performance.now();
        const r = await s3.request('GET', `/${LIST_BUCKET}`, q);
        const ms = performance.now() - s;
        if (r.status !== 200)
          throw new Error(`ListObjectsV2: HTTP ${r.status} ${r.text.slice(0, 200)}`);
        const p = parseListV2(r.text);
        return { ...p, token: p.next, ms };
      };
      try {
        await warmUp(a, loaded, rng, fn);
        runs.push(await walk(a, 'S3 ListObjectsV2', loaded, fn));
        runs.push(await randomPages(a, 'S3 ListObjectsV2', loaded, rng, fn));
      } finally {
        await s3.pool.close();
      }
      out.s3Gateway = {
        endpoint: gw.endpoint,
        directoryUrls: cluster.urls,
        note: 'kubestorage server --directory (single process); its MetadataClient starts at the first URL',
      };
    }
    out.runs = runs;
  } finally {
    await client.close();
    if (gw) out.gatewayExit = await gw.stop();
  }
}
