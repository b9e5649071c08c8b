// kubestorage admin: users and access keys of a running server, through its admin API
// (SigV4-signed with the root credentials).
import { parseArgs } from 'node:util';
import { signRequest, uriEncode } from '../gateway/auth/sigv4.ts';

const HELP = `usage: kubestorage admin <user|key> <command> [args] [--endpoint URL]
       kubestorage admin raft <status|add|remove|transfer> ...   (admin raft --help)
       kubestorage admin store <list|volumes|remove ID|drain ID|wait-drained> ...  (admin store --help)
       kubestorage admin cache status [--json] ...   hot objects, extra replicas, cache counters
       kubestorage admin metrics-token [--data DIR]  the bearer token of /metrics and /_ks/metrics

  user add NAME          create a user with a first access key (prints the secret once)
  user list              users and their access keys
  user remove NAME       remove a user (it must own no buckets)
  key add USER           add an access key to a user (prints the secret once)
  key remove ACCESS_KEY  remove an access key

  --endpoint URL     server to administer (default http://127.0.0.1:9000)
  --access-key K     root access key (default $KUBESTORAGE_ROOT_ACCESS_KEY or $AWS_ACCESS_KEY_ID)
  --secret-key S     root secret key (default $KUBESTORAGE_ROOT_SECRET_KEY or $AWS_SECRET_ACCESS_KEY)
`;

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'store') {
    const store = await import('./admin-store.ts');
    await store.main(argv.slice(1));
    return;
  }
  if (argv[0] === 'cache') {
    const cache = await import('./admin-cache.ts');
    await cache.main(argv.slice(1));
    return;
  }
  if (argv[0] === 'directory') return (await import('./admin-directory.ts')).main(argv.slice(1));
  if (argv[0] === 'metrics-token') return (await import('./admin-metrics.ts')).main(argv.slice(1));
  if (argv[0] === 'raft') {
    const raft = await import('./admin-raft.ts');
    await raft.main(argv.slice(1));
    return;
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      endpoint: { type: 'string', default: 'http://127.0.0.1:9000' },
      'access-key': { type: 'string' },
      'secret-key': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [noun, verb, arg] = positionals;
  if (values.help || !noun || !verb) {
    process.stdout.write(HELP);
    if (!values.help) process.exitCode = 2;
    return;
  }
  const accessKey =
    values['access-key'] ??
    process.env.KUBESTORAGE_ROOT_ACCESS_KEY ??
    process.env.AWS_ACCESS_KEY_ID;
  const secretKey =
    values['secret-key'] ??
    process.env.KUBESTORAGE_ROOT_SECRET_KEY ??
    process.env.AWS_SECRET_ACCESS_KEY;
  if (!accessKey || !secretKey)
    throw new Error('root credentials needed: --access-key/--secret-key or KUBESTORAGE_ROOT_* env');
  const call: Record<string, [string, string, string?]> = {
    'user add': ['POST', 'users', 'id'],
    'user list': ['GET', 'users'],
    'user remove': ['DELETE', 'users', 'id'],
    'key add': ['POST', 'keys', 'user'],
    'key remove': ['DELETE', 'keys', 'accessKey'],
  };
  const c = call[`${noun} ${verb}`];
  if (!c) throw new Error(`unknown admin command: ${noun} ${verb}\n${HELP}`);
  const [method, what, param] = c;
  if (param && !arg) throw new Error(`admin ${noun} ${verb} needs an argument`);
  const url = new URL(values.endpoint!);
  const rawPath = `/_ks/admin/${what}`;
  const query: [string, string][] = param ? [[param, arg!]] : [];
  const signed = signRequest({
    method,
    rawPath,
    query,
    headers: { host: url.host },
    accessKey,
    secretKey,
  });
  const qs = query.map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`).join('&');
  const res = await fetch(`${url.origin}${rawPath}${qs ? `?${qs}` : ''}`, {
    method,
    headers: signed.headers,
  });
  const text = await res.text();
  if (!res.ok) {
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? res.status;
    const msg = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? text;
    process.stderr.write(`kubestorage admin: ${code}: ${msg}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`${JSON.stringify(JSON.parse(text), null, 2)}\n`);
}
