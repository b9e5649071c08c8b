// The directory bench's command line.
import { parseArgs } from 'node:util';

export const USAGE = `usage: npm run bench:directory -- [options]
  --phases LIST            commit,list (default both)
  --concurrency C          commit: proposals in flight (default 256)
  --clients K              commit: MetadataClient instances sharing them (default 8)
  --connections N          connections per client and replica (default ceil(C/K))
  --commit-duration SEC    commit: measured seconds per target (default 20)
  --warmup SEC             commit: unmeasured seconds first (default 3)
  --commit-targets LIST    leader,follower (default both)
  --replicas N             directory replicas (default 3; 1 = no replication, for comparison)
  --tick-ms N              Raft tick of the replicas (default: the directory's, 50)
  --keys N                 list: keys in the listed bucket (default 1000000)
  --preload-concurrency C  list: putObject calls in flight while preloading (default 512)
  --preload-cap SEC        list: stop preloading after this long and list what is there
                           (default 600)
  --walk-pages N           list: pages per whole-bucket walk at most (default: all)
  --random-pages N         list: pages at random start-after points per target (default 300)
  --list-warmup N          list: unmeasured random pages per target first (default 200): JIT,
                           caches and connections warm, as in a server that has been up a while
  --list-cap SEC           list: each walk stops after this long (default 120)
  --page-size N            list: keys per page (default 1000)
  --no-s3                  list: skip the S3 gateway part
  --reuse DIR              keep the replicas' data (and the preloaded bucket) in DIR and reuse
                           it next time (same ports); default: a fresh temp dir, removed
  --directory-node-args=S  extra node flags for the replicas (note the "="; after the
                           servers' own, cli/node-flags.ts), e.g.
                           --directory-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
                           (profiles are written when the replicas stop)
  --gateway-node-args=S    extra node flags for the S3 gateway process, likewise
  --seed S                 PRNG seed (default 1)
  --json FILE              write the results as JSON`;

export function parse() {
  const { values } = parseArgs({
    options: {
      phases: { type: 'string', default: 'commit,list' },
      concurrency: { type: 'string', default: '256' },
      clients: { type: 'string', default: '8' },
      connections: { type: 'string' },
      'commit-duration': { type: 'string', default: '20' },
      warmup: { type: 'string', default: '3' },
      'commit-targets': { type: 'string', default: 'leader,follower' },
      'tick-ms': { type: 'string' },
      replicas: { type: 'string', default: '3' },
      keys: { type: 'string', default: '1000000' },
      'preload-concurrency': { type: 'string', default: '512' },
      'preload-cap': { type: 'string', default: '600' },
      'walk-pages': { type: 'string' },
      'list-warmup': { type: 'string', default: '200' },
      'random-pages': { type: 'string', default: '300' },
      'list-cap': { type: 'string', default: '120' },
      'page-size': { type: 'string', default: '1000' },
      'no-s3': { type: 'boolean', default: false },
      reuse: { type: 'string' },
      'directory-node-args': { type: 'string', default: '' },
      'gateway-node-args': { type: 'string', default: '' },
      seed: { type: 'string', default: '1' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const num = (name: string, v: string | undefined, min: number, int = true): number => {
    const n = Number(v?.replace(/_/g, ''));
    if (!Number.isFinite(n) || n < min || (int && !Number.isSafeInteger(n))) {
      process.stderr.write(`--${name} must be ${int ? 'an integer' : 'a number'} ≥ ${min}\n`);
      process.exit(2);
    }
    return n;
  };
  const list = (name: string, v: string, allowed: string[]): string[] => {
    const xs = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const x of xs) {
      if (!allowed.includes(x)) {
        process.stderr.write(`--${name}: one or more of ${allowed.join(',')}\n`);
        process.exit(2);
      }
    }
    return xs;
  };
  const concurrency = num('concurrency', values.concurrency, 1);
  const clients = Math.min(concurrency, num('clients', values.clients, 1));
  return {
    phases: list('phases', values.phases, ['commit', 'list']),
    concurrency,
    clients,
    connections:
      values.connections === undefined
        ? Math.ceil(concurrency / clients)
        : num('connections', values.connections, 1),
    commitSeconds: num('commit-duration', values['commit-duration'], 1, false),
    warmupSeconds: num('warmup', values.warmup, 0, false),
    commitTargets: list('commit-targets', values['commit-targets'], ['leader', 'follower']),
    replicas: num('replicas', values.replicas, 1),
    tickMs: values['tick-ms'] === undefined ? undefined : num('tick-ms', values['tick-ms'], 1),
    keys: num('keys', values.keys, 1),
    preloadConcurrency: num('preload-concurrency', values['preload-concurrency'], 1),
    preloadCapSeconds: num('preload-cap', values['preload-cap'], 1, false),
    walkPages:
      values['walk-pages'] === undefined ? Infinity : num('walk-pages', values['walk-pages'], 0),
    randomPages: num('random-pages', values['random-pages'], 0),
    listWarmup: num('list-warmup', values['list-warmup'], 0),
    listCapSeconds: num('list-cap', values['list-cap'], 1, false),
    pageSize: num('page-size', values['page-size'], 1),
    s3: !values['no-s3'],
    reuse: values.reuse,
    nodeArgs: values['directory-node-args'].split(/\s+/).filter(Boolean),
    gatewayNodeArgs: values['gateway-node-args'].split(/\s+/).filter(Boolean),
    seed: num('seed', values.seed, 0),
    json: values.json,
  };
}
export type Args = ReturnType<typeof parse>;
