// `kubestorage bench faults`: its options, a cluster of its own (or a running one), the
// run, and the table, JSON and SVG.
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { type ClusterFile, readClusterFile } from '../../../cli/cluster.ts';
import { progress } from '../../lib/stats.ts';
import { type OwnCluster, startCluster } from './cluster.ts';
import { DEFAULTS, type FaultsOptions, parseDuration } from './options.ts';
import { describeFaults, faultsChart } from './report.ts';
import { type FaultsResult, runFaults } from './run.ts';

export const FAULTS_USAGE = `usage: kubestorage bench faults [options]
  Starts a local cluster (3 directories, 4 stores in zones z1/z2, 2 gateways, 2 replicas),
  preloads objects, runs a paced random read/write load over both gateways, kill -9s the
  directory leader and every store of zone z1 mid-run, then reads every acknowledged
  object back. Requests are retried like the AWS SDK's standard mode (3 attempts).
  --data DIR            cluster data and logs (default a temp dir, removed unless --keep)
  --cluster FILE        use a running cluster's cluster.json instead (its processes get killed)
  --port-base P         ports of the cluster (default a free random range)
  --duration 40s        load duration
  --kill-at 15s         when to kill
  --size 40KiB          object size
  --objects N           objects preloaded (default ${DEFAULTS.objects})
  --concurrency C       requests in flight (default ${DEFAULTS.concurrency})
  --rate R              operations started per second, 0 = unpaced (default ${DEFAULTS.rate})
  --read-ratio 0.8      share of reads
  --kill-zone z1        zone whose stores die
  --seed N              seed of payloads and the operation mix (default 42)
  --keep                keep the temp data dir (logs in DIR/logs)
  --json FILE           write results as JSON and the chart to FILE.svg (without .json)`;

export function parseFaultsArgs(argv: string[], parseSize: (s: string) => number) {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      cluster: { type: 'string' },
      'port-base': { type: 'string' },
      duration: { type: 'string', default: `${DEFAULTS.durationS}s` },
      'kill-at': { type: 'string', default: `${DEFAULTS.killAtS}s` },
      size: { type: 'string', default: '40KiB' },
      objects: { type: 'string', default: String(DEFAULTS.objects) },
      concurrency: { type: 'string', default: String(DEFAULTS.concurrency) },
      rate: { type: 'string', default: String(DEFAULTS.rate) },
      'read-ratio': { type: 'string', default: String(DEFAULTS.readRatio) },
      'kill-zone': { type: 'string', default: DEFAULTS.killZone },
      seed: { type: 'string', default: String(DEFAULTS.seed) },
      keep: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const int = (name: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: an integer ≥ ${min}`);
    return n;
  };
  const readRatio = Number(values['read-ratio']);
  if (!(readRatio >= 0 && readRatio <= 1)) throw new Error('--read-ratio: 0..1');
  const opts: Omit<FaultsOptions, 'log'> = {
    ...DEFAULTS,
    durationS: parseDuration(values.duration),
    killAtS: parseDuration(values['kill-at']),
    size: parseSize(values.size),
    objects: int('objects', values.objects, 1),
    concurrency: int('concurrency', values.concurrency, 1),
    rate: int('rate', values.rate, 0),
    readRatio,
    killZone: values['kill-zone'],
    seed: int('seed', values.seed, 0),
  };
  if (!(opts.killAtS < opts.durationS)) throw new Error('--kill-at must be before --duration');
  return {
    help: !!values.help,
    opts,
    data: values.data,
    cluster: values.cluster,
    portBase:
      values['port-base'] === undefined ? undefined : int('port-base', values['port-base'], 1024),
    keep: values.keep,
    json: values.json,
  };
}

export async function faultsCommand(
  argv: string[],
  parseSize: (s: string) => number,
): Promise<void> {
  const a = parseFaultsArgs(argv, parseSize);
  if (a.help) {
    process.stdout.write(`${FAULTS_USAGE}\n`);
    return;
  }
  let own: OwnCluster | undefined;
  const onSignal = () => {
    progress('interrupted: stopping the cluster');
    void (own?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: FaultsResult;
  try {
    let cluster: ClusterFile;
    if (a.cluster) {
      cluster = readClusterFile(a.cluster);
    } else {
      own = await startCluster({ dir: a.data, portBase: a.portBase, keep: a.keep });
      cluster = own.cluster;
      progress(`cluster up in ${own.dir} (logs in ${own.dir}/logs)`);
    }
    result = await runFaults(cluster, a.opts);
  } finally {
    await own?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(describeFaults(result));
  if (a.json) {
    const out = {
      command: `kubestorage bench faults ${argv.join(' ')}`,
      date: new Date().toISOString(),
      machine: {
        cores: os.availableParallelism?.() ?? os.cpus().length,
        loadAvg: os.loadavg().map((x) => +x.toFixed(2)),
        node: process.version,
      },
      ...result,
    };
    fs.writeFileSync(a.json, `${JSON.stringify(out, null, 2)}\n`);
    const svg = `${a.json.replace(/\.json$/, '')}.svg`;
    fs.writeFileSync(svg, faultsChart(result));
    progress(`wrote ${a.json}, ${svg}`);
  }
}
