// kubestorage bench: the paper's workloads (MISSION "The paper's experiments") against an S3
// endpoint (SigV4) or a plain HTTP file server (nginx WebDAV on ext4: bench/nginx-baseline.sh).
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadClusterTarget } from '../bench/lib/cluster-target.ts';
import { loadAvg, machineInfo } from '../bench/lib/machine.ts';
import { type ExitStatus, startEmbedded, startNullServer } from '../bench/lib/proc.ts';
import { resultTable } from '../bench/lib/results-table.ts';
import {
  clusterProbe,
  pidTreeProbe,
  processTree,
  readPidfile,
  type ServerCpuProbe,
} from '../bench/lib/server-cpu.ts';
import { fmtInt, progress } from '../bench/lib/stats.ts';
import { lineChart, type Series } from '../bench/lib/svg.ts';
import { isLoopback, type Mode, Target } from '../bench/lib/target.ts';
import {
  parsePids,
  parseTargetSpec,
  parseTargets,
  type TargetSpec,
} from '../bench/lib/target-spec.ts';
import { Payloads, type PhaseResult, type Plan, runPlan } from '../bench/workloads/common.ts';
import { hotspotPlan } from '../bench/workloads/hotspot.ts';
import { preloadPlan } from '../bench/workloads/preload.ts';
import { readPlan } from '../bench/workloads/read.ts';
import { writePlan } from '../bench/workloads/write.ts';

export { parseTargets, type TargetSpec };

const USAGE = `usage: kubestorage bench <preload|read|write|hotspot|faults|zipf-cache|all|compare> [options]
  (faults: a local cluster, kill -9 mid-run; options in kubestorage bench faults --help)
  (hotspot --cluster: the hot-spot experiment on local clusters, cache on then off, with
   replica/cache markers; options in kubestorage bench hotspot --cluster --help)
  (zipf-cache: Zipf reads on two local clusters, cache on vs off, interleaved; options in
   kubestorage bench zipf-cache --help)
  --endpoint URL|embedded|cluster@DIR
                            target (default embedded: starts kubestorage server on a temp
                            dir; cluster@DIR: a kubestorage cluster up --data DIR, its first
                            gateway and the root keys of DIR/cluster.json)
  --server-pids P[,P…]      PIDs of the target's server processes: their CPU (and their
                            children's) per request is reported (embedded, cluster@DIR: known)
  --server-pidfile FILE     the same from a pidfile (nginx: DIR/nginx.pid; master + workers)
  --mode s3|http            SigV4 S3 (default) or plain PUT/GET of URL/bucket/key (nginx)
  --access-key K --secret-key S   S3 credentials (embedded: generated)
  --region R                SigV4 region (default us-east-1)
  --workers N               workers of the embedded server (default 1)
  --bucket B                bucket / top directory (default bench)
  --size 4KiB|40KiB|400KiB  object size (default 4KiB; plain bytes, KiB, MiB, KB, MB)
  --objects N               objects preloaded (default 10000)
  --subset K                random subset the reads hit (default min(2000, objects))
  --requests R              reads per read phase (default 20000)
  --writes W                new objects per write phase (default = requests)
  --hot H                   hot objects of the hot-spot phase (default 100)
  --hot-requests N          reads of the hot-spot phase (default = requests; 0 skips in all)
  --concurrency C[,C…]      requests in flight = keep-alive connections (default 50)
  --zipf s                  Zipf exponent of read frequencies (default 1.0)
  --seed N                  seed of payloads and request sequences (default 42)
  --duration-cap SECONDS    each phase stops after this long (default 60)
  --window SECONDS          latency-over-time window (default 1)
  --preload                 preload before read/hotspot (always for embedded)
  --ceiling-requests N      generator ceiling probe against a null server (default
                            min(requests, 20000); 0 skips)
  --targets a=URL,b=URL     compare: targets; URL may be 'embedded', 'cluster@DIR',
                            'http@URL' (plain HTTP) or 's3@URL', each optionally followed by
                            @pids=P,P… and/or @pidfile=FILE (server processes whose CPU is
                            measured, children included); run interleaved A B A B …
                            e.g. ks=embedded,ng=http@http://127.0.0.1:18080@pidfile=/x/nginx.pid
  Server CPU: user+sys of the target's processes over each phase (/proc), as µs per
  completed request; compare prints its ratio to the first target beside req/s. /proc
  counts 10 ms ticks per process: phases of a few seconds give figures within a few %.
  --rounds N                compare: rounds (default 2)
  --allow-remote            allow a non-loopback endpoint
  --json FILE               write results as JSON; SVG charts go next to it
                            (FILE.latency.svg, FILE.cdf.svg, FILE.throughput.svg)`;

export const COMMANDS = [
  'preload',
  'read',
  'write',
  'hotspot',
  'faults',
  'zipf-cache',
  'all',
  'compare',
] as const;
export type Command = (typeof COMMANDS)[number];

/** "4KiB" → 4096; "40KB" → 40000; "4096" → 4096. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|KB|MB|K|M)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${JSON.stringify(s)}`);
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult: Record<string, number> = {
    b: 1,
    kib: 1024,
    k: 1024,
    mib: 1024 ** 2,
    m: 1024 ** 2,
    kb: 1000,
    mb: 1e6,
  };
  const n = Math.round(Number(m[1]) * mult[unit]!);
  if (!(n >= 1)) throw new Error(`bad size ${JSON.stringify(s)}`);
  return n;
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: not a count: ${v}`);
  return n;
}

export function parseBenchArgs(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      endpoint: { type: 'string', default: 'embedded' },
      mode: { type: 'string', default: 's3' },
      'access-key': { type: 'string' },
      'secret-key': { type: 'string' },
      region: { type: 'string', default: 'us-east-1' },
      workers: { type: 'string', default: '1' },
      bucket: { type: 'string', default: 'bench' },
      size: { type: 'string', default: '4KiB' },
      objects: { type: 'string', default: '10000' },
      subset: { type: 'string' },
      requests: { type: 'string', default: '20000' },
      writes: { type: 'string' },
      hot: { type: 'string', default: '100' },
      'hot-requests': { type: 'string' },
      concurrency: { type: 'string', default: '50' },
      zipf: { type: 'string', default: '1.0' },
      seed: { type: 'string', default: '42' },
      'duration-cap': { type: 'string', default: '60' },
      window: { type: 'string', default: '1' },
      preload: { type: 'boolean', default: false },
      'ceiling-requests': { type: 'string' },
      targets: { type: 'string' },
      'server-pids': { type: 'string' },
      'server-pidfile': { type: 'string' },
      rounds: { type: 'string', default: '2' },
      tag: { type: 'string' },
      'allow-remote': { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return { help: true as const };
  const command = positionals[0] as Command | undefined;
  if (!command || !COMMANDS.includes(command)) {
    throw new Error(`bench: want one of ${COMMANDS.join('|')}\n${USAGE}`);
  }
  if (values.mode !== 's3' && values.mode !== 'http') throw new Error('--mode is s3 or http');
  const mode = values.mode as Mode;
  const objects = positiveInt('objects', values.objects);
  const requests = positiveInt('requests', values.requests);
  const concurrency = values.concurrency.split(',').map((c) => positiveInt('concurrency', c));
  if (concurrency.some((c) => c < 1)) throw new Error('--concurrency must be ≥ 1');
  const zipf = Number(values.zipf);
  if (!(zipf >= 0)) throw new Error('--zipf must be ≥ 0');
  const capSeconds = Number(values['duration-cap']);
  if (!(capSeconds > 0)) throw new Error('--duration-cap must be > 0');
  if (command === 'compare' && !values.targets) throw new Error('compare needs --targets');
  const targets =
    command === 'compare'
      ? parseTargets(values.targets ?? '', mode)
      : [singleTarget(values.endpoint, mode, values['server-pids'], values['server-pidfile'])];
  if (command === 'compare' && (values['server-pids'] || values['server-pidfile'])) {
    throw new Error('compare: give PIDs per target, NAME=URL@pids=P,P or @pidfile=FILE');
  }
  for (const t of targets) {
    if (t.cluster) continue; // its gateways are known once cluster.json is read
    if (t.endpoint !== 'embedded' && !values['allow-remote'] && !isLoopback(t.endpoint)) {
      throw new Error(`${t.endpoint} is not loopback (--allow-remote to override)`);
    }
  }
  return {
    help: false as const,
    command,
    targets,
    accessKey: values['access-key'],
    secretKey: values['secret-key'],
    region: values.region,
    workers: values.workers,
    bucket: values.bucket,
    size: parseSize(values.size),
    objects,
    subset:
      values.subset === undefined ? Math.min(2000, objects) : positiveInt('subset', values.subset),
    requests,
    writes: values.writes === undefined ? requests : positiveInt('writes', values.writes),
    hot: positiveInt('hot', values.hot),
    hotRequests:
      values['hot-requests'] === undefined
        ? requests
        : positiveInt('hot-requests', values['hot-requests']),
    concurrency,
    zipf,
    seed: positiveInt('seed', values.seed),
    capSeconds,
    windowSeconds: Number(values.window),
    preload: values.preload,
    ceilingRequests:
      values['ceiling-requests'] === undefined
        ? Math.min(requests, 20000)
        : positiveInt('ceiling-requests', values['ceiling-requests']),
    rounds: positiveInt('rounds', values.rounds),
    allowRemote: values['allow-remote'],
    tag: values.tag ?? Date.now().toString(36),
    json: values.json,
  };
}
type Args = Exclude<ReturnType<typeof parseBenchArgs>, { help: true }>;

/** --endpoint with --server-pids / --server-pidfile folded in. */
function singleTarget(endpoint: string, mode: Mode, pids?: string, pidfile?: string): TargetSpec {
  const t = parseTargetSpec('target', endpoint, mode);
  if ((pids || pidfile) && (t.endpoint === 'embedded' || t.cluster)) {
    throw new Error(`--server-pids/--server-pidfile: ${t.endpoint} knows its own processes`);
  }
  if (pids) t.pids = [...(t.pids ?? []), ...parsePids(pids)];
  if (pidfile) t.pidfiles = [...(t.pidfiles ?? []), pidfile];
  return t;
}

interface Opened {
  spec: TargetSpec;
  target: Target;
  embedded: boolean;
  /** The server's processes, when known: CPU per request in every phase. */
  cpu?: ServerCpuProbe;
  stop?: () => Promise<ExitStatus>;
}

const EMBED_KEY = 'BENCHKEY00000000';
const EMBED_SECRET = 'benchsecret0000000000000000000000000000';

async function open(spec: TargetSpec, a: Args): Promise<Opened> {
  const connections = Math.max(...a.concurrency);
  if (spec.endpoint === 'embedded') {
    const s = await startEmbedded({
      accessKey: EMBED_KEY,
      secretKey: EMBED_SECRET,
      workers: a.workers,
    });
    progress(
      `${spec.name}: kubestorage server --workers ${a.workers} on ${s.endpoint} (${s.dataDir})`,
    );
    const target = new Target({
      endpoint: s.endpoint,
      mode: 's3',
      connections,
      accessKey: EMBED_KEY,
      secretKey: EMBED_SECRET,
      region: a.region,
    });
    const cpu = pidTreeProbe([s.child.pid!], `kubestorage server pid ${s.child.pid}`);
    progress(`${spec.name}: server CPU of ${cpu.what}`);
    const opened = { spec: { ...spec, endpoint: s.endpoint }, target, embedded: true, cpu };
    return { ...opened, stop: s.stop };
  }
  if (spec.cluster) return openCluster(spec, spec.cluster, a, connections);
  const target = new Target({
    endpoint: spec.endpoint,
    mode: spec.mode,
    connections,
    accessKey: a.accessKey,
    secretKey: a.secretKey,
    region: a.region,
  });
  const cpu = pidProbe(spec);
  if (cpu) progress(`${spec.name}: server CPU of ${cpu.what}`);
  return { spec, target, embedded: false, cpu };
}

/** The probe of --server-pids / @pids and pidfiles, which must name live processes. */
function pidProbe(spec: TargetSpec): ServerCpuProbe | undefined {
  const files = spec.pidfiles ?? [];
  const roots = [...(spec.pids ?? []), ...files.map(readPidfile)];
  if (roots.length === 0) return undefined;
  const alive = processTree(roots);
  const dead = roots.filter((p) => !alive.includes(p));
  if (dead.length > 0) throw new Error(`${spec.name}: no process ${dead.join(', ')}`);
  const what = [
    ...(spec.pids?.length ? [`pids ${spec.pids.join(',')}`] : []),
    ...files.map((f) => `pid ${readPidfile(f)} of ${f}`),
  ].join(', ');
  return pidTreeProbe(roots, what);
}

/** A `kubestorage cluster up --data DIR`: its first gateway, its root keys, all its processes. */
function openCluster(spec: TargetSpec, dir: string, a: Args, connections: number): Opened {
  const ct = loadClusterTarget(dir, a);
  if (!a.allowRemote && !isLoopback(ct.endpoint)) {
    throw new Error(`${ct.endpoint} is not loopback (--allow-remote to override)`);
  }
  const target = new Target({
    endpoint: ct.endpoint,
    mode: 's3',
    connections,
    accessKey: ct.accessKey,
    secretKey: ct.secretKey,
    region: a.region,
  });
  const cpu = clusterProbe(ct.cluster, dir);
  progress(`${spec.name}: cluster gateway ${ct.endpoint}; server CPU of ${cpu.what}`);
  return { spec: { ...spec, endpoint: ct.endpoint }, target, embedded: false, cpu };
}

async function close(o: Opened): Promise<void> {
  await o.target.close();
  if (o.stop) {
    const code = await o.stop();
    if (code !== 0) progress(`${o.spec.name}: kubestorage server exited with ${code}`);
  }
}

/** The plans of one command at one concurrency (preload excluded). */
function plans(
  a: Args,
  which: 'read' | 'write' | 'hotspot',
  payloads: Payloads,
  tag: string,
): Plan {
  const base = { bucket: a.bucket, size: a.size, objects: a.objects, seed: a.seed };
  if (which === 'read') {
    return readPlan({ ...base, subset: a.subset, requests: a.requests, zipf: a.zipf });
  }
  if (which === 'write') return writePlan(a.bucket, a.writes, tag, payloads);
  return hotspotPlan({ ...base, hot: a.hot, requests: a.hotRequests });
}

function phasesOf(a: Args): ('read' | 'write' | 'hotspot')[] {
  switch (a.command) {
    case 'read':
    case 'write':
    case 'hotspot':
      return [a.command];
    case 'all':
    case 'compare':
      return a.hotRequests > 0 ? ['read', 'write', 'hotspot'] : ['read', 'write'];
    default:
      return [];
  }
}

async function ceiling(a: Args, payloads: Payloads): Promise<PhaseResult[]> {
  if (a.ceilingRequests === 0) return [];
  const ns = await startNullServer(a.size);
  const c = Math.max(...a.concurrency);
  const t = new Target({
    endpoint: ns.endpoint,
    mode: 's3',
    connections: c,
    accessKey: 'K',
    secretKey: 'S',
  });
  try {
    const o = {
      concurrency: c,
      capSeconds: Math.min(a.capSeconds, 30),
      windowSeconds: a.windowSeconds,
    };
    // Warm-up (JIT, connections), not recorded.
    await runPlan(t, writePlan(a.bucket, Math.min(a.ceilingRequests, 5000), 'warm', payloads), {
      ...o,
      quiet: true,
    });
    const get = await runPlan(
      t,
      {
        ...readPlan({
          bucket: a.bucket,
          size: a.size,
          objects: a.objects,
          subset: a.subset,
          requests: a.ceilingRequests,
          zipf: a.zipf,
          seed: a.seed,
        }),
        phase: 'ceiling GET',
      },
      o,
    );
    const put = await runPlan(
      t,
      { ...writePlan(a.bucket, a.ceilingRequests, 'null', payloads), phase: 'ceiling PUT' },
      o,
    );
    return [get, put];
  } finally {
    await t.close();
    await ns.stop();
  }
}

/**
 * Flags results that may be the load generator's limit rather than the target's: at ≥ 70 %
 * of the same op's req/s against the null server, or with the generator's own process at
 * ≥ 85 % CPU (its JS runs on one thread).
 */
export function flag(results: PhaseResult[], ceil: PhaseResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    if (r.phase === 'preload') continue;
    const c = ceil.find((x) => x.op === r.op);
    const why: string[] = [];
    if (c && r.reqPerSec > 0.7 * c.reqPerSec) {
      why.push(`${((100 * r.reqPerSec) / c.reqPerSec).toFixed(0)}% of the null-server ceiling`);
    }
    if (r.generatorCpuPercent >= 85) {
      why.push(`generator CPU ${r.generatorCpuPercent.toFixed(0)}%`);
    }
    if (why.length > 0) {
      const who = (r as { target?: string }).target;
      out.push(
        `${who ? `${who} ` : ''}${r.phase} c=${r.concurrency}: ${fmtInt(r.reqPerSec)} req/s (${why.join(', ')})`,
      );
    }
  }
  return out;
}

interface Labeled extends PhaseResult {
  target: string;
  round?: number;
}

export function charts(results: Labeled[], base: string, multiTarget: boolean): string[] {
  const name = (r: Labeled) =>
    `${multiTarget ? `${r.target} ` : ''}${r.phase} c=${r.concurrency}${r.round !== undefined ? ` #${r.round}` : ''}`;
  const files: string[] = [];
  const write = (suffix: string, svg: string) => {
    const f = `${base}.${suffix}.svg`;
    fs.writeFileSync(f, svg);
    files.push(f);
  };
  const timed = results.filter((r) => r.requests > 0);
  write(
    'latency',
    lineChart({
      title: 'Mean latency over time (per window)',
      xLabel: 'seconds since phase start',
      yLabel: 'mean latency (ms)',
      logY: true,
      series: timed.map((r) => ({
        name: name(r),
        points: r.windows.map((w) => [w.t, w.mean] as [number, number]),
      })),
    }),
  );
  write(
    'cdf',
    lineChart({
      title: 'Latency CDF',
      xLabel: 'latency (ms, log)',
      yLabel: 'share of requests ≤ x',
      logX: true,
      series: timed.map((r) => ({ name: name(r), points: r.cdf })),
    }),
  );
  const groups = new Map<string, Series>();
  for (const r of timed) {
    const k = `${multiTarget ? `${r.target} ` : ''}${r.phase}`;
    let s = groups.get(k);
    if (!s) groups.set(k, (s = { name: k, points: [] }));
    s.points.push([r.concurrency, r.reqPerSec]);
  }
  for (const s of groups.values()) s.points.sort((x, y) => x[0] - y[0]);
  write(
    'throughput',
    lineChart({
      title: 'Throughput by concurrency',
      xLabel: 'concurrency (log)',
      yLabel: 'req/s',
      logX: true,
      series: [...groups.values()],
    }),
  );
  return files;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Ratio rows of a compare run: per phase and concurrency, medians per target vs the first. */
export function ratios(results: Labeled[], targets: string[]) {
  const rows: Record<string, unknown>[] = [];
  const keys = [...new Set(results.map((r) => `${r.phase}\u0000${r.concurrency}`))];
  for (const k of keys) {
    const [phase, c] = k.split('\u0000');
    const row: Record<string, unknown> = { phase, concurrency: Number(c) };
    const med: Record<string, { rps: number; mean: number; cpu: number | null }> = {};
    for (const t of targets) {
      const rs = results.filter(
        (r) => r.target === t && r.phase === phase && r.concurrency === Number(c),
      );
      if (rs.length === 0) continue;
      const cpus = rs.map((r) => r.serverCpuUsPerReq);
      med[t] = {
        rps: median(rs.map((r) => r.reqPerSec)),
        mean: median(rs.map((r) => r.latencyMs.mean)),
        // Only when every round was measured: a median of some rounds would mislead.
        cpu: cpus.every((x) => typeof x === 'number') ? median(cpus as number[]) : null,
      };
      row[`${t} req/s`] = Math.round(med[t].rps);
      row[`${t} mean ms`] = +med[t].mean.toFixed(2);
      if (med[t].cpu !== null) row[`${t} server µs/req`] = +med[t].cpu.toPrecision(3);
      row[`${t} errors`] = rs.reduce((s, r) => s + r.errors, 0);
    }
    const first = med[targets[0]!];
    for (const t of targets.slice(1)) {
      const m = med[t];
      if (!first || !m) continue;
      row[`${t}/${targets[0]} req/s`] = +(m.rps / first.rps).toFixed(2);
      if (first.cpu !== null && first.cpu > 0 && m.cpu !== null) {
        // Significant digits: a server 20× cheaper is 0.0512, not 0.05.
        row[`${t}/${targets[0]} server CPU/req`] = +(m.cpu / first.cpu).toPrecision(3);
      }
    }
    rows.push(row);
  }
  return rows;
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'faults') {
    // Its own options: it runs a whole cluster rather than one endpoint.
    const { faultsCommand } = await import('../bench/workloads/faults.ts');
    await faultsCommand(argv.slice(1), parseSize);
    return;
  }
  if (argv[0] === 'zipf-cache' || (argv[0] === 'hotspot' && argv.includes('--cluster'))) {
    // The cache benchmarks (issue 14): local clusters of their own, their own options.
    const c = await import('../bench/workloads/cache-cluster.ts');
    const rest = argv.slice(1).filter((x) => x !== '--cluster');
    if (argv[0] === 'zipf-cache') await c.zipfCacheCommand(rest, parseSize);
    else await c.hotspotClusterCommand(rest, parseSize);
    return;
  }
  const a0 = parseBenchArgs(argv);
  if (a0.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const a = a0;
  const started = new Date().toISOString();
  const payloads = new Payloads(a.size, a.seed);
  const out: Record<string, unknown> = {
    command: `kubestorage bench ${argv.join(' ')}`,
    date: started,
    machine: { ...machineInfo(), loadAvg: loadAvg() },
    settings: { ...a, help: undefined, json: undefined },
  };
  const ceil = await ceiling(a, payloads);
  if (ceil.length > 0) {
    out.generatorCeiling = ceil;
    progress(
      `generator ceiling at c=${Math.max(...a.concurrency)}: GET ${fmtInt(ceil[0]!.reqPerSec)} req/s, PUT ${fmtInt(ceil[1]!.reqPerSec)} req/s`,
    );
  }
  const opened: Opened[] = [];
  const results: Labeled[] = [];
  try {
    for (const spec of a.targets) opened.push(await open(spec, a));
    const po = { concurrency: 0, capSeconds: a.capSeconds, windowSeconds: a.windowSeconds };
    for (const o of opened) {
      await o.target.createBucket(a.bucket);
      if (
        a.command === 'preload' ||
        a.command === 'all' ||
        a.command === 'compare' ||
        a.preload ||
        (o.embedded && (a.command === 'read' || a.command === 'hotspot'))
      ) {
        const r = await runPlan(o.target, preloadPlan(a.bucket, a.objects, payloads), {
          ...po,
          concurrency: Math.min(...a.concurrency.map((c) => Math.max(c, 64))),
          serverCpu: o.cpu,
        });
        results.push({ ...r, target: o.spec.name });
        if (r.errors > 0)
          throw new Error(`${o.spec.name}: preload had ${r.errors} errors: ${r.firstError}`);
      }
    }
    const rounds = a.command === 'compare' ? a.rounds : 1;
    for (let round = 0; round < rounds; round++) {
      for (const c of a.concurrency) {
        for (const phase of phasesOf(a)) {
          for (const o of opened) {
            if (a.command === 'compare') progress(`round ${round + 1}/${rounds}: ${o.spec.name}`);
            const r = await runPlan(o.target, plans(a, phase, payloads, `${a.tag}-${round}-${c}`), {
              ...po,
              concurrency: c,
              serverCpu: o.cpu,
            });
            results.push({
              ...r,
              target: o.spec.name,
              round: a.command === 'compare' ? round : undefined,
            });
          }
        }
      }
    }
  } finally {
    for (const o of opened) await close(o);
  }
  out.targets = opened.map((o) => ({ ...o.spec, serverCpu: o.cpu?.what ?? null }));
  out.results = results;
  const flags = flag(results, ceil);
  out.generatorBound = flags;
  for (const f of flags) progress(`WARNING, maybe generator-bound: ${f}`);
  // stdout carries the JSON when there is no --json file: the table goes to stderr then.
  const jsonOnStdout = !a.json && a.command !== 'compare';
  const table = `${resultTable(results)}\n`;
  if (jsonOnStdout) process.stderr.write(table);
  else process.stdout.write(table);
  if (a.command === 'compare') {
    const names = opened.map((o) => o.spec.name);
    const rows = ratios(
      results.filter((r) => r.phase !== 'preload'),
      names,
    );
    out.ratios = rows;
    for (const row of rows) {
      process.stdout.write(
        `${Object.entries(row)
          .map(([k, v]) => `${k}: ${v}`)
          .join('  ')}\n`,
      );
    }
  }
  if (a.json) {
    fs.writeFileSync(a.json, `${JSON.stringify(out, null, 2)}\n`);
    const base = a.json.replace(/\.json$/, '');
    const files = charts(results, base, opened.length > 1);
    progress(`wrote ${a.json}, ${files.join(', ')}`);
  } else if (a.command !== 'compare') {
    process.stdout.write(
      `${JSON.stringify({ ...out, results: results.map((r) => ({ ...r, cdf: undefined, windows: undefined })) }, null, 2)}\n`,
    );
  }
}
