// kubestorage admin metrics-token: the bearer token Prometheus sends to a store's /metrics
// and a gateway's /_ks/metrics. It is derived from the cluster secret (KUBESTORAGE_CLUSTER_SECRET
// or the config file), or for `npm start` from DIR/secret.key, so it is never stored.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { loadSecretFile } from '../gateway/secret-box.ts';

const HELP = `usage: kubestorage admin metrics-token [--data DIR] [--config FILE]
  --data DIR     an embedded server's data directory (npm start): from DIR/secret.key
  otherwise      from the cluster secret (KUBESTORAGE_CLUSTER_SECRET or --config's clusterSecret)
`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  let secret: string;
  if (values.data) {
    const file = path.join(values.data, 'secret.key');
    // loadSecretFile would make one: a mistyped DIR must not get a token nothing checks.
    if (!fs.existsSync(file)) {
      process.stderr.write(
        `${file} does not exist: is ${values.data} a server's data directory?\n`,
      );
      process.exitCode = 2;
      return;
    }
    secret = loadSecretFile(file);
  } else {
    secret = loadConfig({ file: values.config }).clusterSecret;
    if (!secret) {
      process.stderr.write(
        `no cluster secret: set KUBESTORAGE_CLUSTER_SECRET or pass --data\n${HELP}`,
      );
      process.exitCode = 2;
      return;
    }
  }
  process.stdout.write(`${new InternalAuth(secret).metricsToken}\n`);
}
