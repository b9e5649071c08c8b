// Helpers for the real-process cluster tests: `kubestorage cluster up` in a temp dir on a
// free block of loopback ports, S3 clients for its gateways, directory and store clients
// signed with its secret, kill -9 and restart of a store with the exact command line
// `cluster up` used, bounded polling, and teardown that kills every PID it ever saw.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { type ClusterFile, down, up, writeClusterFile } from '../cli/cluster.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { freePortBase } from '../common/ports.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import { StoreClient } from '../store-node/client.ts';
import { alive, KUBESTORAGE_BIN as BIN, killPid, pidGone, run } from '../test/kit/processes.ts';
import { s3Client } from '../test/kit/s3-clients.ts';
import { until as poll } from '../test/kit/until.ts';

/**
 * Polls `fn` every `everyMs` until it returns something truthy; a throw counts as "not
 * yet" (a store or directory may be down); fails with the last value after `ms`.
 */
export const until = <T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  ms: number,
  everyMs = 200,
): Promise<T> => poll(what, fn, ms, { everyMs, retryErrors: true });

export interface TestCluster {
  dir: string;
  file: ClusterFile;
  meta: MetadataClient;
  /** One S3 client per gateway. */
  s3: S3Client[];
  store(id: string): StoreClient;
  storeUrl(id: string): string;
  /** kill -9 a store; resolves once the process is gone. */
  killStore(id: string): Promise<void>;
  /** Starts a store again with the command line `cluster up` used; returns its PID. */
  restartStore(id: string): number;
  /** `kubestorage admin store ARGS` against this cluster; resolves to its stdout. */
  adminStore(args: string[]): Promise<string>;
  /** The last lines of every log, for a failure report. */
  logTail(lines?: number): string;
  close(): Promise<void>;
}

export async function startCluster(name: string, extra: string[]): Promise<TestCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ks-${name}-`));
  const portBase = await freePortBase(29);
  let file: ClusterFile;
  try {
    file = await up(['--data', dir, '--port-base', String(portBase), ...extra]);
  } catch (e) {
    // up() has killed what it started; keep its logs in the error.
    const logs = path.join(dir, 'logs');
    let tail = '';
    for (const f of fs.existsSync(logs) ? fs.readdirSync(logs) : []) {
      tail += `--- ${f}\n${fs.readFileSync(path.join(logs, f), 'utf8').slice(-2_000)}\n`;
    }
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`cluster up failed: ${(e as Error).message}\n${tail}`);
  }
  const pids = new Set<number>([
    ...file.gatewayPids,
    ...file.stores.map((s) => s.pid),
    ...file.directories.map((d) => d.pid),
  ]);
  const auth = new InternalAuth(file.secret);
  const dirUrls = file.directories.map((d) => d.url);
  const meta = new MetadataClient(dirUrls, auth, { deadlineMs: 5_000 });
  const s3 = file.gateways.map((endpoint) =>
    s3Client(
      { endpoint, accessKey: file.accessKey, secretKey: file.secretKey },
      { maxAttempts: 3 },
    ),
  );
  const stores = new Map<string, StoreClient>();
  const rec = (id: string) => {
    const s = file.stores.find((x) => x.id === id);
    if (!s) throw new Error(`no store ${id}`);
    return s;
  };
  // What `cluster up` gives a store: the cluster secret (the root keys go to gateways only).
  const env = { ...process.env, KUBESTORAGE_CLUSTER_SECRET: file.secret };
  const logs = path.join(dir, 'logs');
  const dead = new Set<string>();
  // cluster.json as down() should see it: killed stores left out, restarted ones' new PIDs.
  const writeFile = () => {
    writeClusterFile(dir, { ...file, stores: file.stores.filter((s) => !dead.has(s.id)) });
  };
  const c: TestCluster = {
    dir,
    file,
    meta,
    s3,
    storeUrl: (id) => rec(id).url,
    store(id) {
      let sc = stores.get(id);
      if (!sc) {
        sc = new StoreClient(rec(id).url, auth, 10_000, 16);
        stores.set(id, sc);
      }
      return sc;
    },
    async killStore(id) {
      const s = rec(id);
      killPid(s.pid);
      await pidGone(s.pid, `store ${id} (pid ${s.pid}) to exit`);
      // Never signal that PID again (it may be reused): down() reads cluster.json.
      pids.delete(s.pid);
      dead.add(id);
      writeFile();
      // A pooled connection to the dead process is useless now.
      await stores.get(id)?.close();
      stores.delete(id);
    },
    restartStore(id) {
      const s = rec(id);
      // Exactly the arguments and environment cli/cluster.ts start() gives a store.
      const args = [
        'store',
        '--id',
        s.id,
        '--zone',
        s.zone,
        '--listen',
        s.url.slice(7),
        '--advertise',
        s.url,
        '--directory',
        dirUrls.join(','),
        '--data',
        path.join(dir, s.id),
      ];
      const out = fs.openSync(path.join(logs, `store-${id}.log`), 'a', 0o600);
      const child = spawn(process.execPath, [BIN, ...args], {
        env,
        stdio: ['ignore', out, out],
        detached: true,
      });
      fs.closeSync(out);
      child.unref();
      if (!child.pid) throw new Error(`store ${id} did not start`);
      s.pid = child.pid;
      pids.add(child.pid);
      dead.delete(id);
      writeFile();
      return child.pid;
    },
    async adminStore(args) {
      const r = await run(
        process.execPath,
        [BIN, 'admin', 'store', ...args, '--directory', dirUrls.join(',')],
        { env, timeoutMs: 30_000 },
      );
      return r.stdout + r.stderr;
    },
    logTail(lines = 30) {
      let s = '';
      for (const f of fs.existsSync(logs) ? fs.readdirSync(logs).sort() : []) {
        const text = fs.readFileSync(path.join(logs, f), 'utf8').trimEnd().split('\n');
        s += `--- ${f}\n${text.slice(-lines).join('\n')}\n`;
      }
      return s;
    },
    async close() {
      for (const cl of s3) cl.destroy();
      await Promise.allSettled([meta.close(), ...[...stores.values()].map((sc) => sc.close())]);
      try {
        await down(['--data', dir]);
      } catch {}
      // Whatever down() could not stop (or a failed restart left behind), by PID.
      for (const pid of pids) if (alive(pid)) killPid(pid);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return c;
}

/** A volume's live needles on one store: `id:size` strings in id order, every page. */
export async function liveNeedles(store: StoreClient, volumeId: number): Promise<string[]> {
  const out: string[] = [];
  let after = 0n;
  for (let page = 0; page < 1000; page++) {
    const l = await store.listNeedles(volumeId, { after, limit: 1000 });
    for (const n of l.needles) out.push(`${n.id}:${n.size}`);
    if (l.next === undefined) return out;
    after = l.next;
  }
  throw new Error(`volume ${volumeId}: more than 1000 pages of needles`);
}
