// Helpers shared by CLI commands: listen addresses, the cluster secret, shutdown.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../common/config.ts';
import type { Logger } from '../common/log.ts';
import type { StoreOptions } from '../store-node/store.ts';

export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  if (!m) throw new Error(`--listen wants HOST:PORT, got ${JSON.stringify(s)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port ${port} out of range`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/**
 * The configured cluster secret, or one kept in `<dataDir>/cluster.secret` (created on
 * first start) so a single node works out of the box. Clusters must configure one.
 */
export function clusterSecret(configured: string, dataDir: string, log: Logger): string {
  if (configured) return configured;
  const file = path.join(dataDir, 'cluster.secret');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    fs.mkdirSync(dataDir, { recursive: true });
    const secret = crypto.randomBytes(32).toString('base64url');
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    log.warn(
      { file },
      'no cluster secret configured: generated one (set KUBESTORAGE_CLUSTER_SECRET for a cluster)',
    );
    return secret;
  }
}

/** Runs `stop` once on SIGINT/SIGTERM, then exits. */
export function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (e) => {
        log.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** Store options from the store section of the config. */
export function storeOptions(sc: Config['store']): Partial<StoreOptions> {
  return {
    maxSize: sc.maxVolumeSize,
    fsync: sc.fsync,
    compression: sc.compression,
    compactGarbageRatio: sc.compactGarbageRatio,
    compactMinGarbageBytes: sc.compactMinGarbageBytes,
    compactCheckMs: sc.compactCheckMs,
    scrubIntervalMs: sc.scrubIntervalMs,
  };
}
