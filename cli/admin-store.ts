// kubestorage admin store: the store nodes and volumes the Raft directory knows, draining a
// node (its volumes copied elsewhere while it still serves, then it is removed) and removing
// a node for good (its volumes re-replicated at once from the other replicas).
import type { NodeRecord } from '../directory/model/topology.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import { parseAdminCommand } from './common.ts';

const HELP = `usage: kubestorage admin store <list|volumes|drain ID|wait-drained [ID]|remove ID> [--directory URL,...]

  list           store nodes: id, state, zone, url, seconds since the last heartbeat
  volumes        volumes: id, state, replicas (and whether each replica's node is online)
  drain ID       mark a store draining: no new data goes to it, the directory copies each of
                 its volumes to other stores (from it too: nothing is lost with one copy),
                 then marks it removed. --wait: until then (--timeout S, default 3600;
                 exits 1 on a timeout)
  wait-drained [ID]
                 a store's preStop hook (ID defaults to $POD_NAME): waits --settle S
                 (default 5) for the store to be draining — the directory's pod watch marks a
                 store draining when a StatefulSet scale-down deletes its pod, and only then —
                 and if it is, until it is removed (--timeout S, default 3300); otherwise
                 returns at once so a rollout is not held up
  remove ID      mark a store removed for good; the directory re-replicates its volumes
                 from the other replicas (with one copy, what was only on it is lost: drain)

  --directory URLS   directory replicas (default $KS_DIRECTORY_URLS, else http://127.0.0.1:7001)
  --config FILE      the cluster secret comes from it or from KUBESTORAGE_CLUSTER_SECRET
`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function main(argv: string[]): Promise<void> {
  const cmd = parseAdminCommand(
    argv,
    HELP,
    ([verb]) => Boolean(verb),
    'timeout settle poll-ms',
    'wait',
  );
  if (!cmd) return;
  const { flags: values } = cmd;
  const [verb, arg] = cmd.words;
  const dir = new MetadataClient(cmd.directory, cmd.auth);
  const seconds = (v: string | undefined, dflt: number, name: string) => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number of seconds`);
    return n * 1000;
  };
  const pollMs = Math.max(10, Number(values['poll-ms'] ?? 1000) || 1000);
  try {
    if (verb === 'list') {
      const [nodes, live] = await Promise.all([dir.listNodes(), dir.liveness()]);
      const rows = nodes.map((n) => {
        const l = live.find((x) => x.id === n.id);
        const silent = l?.silentMs == null ? '-' : (l.silentMs / 1000).toFixed(1);
        return [n.id, n.state, n.zone || '-', n.url, silent];
      });
      print([['ID', 'STATE', 'ZONE', 'URL', 'SILENT_S'], ...rows]);
    } else if (verb === 'volumes') {
      const [vols, nodes] = await Promise.all([dir.listVolumes(), dir.listNodes()]);
      const state = new Map(nodes.map((n) => [n.id, n.state]));
      const rows = vols.map((v) => [
        String(v.id),
        v.state,
        `${v.replicas.length}/${v.replicaCount}`,
        v.replicas
          .map((r) => `${r}${state.get(r) === 'online' ? '' : `(${state.get(r) ?? '?'})`}`)
          .join(' '),
      ]);
      print([['VOLUME', 'STATE', 'COPIES', 'REPLICAS'], ...rows]);
    } else if (verb === 'drain') {
      if (!arg) throw new Error('admin store drain needs a node id');
      const timeoutMs = seconds(values.timeout, 3600, 'timeout');
      const n = await findNode(dir, arg);
      if (n.state === 'removed') {
        process.stdout.write(`store ${arg} is removed already\n`);
        return;
      }
      if (n.state !== 'draining') await dir.setNodeState(arg, 'draining', Date.now(), n.state);
      process.stdout.write(
        `store ${arg} draining: its volumes are being copied to other stores, then it is removed\n`,
      );
      if (values.wait) await waitRemoved(dir, arg, timeoutMs, pollMs);
    } else if (verb === 'wait-drained') {
      const id = arg ?? process.env.POD_NAME;
      if (!id) throw new Error('admin store wait-drained needs a node id (or $POD_NAME)');
      const settleMs = seconds(values.settle, 5, 'settle');
      const timeoutMs = seconds(values.timeout, 3300, 'timeout');
      // The pod watch marks the store draining on the same deletion that runs this hook:
      // give it a moment. Errors (a directory election) count as "not yet".
      const settleEnd = Date.now() + settleMs;
      let state: NodeRecord['state'] | undefined;
      for (;;) {
        state = await dir
          .listNodes()
          .then((ns) => ns.find((x) => x.id === id)?.state)
          .catch(() => undefined);
        if (state === 'draining' || state === 'removed' || Date.now() >= settleEnd) break;
        await sleep(Math.min(pollMs, 500));
      }
      if (state !== 'draining') {
        process.stdout.write(`store ${id} is ${state ?? 'unknown'}: nothing to wait for\n`);
        return;
      }
      process.stdout.write(`store ${id} draining: waiting until its volumes are elsewhere\n`);
      await waitRemoved(dir, id, timeoutMs, pollMs);
    } else if (verb === 'remove') {
      if (!arg) throw new Error('admin store remove needs a node id');
      await dir.setNodeState(arg, 'removed', Date.now());
      process.stdout.write(`store ${arg} removed; its volumes will be re-replicated\n`);
    } else {
      throw new Error(`unknown admin store command ${verb}\n${HELP}`);
    }
  } finally {
    await dir.close();
  }
}

async function findNode(dir: MetadataClient, id: string): Promise<NodeRecord> {
  const n = (await dir.listNodes()).find((x) => x.id === id);
  if (!n) throw new Error(`no store node ${id}`);
  return n;
}

/** Polls until the node is removed; on a timeout, says what is left and exits 1. */
async function waitRemoved(
  dir: MetadataClient,
  id: string,
  timeoutMs: number,
  pollMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  let left = -1;
  let lastErr = '';
  for (;;) {
    try {
      const n = await findNode(dir, id);
      if (n.state === 'removed') {
        process.stdout.write(`store ${id} drained and removed\n`);
        return;
      }
      if (n.state !== 'draining') {
        process.stderr.write(`store ${id} is ${n.state} now: the drain was called off\n`);
        process.exitCode = 1;
        return;
      }
      const vols = (await dir.listVolumes()).filter((v) => v.replicas.includes(id));
      if (vols.length !== left) {
        left = vols.length;
        process.stdout.write(`store ${id}: ${left} volume(s) still to copy off\n`);
      }
      lastErr = '';
    } catch (e) {
      lastErr = (e as Error).message; // a directory election: try again
    }
    if (Date.now() >= end) {
      process.stderr.write(
        `timed out after ${timeoutMs / 1000} s: store ${id} is still draining` +
          `${left >= 0 ? ` with ${left} volume(s) on it` : ''}${lastErr ? ` (${lastErr})` : ''}` +
          ' (too few other stores to copy to? see admin store volumes)\n',
      );
      process.exitCode = 1;
      return;
    }
    await sleep(Math.min(pollMs, Math.max(0, end - Date.now())));
  }
}

function print(rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const r of rows) {
    process.stdout.write(
      `${r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
  }
}
