// kubestorage admin store: the store nodes and volumes the Raft directory knows, and
// removing a node for good (its volumes are then re-replicated at once).
import { parseArgs } from 'node:util';
import { loadConfig } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import { MetadataClient } from '../directory/wire/client.ts';

const HELP = `usage: kubestorage admin store <list|volumes|remove ID> [--directory URL,...]

  list        store nodes: id, state, zone, url, seconds since the last heartbeat
  volumes     volumes: id, state, replicas (and whether each replica's node is online)
  remove ID   mark a store removed for good; the directory re-replicates its volumes

  --directory URLS   directory replicas (default http://127.0.0.1:7001)
  --config FILE      the cluster secret comes from it or from KUBESTORAGE_CLUSTER_SECRET
`;

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      directory: { type: 'string', default: 'http://127.0.0.1:7001' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [verb, arg] = positionals;
  if (values.help || !verb) {
    process.stdout.write(HELP);
    if (!values.help) process.exitCode = 2;
    return;
  }
  const cfg = loadConfig({ file: values.config });
  if (!cfg.clusterSecret) throw new Error('set KUBESTORAGE_CLUSTER_SECRET');
  const dir = new MetadataClient(values.directory, new InternalAuth(cfg.clusterSecret));
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
