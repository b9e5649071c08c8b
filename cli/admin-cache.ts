// kubestorage admin cache status: the hot-object caches at a glance (issue 14) — the
// directory leader's hot table, extra replicas, this period's hottest objects, what each
// gateway last reported of its cache, and each store's cache (GET /cache). Signed with the
// cluster secret, like admin raft and admin store.
import { AUTH_HEADER, type InternalAuth } from '../common/internal-auth.ts';
import type { HotStatus } from '../directory/cluster/hotness.ts';
import type { ExtraReplicaRecord, HotObjectRecord } from '../directory/model/hot.ts';
import type { NodeRecord } from '../directory/model/topology.ts';
import { MetadataClient } from '../directory/wire/client.ts';
import { StoreClient } from '../store-node/client.ts';
import { parseAdminCommand } from './common.ts';

const HELP = `usage: kubestorage admin cache status [--directory URL,...] [--json]

  status         the directory's hot table (objects per level: replicas, store, gateway,
                 cooling), extra replicas and the stores holding them, this period's most
                 read objects, each gateway's cache counters as last reported, and each
                 store's cache and extra copies (GET /cache on every store)

  --directory URLS   directory replicas (default $KS_DIRECTORY_URLS, else http://127.0.0.1:7001);
                     the leader is asked (it alone has the read counts)
  --json             everything as one JSON document
  --timeout MS       per request (default 5000)
  --config FILE      the cluster secret comes from it or from KUBESTORAGE_CLUSTER_SECRET
`;

/** GET /cluster/cache of a directory replica. */
export interface DirectoryCacheStatus extends HotStatus {
  leader: { id: string | null; url: string | null; here: boolean };
  objects: HotObjectRecord[];
  extra: ExtraReplicaRecord[];
}

export type StoreCacheReply =
  | { id: string; state: string; status: Awaited<ReturnType<StoreClient['cacheStatus']>> }
  | { id: string; state: string; error: string };

export async function main(argv: string[]): Promise<void> {
  const cmd = parseAdminCommand(argv, HELP, ([verb]) => verb === 'status', 'timeout', 'json');
  if (!cmd) return;
  const { flags: values, auth } = cmd;
  const timeoutMs = Number(values.timeout ?? 5000) || 5000;
  const urls = cmd.directory
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean)
    .map((u) => new URL(u).origin);
  const dir = await directoryStatus(urls, auth, timeoutMs);
  const meta = new MetadataClient(urls, auth, { deadlineMs: timeoutMs });
  let stores: StoreCacheReply[];
  try {
    stores = await storeStatuses(await meta.listNodes(), auth, timeoutMs);
  } finally {
    await meta.close();
  }
  if (values.json) {
    // Stores list their copies' needle ids as bigints: decimal strings here, as on the wire.
    const text = JSON.stringify(
      { directory: dir, stores },
      (_, v) => (typeof v === 'bigint' ? v.toString() : v),
      2,
    );
    process.stdout.write(`${text}\n`);
    return;
  }
  process.stdout.write(formatCacheStatus(dir, stores));
}

async function getJson(url: string, path: string, auth: InternalAuth, timeoutMs: number) {
  const res = await fetch(`${url}${path}`, {
    headers: { [AUTH_HEADER]: auth.sign('GET', path) },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status === 403) throw new Error(`${url}: HTTP 403 (not this cluster secret?)`);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json() as Promise<unknown>;
}

/** The first replica that answers, then the leader it names (the counts are the leader's). */
export async function directoryStatus(
  urls: string[],
  auth: InternalAuth,
  timeoutMs: number,
): Promise<DirectoryCacheStatus> {
  const errors: string[] = [];
  for (const url of urls) {
    let s: DirectoryCacheStatus;
    try {
      s = (await getJson(url, '/cluster/cache', auth, timeoutMs)) as DirectoryCacheStatus;
    } catch (e) {
      errors.push((e as Error).message);
      continue;
    }
    if (s.leader.here || !s.leader.url) return s;
    try {
      return (await getJson(
        new URL(s.leader.url).origin,
        '/cluster/cache',
        auth,
        timeoutMs,
      )) as DirectoryCacheStatus;
    } catch (e) {
      errors.push(`leader ${(e as Error).message}`);
      return s; // the table still holds; the counts are missing
    }
  }
  throw new Error(`no directory replica answered: ${errors.join('; ')}`);
}

async function storeStatuses(
  nodes: NodeRecord[],
  auth: InternalAuth,
  timeoutMs: number,
): Promise<StoreCacheReply[]> {
  return Promise.all(
    nodes
      .filter((n) => n.state !== 'removed')
      .map(async (n): Promise<StoreCacheReply> => {
        const c = new StoreClient(n.url, auth, timeoutMs, 1);
        try {
          return { id: n.id, state: n.state, status: await c.cacheStatus() };
        } catch (e) {
          // A store from before issue 14 has no GET /cache; an offline one does not answer.
          return { id: n.id, state: n.state, error: (e as Error).message };
        } finally {
          await c.close();
        }
      }),
  );
}

const LEVELS = ['gateway', 'store', 'replicas', 'cooling'] as const;

function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

const num = (n: number | undefined) => (n === undefined ? '-' : String(n));
const ago = (at: number, now: number) => `${Math.max(0, Math.round((now - at) / 1000))}s ago`;

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The human-readable report (exported for tests). */
export function formatCacheStatus(
  d: DirectoryCacheStatus,
  stores: StoreCacheReply[],
  now = Date.now(),
): string {
  const out: string[] = [];
  const p = d.policy;
  const left = Math.max(0, d.period.startsAt + d.period.periodMs - now);
  out.push(
    `leader ${d.leader.id ?? '(none)'}${d.leader.here ? '' : ' (not reached: no counts)'}` +
      `  period ${d.period.index}, ${Math.round(left / 1000)}s left of ${d.period.periodMs / 1000}s`,
    `policy ${p.enabled ? 'on' : 'OFF'}: replicas at ${p.replicateThreshold} reads/period, ` +
      `store at ${p.cacheThreshold}, gateway at ${p.cacheThreshold} more; ` +
      `≤ ${p.maxExtraReplicas} extra replicas; objects ≤ ${bytes(p.maxObjectBytes)}; ` +
      `lease ${p.leaseMs} ms, cooling ${p.coolingMs} ms`,
    `stats  reports ${d.stats.reports}  tracked ${d.stats.trackedObjects}  ` +
      `promotions ${d.stats.promotions}  demotions ${d.stats.demotions}  ` +
      `extra added ${d.stats.extraAdded}  removed ${d.stats.extraRemoved}`,
    '',
  );
  const counts = LEVELS.map((l) => `${l} ${d.objects.filter((o) => o.level === l).length}`);
  out.push(`HOT OBJECTS (${d.objects.length}): ${counts.join(', ')}`);
  if (d.objects.length > 0) {
    const byLevel = [...d.objects].sort(
      (a, b) => LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level),
    );
    const rows = byLevel.map((o) => [
      o.level === 'cooling' ? `cooling→${o.next ?? 'off'}` : o.level,
      `${o.bucket}/${o.key}`,
      `${o.volumeId}/${o.needleId}`,
      bytes(o.size),
      ago(o.since, now),
    ]);
    out.push(table([['LEVEL', 'OBJECT', 'NEEDLE', 'SIZE', 'SINCE'], ...rows]));
  }
  out.push('', `EXTRA REPLICAS (${d.extra.length} needles)`);
  if (d.extra.length > 0) {
    const rows = d.extra.map((x) => [
      `${x.volumeId}/${x.needleId}`,
      `${x.bucket}/${x.key}`,
      x.stores.join(' '),
    ]);
    out.push(table([['NEEDLE', 'OBJECT', 'STORES'], ...rows]));
  }
  out.push('', 'TOP READS THIS PERIOD');
  if (d.top.length > 0) {
    const level = new Map(d.objects.map((o) => [`${o.bucket}/${o.key}`, o.level]));
    const rows = d.top.map((t) => [
      String(t.reads),
      `${t.bucket}/${t.key}`,
      level.get(`${t.bucket}/${t.key}`) ?? '-',
    ]);
    out.push(table([['READS', 'OBJECT', 'LEVEL'], ...rows]));
  } else out.push(d.leader.here ? '(no reads counted yet)' : '(the leader was not reached)');
  const gws = Object.entries(d.gateways).sort(([a], [b]) => a.localeCompare(b));
  out.push('', `GATEWAYS (${gws.length} reporting)`);
  if (gws.length > 0) {
    const shown = ['hits', 'misses', 'bytes', 'evictions', 'promotions'];
    const rows = gws.map(([id, { at, stats: s }]) => [
      id,
      ago(at, now),
      num(s.hits),
      num(s.misses),
      bytes(s.bytes),
      num(s.evictions),
      num(s.promotions),
      Object.entries(s)
        .filter(([k]) => !shown.includes(k))
        .map(([k, v]) => `${k}=${v}`)
        .join(' '),
    ]);
    out.push(
      table([
        ['GATEWAY', 'REPORTED', 'HITS', 'MISSES', 'BYTES', 'EVICTIONS', 'PROMOTIONS', 'OTHER'],
        ...rows,
      ]),
    );
  }
  out.push('', `STORES (${stores.length})`);
  if (stores.length > 0) {
    const sorted = [...stores].sort((a, b) => a.id.localeCompare(b.id));
    const rows = sorted
      .filter((s) => !('error' in s))
      .map((s) => {
        if ('error' in s) return [];
        const c = s.status.cache;
        return [
          s.id,
          s.state,
          c ? num(c.hits) : 'off',
          num(c?.misses),
          bytes(c?.bytes),
          num(c?.entries),
          num(c?.evictions),
          num(s.status.extra.count),
          bytes(s.status.extra.bytes),
        ];
      });
    out.push(
      table([
        [
          'STORE',
          'STATE',
          'HITS',
          'MISSES',
          'BYTES',
          'ENTRIES',
          'EVICTIONS',
          'EXTRA',
          'EXTRA_BYTES',
        ],
        ...rows,
      ]),
    );
    // Stores from before issue 14 have no GET /cache; offline ones do not answer.
    for (const s of sorted) if ('error' in s) out.push(`${s.id} (${s.state}): ${s.error}`);
  }
  return `${out.join('\n')}\n`;
}
