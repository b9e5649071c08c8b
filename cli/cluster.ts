// kubestorage cluster up|down: a whole cluster as separate processes on loopback — Raft
// directory replicas, store nodes spread over zones, stateless gateways — for trying it
// out, the scenario tests and the fault benchmark. `up` returns once every process is
// ready and DIR/cluster.json says where everything is; `down` stops them by PID.
//
// Secrets at rest (issue 12): everything under DIR is its owner's alone (folders 0700,
// files 0600, whatever the umask of the caller); the cluster secret lives in
// DIR/cluster.secret only; the root secret key is kept sealed under it (root.keys,
// cluster.json: gateway/secret-box.ts), is handed to the gateways in their environment and
// is printed by `up` on a terminal only — never into DIR/logs.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startRedisServer } from '../cache/redis-process.ts';
import { AUTH_HEADER, InternalAuth } from '../common/internal-auth.ts';
import { SecretBox } from '../gateway/secret-box.ts';
import { parseFlags } from './common.ts';
import { SERVER_NODE_FLAGS } from './node-flags.ts';

const HELP = `usage: kubestorage cluster up --data DIR [--directories 3] [--stores 4] [--gateways 2]
                                [--zones 2] [--port-base 9100] [--replicas 2]
                                [--offline-after-ms N] [--rereplicate-after-ms N]
                                [--redis auto|URL] [--cache on|off] [--cache-period-ms N]
                                [--replicate-threshold N] [--cache-threshold N]
       kubestorage cluster down --data DIR
       kubestorage cluster credentials --data DIR

  up    starts the processes (logs in DIR/logs/), waits until they are ready, and writes
        DIR/cluster.json: {gateways: [url], directories: [{id, url, pid}],
        stores: [{id, url, pid, zone}], accessKey, secretKey (sealed)}
        Ports: directories P+1.., stores P+11.., gateways P+21.. (P = --port-base; past
        10 of a kind, the next kind starts right after them).
        Stores go to zones z1, z2, ... in turn. The cluster secret and root keys are
        generated once and kept in DIR/cluster.secret and DIR/root.keys (the root secret
        key sealed under the cluster secret). The root secret key is printed only when
        stdout is a terminal.
        --redis auto starts a redis-server (on port P+0, data-less: a restart is empty)
        as the gateways' shared cache (L2); --redis URL uses one already running. The
        cache flags set the cache section of the config for every process (issue 14).
  down  stops every process listed in DIR/cluster.json (SIGTERM, then SIGKILL after 10 s)
  credentials
        prints the root access key and secret key of the cluster in DIR
`;

const BIN = path.resolve(import.meta.dirname, '../bin/kubestorage.js');

/** A running cluster, as `up` returns it and readClusterFile reads it back. */
export interface ClusterFile {
  gateways: string[];
  directories: Array<{ id: string; url: string; pid: number }>;
  stores: Array<{ id: string; url: string; pid: number; zone: string }>;
  gatewayPids: number[];
  /** The redis-server `--redis auto` started, and the URL every gateway uses. */
  redis?: { url: string; pid?: number };
  accessKey: string;
  /** The root secret key, in clear (sealed in the file). */
  secretKey: string;
  /** The cluster secret (in DIR/cluster.secret, not in the file). */
  secret: string;
}

const UP_FLAGS =
  'data directories stores gateways zones replicas port-base offline-after-ms rereplicate-after-ms ' +
  'redis cache cache-period-ms replicate-threshold cache-threshold';

/** The cache flags of `up`, as the config's environment variables for every process. */
function cacheEnv(values: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  const num = (flag: string, name: string) => {
    const v = values[flag];
    if (v === undefined) return;
    if (!/^\d+$/.test(v)) throw new Error(`--${flag}: a whole number, got ${v}`);
    env[name] = v;
  };
  if (values.cache !== undefined) {
    if (values.cache !== 'on' && values.cache !== 'off') throw new Error('--cache: on or off');
    env.KUBESTORAGE_CACHE_ENABLED = String(values.cache === 'on');
  }
  num('cache-period-ms', 'KUBESTORAGE_CACHE_PERIOD_MS');
  num('replicate-threshold', 'KUBESTORAGE_CACHE_REPLICATE_THRESHOLD');
  num('cache-threshold', 'KUBESTORAGE_CACHE_CACHE_THRESHOLD');
  return env;
}
const CLUSTER_FILE = 'cluster.json';
const SECRET_FILE = 'cluster.secret';
const ROOT_KEYS_FILE = 'root.keys';

/** Writes `text` to `file` with mode 0600 (also when it existed), by rename. */
function writePrivate(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

/** DIR/cluster.json: where everything is; the root secret key sealed, no cluster secret. */
export function writeClusterFile(dir: string, c: ClusterFile): void {
  const { secret, ...rest } = c;
  const stored = {
    ...rest,
    secretKey: SecretBox.fromSecret(secret).seal(c.accessKey, c.secretKey),
  };
  writePrivate(path.join(dir, CLUSTER_FILE), `${JSON.stringify(stored, null, 2)}\n`);
}

/** A cluster.json as `up` returned it: the cluster secret from beside it, the root key opened. */
export function readClusterFile(file: string): ClusterFile {
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as Omit<ClusterFile, 'secret'>;
  const secret = fs.readFileSync(path.join(path.dirname(file), SECRET_FILE), 'utf8').trim();
  const secretKey = SecretBox.fromSecret(secret).open(stored.accessKey, stored.secretKey);
  return { ...stored, secretKey, secret };
}

/**
 * The root keys in DIR/root.keys, `ACCESS_KEY SEALED_SECRET`, made on first use. A file
 * from before sealing (the secret in clear) is rewritten sealed.
 */
function rootKeys(dir: string, box: SecretBox): { accessKey: string; secretKey: string } {
  const file = path.join(dir, ROOT_KEYS_FILE);
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const [accessKey, stored] = text.split(' ');
  if (accessKey && stored) {
    const secretKey = box.open(accessKey, stored);
    if (!SecretBox.isSealed(stored)) {
      writePrivate(file, `${accessKey} ${box.seal(accessKey, secretKey)}\n`);
    }
    return { accessKey, secretKey };
  }
  const made = {
    accessKey: `KS${crypto.randomBytes(9).toString('hex').toUpperCase()}`,
    secretKey: crypto.randomBytes(30).toString('base64url'),
  };
  writePrivate(file, `${made.accessKey} ${box.seal(made.accessKey, made.secretKey)}\n`);
  return made;
}

function count(v: string | undefined, dflt: number, name: string, min = 1): number {
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isInteger(n) || n < min || n > 64) throw new Error(`--${name}: ${min}..64`);
  return n;
}

function readOrCreate(file: string, make: () => string): string {
  try {
    const v = fs.readFileSync(file, 'utf8').trim();
    fs.chmodSync(file, 0o600);
    return v;
  } catch {
    const v = make();
    writePrivate(file, `${v}\n`);
    return v;
  }
}

async function waitHttp(
  url: string,
  ok: (status: number, body: string) => boolean,
  ms: number,
  headers: () => Record<string, string> = () => ({}),
) {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    try {
      const r = await fetch(url, { headers: headers(), signal: AbortSignal.timeout(1_000) });
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
  // The caller's umask may be 022 (a test runner): the mode is explicit.
  const out = fs.openSync(path.join(logs, `${name}.log`), 'a', 0o600);
  fs.fchmodSync(out, 0o600);
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
  const values = parseFlags(argv, UP_FLAGS);
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
  fs.mkdirSync(logs, { recursive: true, mode: 0o700 });
  fs.chmodSync(logs, 0o700);
  if (fs.existsSync(path.join(dir, CLUSTER_FILE))) {
    throw new Error(`${dir}/cluster.json exists: run kubestorage cluster down --data ${dir} first`);
  }
  const secret = readOrCreate(path.join(dir, SECRET_FILE), () =>
    crypto.randomBytes(32).toString('base64url'),
  );
  const { accessKey, secretKey } = rootKeys(dir, SecretBox.fromSecret(secret));
  // The root keys reach the gateways only, in their environment (not a file, not a log).
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KUBESTORAGE_CLUSTER_SECRET: secret,
    ...cacheEnv(values),
  };
  const gatewayEnv = {
    ...env,
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
  const launch = (name: string, args: string[], e: NodeJS.ProcessEnv = env): number => {
    const c = start(name, args, e, logs);
    started.push(c);
    if (c.pid) onStart(c.pid);
    return c.pid ?? 0;
  };
  let redis: ClusterFile['redis'];
  try {
    if (values.redis === 'auto') {
      const r = await startRedisServer({
        port: portBase,
        dir: path.join(dir, 'redis'),
        logFile: path.join(logs, 'redis.log'),
      });
      started.push({ pid: r.pid } as ChildProcess);
      if (r.pid) onStart(r.pid);
      redis = { url: r.url, pid: r.pid };
    } else if (values.redis) {
      if (!/^rediss?:\/\//.test(values.redis))
        throw new Error('--redis: auto or redis://HOST:PORT');
      redis = { url: values.redis };
    }
    if (redis) env.KUBESTORAGE_CACHE_REDIS_URL = redis.url;
    for (const d of dirs) {
      d.pid = launch(`directory-${d.id}`, [
        'directory',
        ...['--id', d.id, '--listen', d.url.slice(7), '--peers', peers],
        ...['--data', path.join(dir, d.id), ...directoryFlags],
      ]);
    }
    // Ready: the replica knows a leader and has caught up (its anonymous readiness probe).
    for (const d of dirs) await waitHttp(`${d.url}/readyz`, (s) => s === 200, 30_000);
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
    // Ready when the directory has heard from every store (topology: the secret's token).
    const auth = new InternalAuth(secret);
    await waitHttp(
      `${dirs[0]?.url}/cluster/liveness`,
      (st, b) => st === 200 && (JSON.parse(b) as unknown[]).length >= ns,
      30_000,
      () => ({ [AUTH_HEADER]: auth.sign('GET', '/cluster/liveness') }),
    );
    const gateways: string[] = [];
    const gatewayPids: number[] = [];
    for (let i = 0; i < ng; i++) {
      const url = `http://${host}:${gatewayPort + i}`;
      gatewayPids.push(
        launch(
          `gateway-${i + 1}`,
          [
            'gateway',
            ...['--directory', dirUrls, '--listen', url.slice(7), '--replicas', String(replicas)],
            ...gatewayFlags,
          ],
          { ...gatewayEnv, ...(redis ? { KUBESTORAGE_CACHE_REDIS_URL: redis.url } : {}) },
        ),
      );
      // One at a time: each makes sure the root keys exist in the directory (before it listens).
      await waitHttp(`${url}/_ks/healthz`, (s) => s === 200, 30_000);
      gateways.push(url);
    }
    const file: ClusterFile = {
      gateways,
      directories: dirs,
      stores,
      gatewayPids,
      redis,
      accessKey,
      secretKey,
      secret,
    };
    writeClusterFile(dir, file);
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
  const file = path.join(path.resolve(values.data), CLUSTER_FILE);
  const c = JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterFile;
  const pids = [
    ...c.gatewayPids,
    ...c.stores.map((s) => s.pid),
    ...c.directories.map((d) => d.pid),
    ...(c.redis?.pid ? [c.redis.pid] : []),
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
    const { data } = parseFlags(rest, UP_FLAGS);
    // To a terminal only: a file stdout was sent to would hold the secret in clear.
    const shown = process.stdout.isTTY
      ? c.secretKey
      : `(not shown: stdout is not a terminal; kubestorage cluster credentials --data ${data})`;
    process.stdout.write(
      [
        `cluster up: ${c.directories.length} directories, ${c.stores.length} stores, ${c.gateways.length} gateways`,
        `  S3 endpoints: ${c.gateways.join(' ')}`,
        ...(c.redis ? [`  redis (gateways' shared cache): ${c.redis.url}`] : []),
        `  access key: ${c.accessKey}`,
        `  secret key: ${shown}`,
        '',
      ].join('\n'),
    );
  } else if (verb === 'credentials') {
    const values = parseFlags(rest, 'data');
    if (!values.data) throw new Error(`--data DIR is required\n\n${HELP}`);
    const dir = path.resolve(values.data);
    if (!fs.existsSync(path.join(dir, ROOT_KEYS_FILE))) {
      throw new Error(`no cluster in ${dir}: kubestorage cluster up --data ${dir}`);
    }
    const secret = fs.readFileSync(path.join(dir, SECRET_FILE), 'utf8').trim();
    const k = rootKeys(dir, SecretBox.fromSecret(secret));
    process.stdout.write(`access key: ${k.accessKey}\nsecret key: ${k.secretKey}\n`);
  } else if (verb === 'down') {
    const killed = await down(rest);
    process.stdout.write(`cluster down${killed ? ` (${killed} needed SIGKILL)` : ''}\n`);
  } else {
    process.stdout.write(HELP);
    if (verb !== '--help' && verb !== '-h') process.exitCode = 2;
  }
}
