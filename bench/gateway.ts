// End-to-end S3 benchmark of the gateway: small-object PUT then GET over keep-alive HTTP.
//
//   npm run bench:gateway -- --workers 2 --objects 20000 --json /tmp/gw2.json
//   npm run bench:gateway -- --endpoint http://host:9000 --access-key K --secret-key S
//
// Without --endpoint it starts `kubestorage server --workers N` as a child process on a
// fresh temp data dir (loopback, fsync on, default settings), creates a bucket, PUTs
// --objects objects of --size bytes with --concurrency requests in flight on as many
// keep-alive connections (undici Pool), then GETs them all back (length checked).
// Requests are SigV4-signed (gateway/auth/sigv4.ts signRequest; the derived signing key is
// cached per day) with x-amz-content-sha256 UNSIGNED-PAYLOAD by default (--payload-hash
// sha256 hashes every body). Before that it measures the load generator's own ceiling
// against a null HTTP server (a child process answering 200 at once) with the same
// signing and connection settings, and flags results close to it as generator-bound.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { sha256Hex, signRequest, UNSIGNED_PAYLOAD } from '../gateway/auth/sigv4.ts';
import { loadAvg, machineInfo } from './lib/machine.ts';
import { cpuSecondsOf, type S3Server, startEmbedded, startNullServer } from './lib/proc.ts';
import {
  type Counts,
  fmtInt,
  type Percentiles,
  percentiles,
  progress,
  runCounting,
} from './lib/stats.ts';

const USAGE = `usage: npm run bench:gateway -- [options]
  --workers N           start kubestorage server --workers N (default 1; 0/auto = cores)
  --endpoint URL        benchmark a running server instead (needs --access-key, --secret-key)
  --access-key K        --secret-key S   credentials for --endpoint
  --region R            SigV4 region (default us-east-1)
  --objects N           objects to PUT and then GET (default 20000)
  --size BYTES          object size (default 4096)
  --concurrency C       requests in flight = keep-alive connections (default 50)
  --payload-hash unsigned|sha256   x-amz-content-sha256 of PUTs (default unsigned)
  --null-requests N     requests per phase against the null server (default = objects; 0 skips)
  --duration-cap SEC    each phase stops after this long (default 120)
  --dir DIR             data dir for the started server (default: fresh temp dir, removed)
  --json FILE           write the results as JSON`;

const BUCKET = 'bench';

interface PhaseResult extends Counts {
  op: string;
  latencyMs: Percentiles;
  generatorCpuSeconds: number;
  /** CPU (user + system) of the started server per request, µs; absent for --endpoint. */
  serverCpuMicrosPerRequest?: number;
  capped: boolean;
}

function parse() {
  const { values } = parseArgs({
    options: {
      workers: { type: 'string', default: '1' },
      endpoint: { type: 'string' },
      'access-key': { type: 'string' },
      'secret-key': { type: 'string' },
      region: { type: 'string', default: 'us-east-1' },
      objects: { type: 'string', default: '20000' },
      size: { type: 'string', default: '4096' },
      concurrency: { type: 'string', default: '50' },
      'payload-hash': { type: 'string', default: 'unsigned' },
      'null-requests': { type: 'string' },
      'duration-cap': { type: 'string', default: '120' },
      dir: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (values.endpoint && !(values['access-key'] && values['secret-key'])) {
    throw new Error('--endpoint needs --access-key and --secret-key');
  }
  if (values['payload-hash'] !== 'unsigned' && values['payload-hash'] !== 'sha256') {
    throw new Error('--payload-hash is unsigned or sha256');
  }
  const objects = Number(values.objects);
  return {
    workers: values.workers,
    endpoint: values.endpoint,
    accessKey: values['access-key'] ?? 'BENCHKEY00000000',
    secretKey: values['secret-key'] ?? 'benchsecret0000000000000000000000000000',
    region: values.region,
    objects,
    size: Number(values.size),
    concurrency: Number(values.concurrency),
    payloadHash: values['payload-hash'] as 'unsigned' | 'sha256',
    nullRequests: values['null-requests'] === undefined ? objects : Number(values['null-requests']),
    capSeconds: Number(values['duration-cap']),
    dir: values.dir,
    json: values.json,
  };
}
type Args = ReturnType<typeof parse>;

class S3Load {
  readonly pool: Pool;
  private readonly host: string;

  constructor(
    endpoint: string,
    private readonly a: Args,
  ) {
    const u = new URL(endpoint);
    this.host = u.host;
    this.pool = new Pool(u.origin, {
      connections: a.concurrency,
      pipelining: 1,
      keepAliveTimeout: 60_000,
    });
  }

  private sign(method: string, rawPath: string, body?: Buffer): Record<string, string> {
    const headers: Record<string, string> = { host: this.host };
    if (body) headers['content-length'] = String(body.length);
    const payloadHash =
      body && this.a.payloadHash === 'sha256' ? sha256Hex(body) : UNSIGNED_PAYLOAD;
    return signRequest({
      method,
      rawPath,
      headers,
      accessKey: this.a.accessKey,
      secretKey: this.a.secretKey,
      region: this.a.region,
      payloadHash,
    }).headers;
  }

  async request(method: string, rawPath: string, body?: Buffer): Promise<Buffer> {
    const res = await this.pool.request({
      method: method as 'GET',
      path: rawPath,
      headers: this.sign(method, rawPath, body),
      body,
    });
    const data = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode >= 300) {
      throw new Error(
        `${method} ${rawPath}: HTTP ${res.statusCode} ${data.toString().slice(0, 200)}`,
      );
    }
    return data;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

async function phase(
  label: string,
  a: Args,
  total: number,
  op: (i: number) => Promise<void>,
  serverPid?: number,
): Promise<PhaseResult> {
  const cpu0 = cpuSecondsOf(serverPid);
  const latencies = new Float64Array(total);
  const { run, counts } = await runCounting({
    label,
    total,
    concurrency: a.concurrency,
    capSeconds: a.capSeconds,
    latencies,
    size: a.size,
    op,
  });
  const res: PhaseResult = {
    op: label,
    ...counts,
    latencyMs: percentiles(latencies, run.done),
    generatorCpuSeconds: run.cpuSeconds,
    capped: run.capped,
  };
  const cpu1 = cpuSecondsOf(serverPid);
  if (cpu0 !== null && cpu1 !== null && run.done > 0) {
    res.serverCpuMicrosPerRequest = Math.round(((cpu1 - cpu0) * 1e6) / run.done);
  }
  const l = res.latencyMs;
  progress(
    `${label}: ${fmtInt(res.reqPerSec)} req/s, p50 ${l.p50.toFixed(2)} ms, p90 ${l.p90.toFixed(2)} ms, ` +
      `p99 ${l.p99.toFixed(2)} ms, max ${l.max.toFixed(1)} ms, errors ${res.errors}` +
      `${res.serverCpuMicrosPerRequest === undefined ? '' : `, server CPU ${res.serverCpuMicrosPerRequest} µs/req`}` +
      `${res.firstError ? ` (first: ${res.firstError})` : ''}, generator CPU ${(
        (100 * run.cpuSeconds) / run.seconds
      ).toFixed(0)}%${run.capped ? ' [time cap]' : ''}`,
  );
  return res;
}

const keyPath = (i: number) => `/${BUCKET}/obj/${i.toString(16).padStart(8, '0')}`;

async function main(): Promise<void> {
  const a = parse();
  const payload = crypto.randomBytes(a.size);
  const results: Record<string, unknown> = {
    command: `npm run bench:gateway -- ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: { ...machineInfo(), loadAvgAtStart: loadAvg() },
    settings: {
      objects: a.objects,
      size: a.size,
      concurrency: a.concurrency,
      connections: a.concurrency,
      payloadHash: a.payloadHash === 'sha256' ? 'sha256 of each body' : UNSIGNED_PAYLOAD,
      signing: 'SigV4 Authorization header, signing key cached per day',
      capSeconds: a.capSeconds,
      target: a.endpoint ?? 'kubestorage server child process on loopback (fsync on)',
      workers: a.endpoint ? undefined : a.workers,
    },
  };

  // 1. The generator's own ceiling against a null server.
  let nullCeiling: { put: PhaseResult; get: PhaseResult } | undefined;
  if (a.nullRequests > 0) {
    const ns = await startNullServer(a.size);
    try {
      const load = new S3Load(ns.endpoint, a);
      const put = await phase('null PUT', a, a.nullRequests, async (i) => {
        await load.request('PUT', keyPath(i), payload);
      });
      const get = await phase('null GET', a, a.nullRequests, async (i) => {
        await load.request('GET', keyPath(i));
      });
      await load.close();
      nullCeiling = { put, get };
    } finally {
      await ns.stop();
    }
    results.generatorCeiling = nullCeiling;
  }

  // 2. The gateway.
  let server: S3Server | undefined;
  let endpoint = a.endpoint;
  try {
    if (!endpoint) {
      server = await startEmbedded({
        accessKey: a.accessKey,
        secretKey: a.secretKey,
        workers: a.workers,
        dir: a.dir,
        tmpPrefix: 'ks-bench-gw-',
      });
      endpoint = server.endpoint;
      progress(
        `kubestorage server --workers ${a.workers} on ${endpoint}, data in ${server.dataDir}`,
      );
    }
    const load = new S3Load(endpoint, a);
    try {
      await load.request('PUT', `/${BUCKET}`);
    } catch (e) {
      if (!/BucketAlreadyOwnedByYou/.test((e as Error).message)) throw e;
    }
    // Server CPU is read from /proc for the single-process server (--workers 1) only.
    const pid = server && a.workers === '1' ? server.child.pid : undefined;
    const put = await phase(
      'PUT',
      a,
      a.objects,
      async (i) => {
        await load.request('PUT', keyPath(i), payload);
      },
      pid,
    );
    const get = await phase(
      'GET',
      a,
      put.requests,
      async (i) => {
        const data = await load.request('GET', keyPath(i));
        if (data.length !== a.size) throw new Error(`GET ${i}: ${data.length} bytes`);
      },
      pid,
    );
    await load.close();
    results.put = put;
    results.get = get;
    if (nullCeiling) {
      const flags: string[] = [];
      for (const [name, r, c] of [
        ['PUT', put, nullCeiling.put],
        ['GET', get, nullCeiling.get],
      ] as const) {
        const ratio = r.reqPerSec / c.reqPerSec;
        if (ratio > 0.7) flags.push(`${name} at ${(100 * ratio).toFixed(0)}% of generator ceiling`);
      }
      results.generatorBound = flags;
      progress(
        flags.length > 0
          ? `WARNING: results near the load generator's own limit: ${flags.join('; ')}`
          : `generator ceiling: PUT ${fmtInt(nullCeiling.put.reqPerSec)} req/s, GET ${fmtInt(
              nullCeiling.get.reqPerSec,
            )} req/s (results are well below it)`,
      );
    }
  } finally {
    if (server) {
      const code = await server.stop();
      results.serverExitCode = code;
      if (code !== 0) progress(`kubestorage server exited with ${code}`);
    }
  }
  (results.machine as Record<string, unknown>).loadAvgAtEnd = loadAvg();
  const text = JSON.stringify(results, null, 2);
  if (a.json) fs.writeFileSync(a.json, `${text}\n`);
  process.stdout.write(`${text}\n`);
}

await main();
