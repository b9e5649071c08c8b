// `kubestorage cluster up` run as a command with its stdout to a pipe (a log file, a CI job,
// `| tee`), issue 12 item 3: the root secret key is not in what it writes, nor in any file
// under its data directory, logs included. (On a terminal it prints the key: cli/cluster.ts.)
//
// `cluster up` generates the root keys itself (DIR/root.keys, sealed) and hands them to
// the gateways alone; every other process inherits the caller's environment, so a root
// secret set there (KUBESTORAGE_ROOT_SECRET_KEY, random here) must not surface in a log
// either. Processes are stopped by the PIDs cluster.json lists.
//
// A cluster-* file: the integration-raft and cluster projects do not run it again.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it, onTestFailed } from 'vitest';
import { type ClusterFile, readClusterFile } from '../cli/cluster.ts';
import { freePortBase } from '../common/ports.ts';
import { filesContaining } from '../test/kit/files-at-rest.ts';
import { exited, killPid, pidGone, startKubestorage } from '../test/kit/processes.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';

/** Every process of the cluster in `dir`, as cluster.json lists them (none before it exists). */
function clusterPids(dir: string): number[] {
  const file = path.join(dir, 'cluster.json');
  if (!fs.existsSync(file)) return [];
  const c = JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterFile;
  return [...c.gatewayPids, ...c.stores.map((s) => s.pid), ...c.directories.map((d) => d.pid)];
}

async function stopByPid(pids: number[]): Promise<void> {
  for (const pid of pids) killPid(pid, 'SIGTERM');
  for (const pid of pids) {
    try {
      await pidGone(pid, `pid ${pid} to exit`, 10_000);
    } catch {
      killPid(pid, 'SIGKILL');
      await pidGone(pid, `pid ${pid} to exit after SIGKILL`, 5_000);
    }
  }
}

describe('cluster up with stdout to a pipe', () => {
  const dir = tempDir('ks-upout-');
  /** Still to stop (a failed test leaves them to afterAll); emptied once they are gone. */
  let pids: number[] = [];
  afterAll(() => stopByPid(pids.splice(0)), 30_000);

  it('keeps the root secret key out of its output, its data and its logs', async () => {
    const envSecret = crypto.randomBytes(30).toString('base64url');
    const portBase = await freePortBase(29);
    const up = startKubestorage(['cluster', 'up', '--data', dir, '--port-base', String(portBase)], {
      env: {
        ...process.env,
        KUBESTORAGE_ROOT_ACCESS_KEY: 'KSUPOUTPUTTEST0000000',
        KUBESTORAGE_ROOT_SECRET_KEY: envSecret,
      },
    });
    onTestFailed(() => {
      console.log(`cluster up said:\n${up.output()}`);
    });
    // `up` returns (and the command exits) once every process is ready.
    await up.waitFor(/secret key: .*\n/, 120_000);
    expect(await exited(up.child)).toBe(0);
    pids = clusterPids(dir);
    expect(pids).toHaveLength(3 + 4 + 2);
    const c = readClusterFile(path.join(dir, 'cluster.json'));

    // It is up: every gateway answers its readiness probe.
    for (const g of c.gateways) expect((await fetch(`${g}/_ks/readyz`)).status).toBe(200);
    const out = up.out();
    expect(out).toContain(`access key: ${c.accessKey}`);
    for (const [what, secret] of [
      ['the root secret key', c.secretKey],
      ['the environment root secret', envSecret],
      ['the cluster secret', c.secret],
    ] as const) {
      expect(secret.length).toBeGreaterThanOrEqual(20);
      expect.soft(out.includes(secret), `${what} on stdout`).toBe(false);
      expect.soft(up.err().includes(secret), `${what} on stderr`).toBe(false);
    }
    expect
      .soft(out)
      .toContain(
        `secret key: (not shown: stdout is not a terminal; kubestorage cluster credentials --data ${dir})`,
      );
    expect(fs.readdirSync(path.join(dir, 'logs')).length).toBeGreaterThanOrEqual(9);
    expect.soft(filesContaining(dir, c.secretKey), 'root secret key in DIR').toEqual([]);
    expect.soft(filesContaining(dir, envSecret), 'environment secret in DIR').toEqual([]);

    const all = pids.splice(0);
    await stopByPid(all);
    for (const pid of all) expect(killPid(pid, 0), `pid ${pid}`).toBe(false);
  }, 180_000);
});
