// kubestorage server (npm start): gateway + metadata + one store node in one process,
// data under ./data. Prints the endpoint and root credentials (generated on first start
// unless KUBESTORAGE_ROOT_ACCESS_KEY / KUBESTORAGE_ROOT_SECRET_KEY are set).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../common/config.ts';
import { createLogger } from '../common/log.ts';
import { LevelMetadata } from '../directory/meta-level.ts';
import { createGatewayServer } from '../gateway/app.ts';
import { ObjectData } from '../gateway/data.ts';
import { EmbeddedPlacement } from '../gateway/placement.ts';
import { ensureRootCredentials } from '../gateway/users.ts';
import { LocalNeedleStore } from '../store-node/api.ts';
import { Store } from '../store-node/store.ts';
import { onShutdown, parseListen } from './common.ts';

const HELP = `usage: kubestorage server [--data DIR] [--listen HOST:PORT] [--domain DOMAIN]

  --data DIR          data directory (default ./data): meta/ and store/ inside
  --listen HOST:PORT  S3 endpoint (default 127.0.0.1:9000)
  --domain DOMAIN     also accept virtual-host style requests to <bucket>.DOMAIN
  --config FILE       JSON config file; KUBESTORAGE_* environment variables override it
`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      listen: { type: 'string' },
      domain: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const cfg = loadConfig({ file: values.config });
  const dataDir = values.data ?? cfg.server.data;
  const listen = values.listen ?? cfg.server.listen;
  const log = createLogger('server', cfg.logLevel);
  const meta = await LevelMetadata.open(path.join(dataDir, 'meta'));
  const store = await Store.open(path.join(dataDir, 'store'), {
    maxSize: cfg.store.maxVolumeSize,
    fsync: cfg.store.fsync,
    compression: cfg.store.compression,
    compactGarbageRatio: cfg.store.compactGarbageRatio,
    compactMinGarbageBytes: cfg.store.compactMinGarbageBytes,
    compactCheckMs: cfg.store.compactCheckMs,
    scrubIntervalMs: cfg.store.scrubIntervalMs,
  });
  store.startMaintenance();
  const needles = new LocalNeedleStore(store);
  const data = new ObjectData(needles, new EmbeddedPlacement(meta, needles), undefined, log);
  const creds = await ensureRootCredentials(
    meta,
    process.env.KUBESTORAGE_ROOT_ACCESS_KEY || cfg.server.rootAccessKey,
    process.env.KUBESTORAGE_ROOT_SECRET_KEY || cfg.server.rootSecretKey,
  );
  const server = createGatewayServer({
    meta,
    data,
    log,
    config: {
      region: cfg.gateway.region,
      domain: values.domain ?? (cfg.gateway.domain || undefined),
      maxObjectSize: cfg.gateway.maxObjectSize,
    },
  });
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  log.info({ endpoint, data: path.resolve(dataDir) }, 'kubestorage listening');
  process.stdout.write(
    [
      '',
      `Kubestorage S3 endpoint: ${endpoint}`,
      `  access key: ${creds.accessKey}`,
      `  secret key: ${creds.secretKey}${creds.created ? '   (generated now, stored in the metadata)' : ''}`,
      '',
      'Try it:',
      `  AWS_ACCESS_KEY_ID=${creds.accessKey} AWS_SECRET_ACCESS_KEY=${creds.secretKey} AWS_DEFAULT_REGION=${cfg.gateway.region} \\`,
      `    aws --endpoint-url ${endpoint} s3 mb s3://demo`,
      '',
    ].join('\n'),
  );
  onShutdown(log, async () => {
    await new Promise<void>((r) => {
      server.close(() => r());
      (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    });
    await store.close();
    await meta.close();
  });
}
