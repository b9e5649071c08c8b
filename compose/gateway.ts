// The composition root of an S3 gateway: the one place that turns a Config into metadata,
// a data path, root credentials and the HTTP app. The embedded server, its workers, the
// cluster gateway and the test kits all come through here, so a setting reaches every
// wiring or none. It sits above gateway/, data-path/, directory/ and store-node/, and nothing
// below imports it.
import crypto from 'node:crypto';
import type { Server } from 'node:http';
import path from 'node:path';
import type { HotSource } from '../cache/hot-view.ts';
import { type Config, DEFAULT_CONFIG } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import * as httpServer from '../common/internal-http.ts';
import type { Logger } from '../common/log.ts';
import type { DataPath } from '../data-path/api.ts';
import { ClusterPlacement, type PlacementDirectory } from '../data-path/cluster-placement.ts';
import { ClusterNeedleStore } from '../data-path/cluster-store.ts';
import type { ViewDirectory } from '../data-path/cluster-view.ts';
import { ObjectData } from '../data-path/object-data.ts';
import { EmbeddedPlacement } from '../data-path/placement.ts';
import { withDataErrors } from '../data-path/store-errors.ts';
import { LevelMetadata } from '../directory/engine/meta-level.ts';
import type { MetadataStore } from '../directory/model/api.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import { createGatewayServer } from '../gateway/app.ts';
import { MultipartExpiry } from '../gateway/multipart-expiry.ts';
import { loadSecretFile, SecretBox } from '../gateway/secret-box.ts';
import { ensureRootCredentials, sealStoredKeys, withSealedKeys } from '../gateway/users.ts';
import type { NeedleStore } from '../store-node/api.ts';
import { assembleCache, type GatewayCache } from './cache.ts';
import { type EmbeddedHotness, startEmbeddedHotness } from './embedded-hotness.ts';

/** A copy of the defaults to adjust (tests, and callers that apply flags). */
export function defaultConfig(): Config {
  return structuredClone(DEFAULT_CONFIG);
}

export type MetadataSource =
  /** LevelDB in this folder: the embedded server. */
  | { level: string }
  /** Over HTTP: a Raft directory's replicas, or the embedded primary. */
  | { directory: string | string[]; auth: InternalAuth }
  /** Already open and closed by the caller. */
  | { open: MetadataStore };

export interface OpenMetadata {
  meta: MetadataStore;
  /** Closes it if it was opened here. */
  close(): Promise<void>;
}

export async function openMetadata(src: MetadataSource): Promise<OpenMetadata> {
  if ('open' in src) return { meta: src.open, close: async () => {} };
  const meta =
    'level' in src
      ? await LevelMetadata.open(src.level)
      : new MetadataClient(src.directory, src.auth);
  return { meta, close: () => meta.close() };
}

/** One store's volumes, needle ids from the metadata. The caller closes `needles`. */
export function embeddedDataPath(
  cfg: Config,
  meta: MetadataStore,
  needles: NeedleStore,
  log?: Logger,
): ObjectData {
  return new ObjectData(needles, new EmbeddedPlacement(meta, needles), cfg.gateway.chunkSize, log);
}

export interface ClusterDataPath {
  data: ObjectData;
  store: ClusterNeedleStore;
  placement: ClusterPlacement;
  close(): Promise<void>;
}

/** Replicated volumes on the cluster's stores, placed and found through the directory. */
export function clusterDataPath(
  cfg: Config,
  directory: PlacementDirectory & ViewDirectory,
  auth: InternalAuth,
  log?: Logger,
): ClusterDataPath {
  const g = cfg.gateway;
  const store = new ClusterNeedleStore({
    directory,
    auth,
    log,
    // The directory's own threshold: a store it is about to mark offline is down here too.
    aliveMs: cfg.cluster.offlineAfterMs,
    suspectMs: g.suspectMs,
    timeoutMs: g.storeTimeoutMs,
    hedgeMinMs: g.hedgeMinMs,
    hedgeMaxMs: g.hedgeMaxMs,
    refreshMs: g.viewRefreshMs,
    volumeTtlMs: g.volumeTtlMs,
  });
  const placement = new ClusterPlacement({
    directory,
    store,
    log,
    replicaCount: g.replicas,
    refreshMs: g.viewRefreshMs,
  });
  return {
    data: new ObjectData(store, placement, g.chunkSize, log),
    store,
    placement,
    async close() {
      placement.close();
      await store.close();
    },
  };
}

/** The URL clients use for a gateway listening on host:port. */
export function endpointUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export type RootCreds = Awaited<ReturnType<typeof ensureRootCredentials>>;

export interface GatewaySpec {
  cfg: Config;
  log: Logger;
  meta: MetadataSource;
  /** One store (its owner closes it), or the cluster's, through the metadata's directory. */
  data: { needles: NeedleStore } | { cluster: InternalAuth };
  /**
   * Installs these root credentials, or keeps the stored ones, or generates them (empty
   * keys). Omitted where another process already did (the embedded server's workers).
   */
  root?: { accessKey: string; secretKey: string };
  /**
   * Seals access-key secrets at rest (gateway/secret-box.ts). Omitted: the cluster
   * secret's box for the cluster data path, else for LevelDB in DIR/meta the secret in
   * DIR/secret.key (beside the metadata, not in it), else a key of this process only
   * (tests). With `root` set, secrets stored in clear are sealed at start.
   */
  sealing?: SecretBox;
  /**
   * Whose metrics bearer token GET /_ks/metrics takes. Omitted: the cluster's (the cluster
   * data path's auth, else a configured clusterSecret): the token the stores' /metrics
   * take; else, for LevelDB in DIR/meta, the secret in DIR/secret.key (the one sealing
   * uses); else a secret of this process only (nobody can scrape; tests read it from
   * Gateway.metricsAuth).
   */
  metricsAuth?: InternalAuth;
  /** Lets a test interpose on the gateway's metadata calls (not the set-up's). */
  wrapMeta?: (m: MetadataStore) => MetadataStore;
}

export interface Gateway {
  server: Server;
  meta: MetadataStore;
  data: DataPath;
  /** The cluster's needle store and placement (cluster wiring only). */
  cluster?: ClusterDataPath;
  creds?: RootCreds;
  /** What GET /_ks/metrics verifies its bearer token with (GatewaySpec.metricsAuth). */
  metricsAuth: InternalAuth;
  /** The two-level cache's gateway side (cache.enabled), compose/cache.ts. */
  cache?: GatewayCache;
  /** Aborts abandoned multipart uploads (gateway.multipartExpiryMs); started here. */
  multipartExpiry: MultipartExpiry;
  /** Listens; resolves to the S3 endpoint URL. */
  listen(host: string, port: number): Promise<string>;
  /** Stops serving, then closes the data path and the metadata opened here. */
  close(): Promise<void>;
}

function defaultSealing(spec: GatewaySpec): SecretBox {
  if ('cluster' in spec.data) return SecretBox.fromAuth(spec.data.cluster);
  if ('level' in spec.meta) {
    return SecretBox.fromSecret(
      loadSecretFile(path.join(path.dirname(spec.meta.level), 'secret.key')),
    );
  }
  spec.log.warn('access-key secrets sealed with a key of this process only');
  return SecretBox.fromSecret(crypto.randomBytes(32).toString('base64url'));
}

function defaultMetricsAuth(spec: GatewaySpec): InternalAuth {
  if ('cluster' in spec.data) return spec.data.cluster;
  if (spec.cfg.clusterSecret) return new InternalAuth(spec.cfg.clusterSecret);
  if ('level' in spec.meta) {
    return new InternalAuth(loadSecretFile(path.join(path.dirname(spec.meta.level), 'secret.key')));
  }
  return new InternalAuth(crypto.randomBytes(32).toString('base64url'));
}

export async function assembleGateway(spec: GatewaySpec): Promise<Gateway> {
  const { cfg, log } = spec;
  const box = spec.sealing ?? defaultSealing(spec);
  const metricsAuth = spec.metricsAuth ?? defaultMetricsAuth(spec);
  const metadata = await openMetadata(spec.meta);
  const meta = withSealedKeys(metadata.meta, box);
  let cluster: ClusterDataPath | undefined;
  let cache: GatewayCache | undefined;
  let hotness: EmbeddedHotness | undefined;
  const closeData = async () => {
    await cache?.close();
    hotness?.stop();
    await cluster?.close();
    await metadata.close();
  };
  try {
    let data: DataPath;
    let needles: NeedleStore;
    if ('needles' in spec.data) {
      needles = spec.data.needles;
      data = embeddedDataPath(cfg, meta, needles, log);
    } else {
      if (!(metadata.meta instanceof MetadataClient)) {
        throw new Error('the cluster data path needs its metadata from a directory');
      }
      cluster = clusterDataPath(cfg, metadata.meta, spec.data.cluster, log);
      data = cluster.data;
      needles = cluster.store;
    }
    let gatewayMeta = meta;
    if (cfg.cache.enabled) {
      // Embedded over LevelDB: the policy runs here and this is the only gateway. Over a
      // directory: its leader decides, and other gateways may hold copies.
      let source: HotSource | undefined;
      if (metadata.meta instanceof LevelMetadata) {
        hotness = startEmbeddedHotness(metadata.meta, cfg, log);
        source = hotness.source;
      } else if (metadata.meta instanceof MetadataClient) source = metadata.meta;
      if (source) {
        cache = await assembleCache({
          cfg,
          log,
          source,
          exclusive: metadata.meta instanceof LevelMetadata,
          inner: data,
          // The cache reads needles directly: through the data path's errors too.
          needles: withDataErrors(needles),
          cluster: cluster?.store,
        });
        data = cache.data;
        gatewayMeta = cache.meta(meta);
      }
    }
    if (spec.root) await sealStoredKeys(metadata.meta, box, log);
    const creds = spec.root
      ? await ensureRootCredentials(meta, spec.root.accessKey, spec.root.secretKey)
      : undefined;
    const registry = cache?.registry;
    const server = createGatewayServer({
      meta: spec.wrapMeta ? spec.wrapMeta(gatewayMeta) : gatewayMeta,
      data,
      log,
      metrics: registry && (() => registry.metrics()),
      metricsAuth,
      config: {
        region: cfg.gateway.region,
        domain: cfg.gateway.domain || undefined,
        maxObjectSize: cfg.gateway.maxObjectSize,
        maxConcurrentUploads: cfg.gateway.maxConcurrentUploads,
        headersTimeoutMs: cfg.gateway.headersTimeoutMs,
        idleTimeoutMs: cfg.gateway.idleTimeoutMs,
        requestTimeoutMs: cfg.gateway.requestTimeoutMs,
      },
    });
    // Every gateway sweeps: the abort is one atomic metadata command, so of gateways racing
    // for one upload exactly one frees its parts (gateway/multipart-expiry.ts).
    const multipartExpiry = new MultipartExpiry({
      meta,
      data,
      log,
      expiryMs: cfg.gateway.multipartExpiryMs,
      sweepMs: cfg.gateway.multipartSweepMs,
    });
    multipartExpiry.start();
    return {
      server,
      meta,
      data,
      cluster,
      cache,
      creds,
      metricsAuth,
      multipartExpiry,
      async listen(host, port) {
        const addr = await httpServer.listen(server, host, port);
        return endpointUrl(host, addr.port);
      },
      async close() {
        await multipartExpiry.stop();
        await new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        });
        await closeData();
      },
    };
  } catch (e) {
    await closeData();
    throw e;
  }
}
