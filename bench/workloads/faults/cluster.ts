// The cluster side of the experiment: a cluster of our own (`cluster up`, always taken down
// by PID), the directory leader, the kill, and where writes went afterwards.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ClusterFile, down, up } from '../../../cli/cluster.ts';
import { AUTH_HEADER, InternalAuth } from '../../../common/internal-auth.ts';
import { MetadataClient } from '../../../directory/wire/client.ts';
import { freePortBase, sigkill } from '../../lib/proc.ts';

/** The directory leader, asked of every replica's /status (signed with the cluster secret). */
export async function findLeader(c: ClusterFile): Promise<ClusterFile['directories'][number]> {
  const auth = new InternalAuth(c.secret);
  for (let tries = 0; tries < 50; tries++) {
    for (const d of c.directories) {
      try {
        const r = await fetch(`${d.url}/status`, {
          headers: { [AUTH_HEADER]: auth.sign('GET', '/status') },
          signal: AbortSignal.timeout(1_000),
        });
        const s = (await r.json()) as { leaderId?: string | null };
        const lead = c.directories.find((x) => x.id === s.leaderId);
        if (lead) return lead;
      } catch {
        // That replica is down or busy: ask the next.
      }
    }
    await sleep(100);
  }
  throw new Error('no directory leader found');
}

export interface Killed {
  role: 'directory-leader' | 'store';
  id: string;
  pid: number;
  zone?: string;
}

/** kill -9 the directory leader and every store of `zone`. */
export async function killLeaderAndZone(c: ClusterFile, zone: string): Promise<Killed[]> {
  const lead = await findLeader(c);
  const stores = c.stores.filter((s) => s.zone === zone);
  if (stores.length === 0) throw new Error(`no store in zone ${zone}`);
  const out: Killed[] = [];
  if (sigkill(lead.pid)) out.push({ role: 'directory-leader', id: lead.id, pid: lead.pid });
  for (const s of stores) {
    if (sigkill(s.pid)) out.push({ role: 'store', id: s.id, pid: s.pid, zone: s.zone });
  }
  return out;
}

/** Where writes sent after the kill went: their volumes' replicas and those replicas' zones. */
export interface Placement {
  checked: number;
  volumes: Array<{ id: number; replicas: string[]; zones: string[]; writes: number }>;
  /** Checked writes whose volume has a replica in the killed zone (degraded-mode writes). */
  onKilledZone: number;
  mode: 're-homed' | 'degraded' | 'mixed' | 'unknown';
}

export async function placementOf(
  c: ClusterFile,
  bucket: string,
  keys: string[],
  killedZone: string,
): Promise<Placement> {
  const dir = new MetadataClient(
    c.directories.map((d) => d.url),
    new InternalAuth(c.secret),
    { deadlineMs: 5_000 },
  );
  try {
    const zoneOf = new Map(c.stores.map((s) => [s.id, s.zone]));
    const perVol = new Map<number, number>();
    let checked = 0;
    for (const k of keys) {
      const rec = await dir.getObject(bucket, k.slice(bucket.length + 1));
      if (!rec) continue;
      checked++;
      for (const ch of rec.chunks) perVol.set(ch.volumeId, (perVol.get(ch.volumeId) ?? 0) + 1);
    }
    const vols = await dir.listVolumes();
    const volumes = [...perVol].map(([id, writes]) => {
      const replicas = vols.find((v) => v.id === id)?.replicas ?? [];
      return { id, replicas, zones: replicas.map((r) => zoneOf.get(r) ?? '?'), writes };
    });
    const onKilledZone = volumes
      .filter((v) => v.zones.includes(killedZone))
      .reduce((s, v) => s + v.writes, 0);
    const mode =
      checked === 0
        ? 'unknown'
        : onKilledZone === 0
          ? 're-homed'
          : onKilledZone === checked
            ? 'degraded'
            : 'mixed';
    return { checked, volumes, onKilledZone, mode };
  } finally {
    await dir.close();
  }
}

/** A cluster of our own: started with `up`, always taken down by PID. */
export interface OwnCluster {
  cluster: ClusterFile;
  dir: string;
  stop(): Promise<void>;
}

export async function startCluster(o: {
  dir?: string;
  portBase?: number;
  keep?: boolean;
}): Promise<OwnCluster> {
  const dir = o.dir ? path.resolve(o.dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'ks-faults-'));
  const portBase = o.portBase ?? (await freePortBase());
  let cluster: ClusterFile;
  try {
    cluster = await up(['--data', dir, '--port-base', String(portBase)]);
  } catch (e) {
    if (!o.dir && !o.keep) fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let stopped = false;
  return {
    cluster,
    dir,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        await down(['--data', dir]);
      } finally {
        // down() signals only the PIDs cluster.json lists; make sure each is gone.
        for (const pid of [
          ...cluster.gatewayPids,
          ...cluster.stores.map((s) => s.pid),
          ...cluster.directories.map((d) => d.pid),
        ]) {
          sigkill(pid);
        }
        if (!o.dir && !o.keep) fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
