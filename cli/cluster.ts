// kubestorage cluster up|down: a whole cluster as separate processes on loopback — Raft
// directory replicas, store nodes spread over zones, stateless gateways — for trying it
// out, the scenario tests and the fault benchmark. `up` returns once every process is
// ready and DIR/cluster.json says where everything is; `down` stops them by PID.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseFlags } from './common.ts';
import { SERVER_NODE_FLAGS } from './node-flags.ts';

const HELP = `usage: kubestorage cluster up --data DIR [--directories 3] [--stores 4] [--gateways 2]
                                [--zones 2] [--port-base 9100] [--replicas 2]
                                [--offline-after-ms N] [--rereplicate-after-ms N]
       kubestorage cluster down --data DIR

  up    starts the processes (logs in DIR/logs/), waits until they are ready, and writes
        DIR/cluster.json: {gateways: [url], directories: [{id, url, pid}],
        stores: [{id, url, pid, zone}], accessKey, secretKey}
        Ports: directories P+1.., stores P+11.., gateways P+21.. (P = --port-base; past
        10 of a kind, the next kind starts right after them).
        Stores go to zones z1, z2, ... in turn. The cluster secret and root keys are
        generated once and kept in DIR/cluster.secret and DIR/root.keys.
  down  stops every process listed in DIR/cluster.json (SIGTERM, then SIGKILL after 10 s)
`;

const BIN = path.resolve(import.meta.dirname, '../bin/kubestorage.js');

export interface ClusterFile {
  gateways: string[];
  directories: Array<{ id: string; url: string; pid: number }>;
  stores: Array<{ id: string; url: string; pid: number; zone: string }>;
  gatewayPids: number[];
  accessKey: string;
  secretKey: string;
  secret: string;
}

function count(v: string | undefined, dflt: number, name: string, min = 1): number {
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isInteger(n) || n < min || n > 64) throw new Error(`--${name}: ${min}..64`);
  return n;
}

function readOrCreate(file: string, make: () => string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    const v = make();
    fs.writeFileSync(file, `${v}\n`, { mode: 0o600 });
    return v;
  }
}

async function waitHttp(url: string, ok: (status: number, body: string) => boolean, ms: number) {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      const body = await r.text();
      if (ok(r.status, body)) return;
      last = `${r.status} ${body.slice(0, 120)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready after ${ms} ms (${last})`);
}

function start(name: string, args: string[], env: NodeJS.ProcessEnv, logs: string): ChildProcess {
  const out = fs.openSync(path.join(logs, `${name}.log`), 'a');
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, BIN, ...args], {
    env,
    stdio: ['ignore', out, out],
    detached: true,
  });
  fs.closeSync(out);
  child.unref();
  return child;
}

/**
 * @param onStart told each child's PID as it starts, so a caller that gives up waiting
 *   (a test's hook timeout) can still stop what was started
 */
export async function up(
  argv: string[],
  onStart: (pid: number) => void = () => {},
): Promise<ClusterFile> {
  const counts = 'directories stores gateways zones replicas';
  const values = parseFlags(argv, `data ${counts} port-base offline-after-ms rereplicate-after-ms`);
  const passOn = (k: 'offline-after-ms' | 'rereplicate-after-ms'): string[] =>
    values[k] === undefined ? [] : [`--${k}`, values[k]];
  // Directories and gateways must agree on when a store is down.
  const directoryFlags = [...passOn('offline-after-ms'), ...passOn('rereplicate-after-ms')];
  const gatewayFlags = passOn('offline-after-ms');
  if (!values.data) throw new Error(`--data DIR is required\n\n${HELP}`);
  const dir = path.resolve(values.data);
  const nd = count(values.directories, 3, 'directories');
  const ns = count(values.stores, 4, 'stores');
  const ng = count(values.gateways, 2, 'gateways');
  const nz = count(values.zones, 2, 'zones');
  const replicas = count(values.replicas, 2, 'replicas');
  const portBase = values['port-base'] === undefined ? 9100 : Number(values['port-base']);
  if (!Number.isInteger(portBase) || portBase < 1024 || portBase > 65_000) {
    throw new Error('--port-base: 1024..65000');
  }
  // Ten ports per kind unless there are more of it, so the usual layout stays put.
  const storePort = portBase + 1 + Math.max(10, nd);
  const gatewayPort = storePort + Math.max(10, ns);
  if (gatewayPort + ng > 65_535) throw new Error('--port-base: too high for that many processes');
  const logs = path.join(dir, 'logs');
  fs.mkdirSync(logs, { recursive: true });
  if (fs.existsSync(path.join(dir, 'cluster.json'))) {
    throw new Error(`${dir}/cluster.json exists: run kubestorage cluster down --data ${dir} first`);
  }
  const secret = readOrCreate(path.join(dir, 'cluster.secret'), () =>
    crypto.randomBytes(32).toString('base64url'),
  );
  const [accessKey, secretKey] = readOrCreate(
    path.join(dir, 'root.keys'),
    () =>
      `KS${crypto.randomBytes(9).toString('hex').toUpperCase()} ${crypto.randomBytes(30).toString('base64url')}`,
  ).split(' ') as [string, string];
  const env = {
    ...process.env,
    KUBESTORAGE_CLUSTER_SECRET: secret,
    KUBESTORAGE_ROOT_ACCESS_KEY: accessKey,
    KUBESTORAGE_ROOT_SECRET_KEY: secretKey,
  };
  const host = '127.0.0.1';
  const dirs = Array.from({ length: nd }, (_, i) => ({
    id: `d${i + 1}`,
    url: `http://${host}:${portBase + 1 + i}`,
    pid: 0,
  }));
  const peers = dirs.map((d) => `${d.id}=${d.url}`).join(',');
  const dirUrls = dirs.map((d) => d.url).join(',');
  const started: ChildProcess[] = [];
  /** Starts one process; its PID. */
  const launch = (name: string, args: string[]): number => {
    const c = start(name, args, env, logs);
    started.push(c);
    if (c.pid) onStart(c.pid);
    return c.pid ?? 0;
  };
  try {
    for (const d of dirs) {
      d.pid = launch(`directory-${d.id}`, [
        'directory',
        ...['--id', d.id, '--listen', d.url.slice(7), '--peers', peers],
        ...['--data', path.join(dir, d.id), ...directoryFlags],
      ]);
    }
    for (const d of dirs) {
      await waitHttp(
        `${d.url}/status`,
        (s, b) => s === 200 && JSON.parse(b).leaderId !== null,
        30_000,
      );
    }
    const stores = Array.from({ length: ns }, (_, i) => ({
      id: `s${i + 1}`,
      url: `http://${host}:${storePort + i}`,
      pid: 0,
      zone: `z${(i % nz) + 1}`,
    }));
    for (const s of stores) {
      s.pid = launch(`store-${s.id}`, [
        'store',
        ...['--id', s.id, '--zone', s.zone, '--listen', s.url.slice(7), '--advertise', s.url],
        ...['--directory', dirUrls, '--data', path.join(dir, s.id)],
      ]);
    }
    // Ready when the directory has heard from every store.
    await waitHttp(
      `${dirs[0]?.url}/cluster/liveness`,
      (st, b) => st === 200 && (JSON.parse(b) as unknown[]).length >= ns,
      30_000,
    );
    const gateways: string[] = [];
    const gatewayPids: number[] = [];
    for (let i = 0; i < ng; i++) {
      const url = `http://${host}:${gatewayPort + i}`;
      gatewayPids.push(
        launch(`gateway-${i + 1}`, [
          'gateway',
          ...['--directory', dirUrls, '--listen', url.slice(7), '--replicas', String(replicas)],
          ...gatewayFlags,
        ]),
      );
      // One at a time: each makes sure the root keys exist in the directory.
      await waitHttp(url, (s) => s === 403 || s === 200, 30_000);
      gateways.push(url);
    }
    const file: ClusterFile = {
      gateways,
      directories: dirs,
      stores,
      gatewayPids,
      accessKey,
      secretKey,
      secret,
    };
    // It holds the cluster secret and the root keys: the owner's alone, like those files.
    fs.writeFileSync(path.join(dir, 'cluster.json'), `${JSON.stringify(file, null, 2)}\n`, {
      mode: 0o600,
    });
    return file;
  } catch (e) {
    for (const c of started) if (c.pid) killQuietly(c.pid, 'SIGKILL');
    throw e;
  }
}

function killQuietly(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

export async function down(argv: string[]): Promise<number> {
  const values = parseFlags(argv, 'data');
  if (!values.data) throw new Error(`--data DIR is required\n\n${HELP}`);
  const file = path.join(path.resolve(values.data), 'cluster.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterFile;
  const pids = [
    ...c.gatewayPids,
    ...c.stores.map((s) => s.pid),
    ...c.directories.map((d) => d.pid),
  ];
  for (const pid of pids) killQuietly(pid, 'SIGTERM');
  const end = Date.now() + 10_000;
  while (Date.now() < end && pids.some((p) => killQuietly(p, 0))) {
    await new Promise((r) => setTimeout(r, 100));
  }
  let killed = 0;
  for (const pid of pids) if (killQuietly(pid, 'SIGKILL')) killed++;
  fs.rmSync(file);
  return killed;
}

export async function main(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  if (verb === 'up') {
    const c = await up(rest);
    process.stdout.write(
      [
        `cluster up: ${c.directories.length} directories, ${c.stores.length} stores, ${c.gateways.length} gateways`,
        `  S3 endpoints: ${c.gateways.join(' ')}`,
        `  access key: ${c.accessKey}`,
        `  secret key: ${c.secretKey}`,
        '',
      ].join('\n'),
    );
  } else if (verb === 'down') {
    const killed = await down(rest);
    process.stdout.write(`cluster down${killed ? ` (${killed} needed SIGKILL)` : ''}\n`);
  } else {
    process.stdout.write(HELP);
    if (verb !== '--help' && verb !== '-h') process.exitCode = 2;
  }
}
