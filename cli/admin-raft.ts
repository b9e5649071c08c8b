// kubestorage admin raft: membership and health of the Raft directory, through the replicas'
// GET /status and POST /raft/admin/*, both signed with the cluster secret.
import { parseArgs } from 'node:util';
import { loadConfig } from '../common/config.ts';
import { AUTH_HEADER, InternalAuth } from '../common/internal-auth.ts';

const HELP = `usage: kubestorage admin raft <command> [args] [--directory URL,...]

  status                 every replica's role, term, leader and indexes, and the leader's
                         view of each peer (match index, health)
  add ID URL             add a replica (started with --join) as a learner; the leader
                         promotes it to voter once it has caught up
  remove ID              remove a replica from the group
  transfer ID            hand leadership to a voter and wait until it leads

  --directory URLS   replicas to ask, comma-separated (default http://127.0.0.1:7001);
                     status also asks every peer those replicas know of
  --json             status: the replicas' /status answers as JSON
  --timeout MS       per request, and how long transfer waits (default 5000)
  --config FILE      JSON config file; the cluster secret comes from it or from
                     KUBESTORAGE_CLUSTER_SECRET (every command needs it)

Exit status 1 when the change is refused or no replica answers.
`;

interface PeerStatus {
  url?: string;
  matchIndex?: number;
  health: string;
}

export interface ReplicaStatus {
  id: string;
  role: string;
  term: number;
  leaderId: string | null;
  leaderUrl: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  conf: { voters: string[]; learners: string[] };
  peers: Record<string, PeerStatus>;
}

type Reply = { url: string; status: ReplicaStatus } | { url: string; error: string };

class CommandError extends Error {}

function baseUrls(s: string): string[] {
  const list = s
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (list.length === 0) throw new CommandError('--directory: at least one URL');
  return list.map((u) => {
    try {
      return new URL(u).origin;
    } catch {
      throw new CommandError(`--directory: not a URL: ${JSON.stringify(u)}`);
    }
  });
}

async function getStatus(url: string, auth: InternalAuth, timeoutMs: number): Promise<Reply> {
  try {
    const res = await fetch(`${url}/status`, {
      headers: { [AUTH_HEADER]: auth.sign('GET', '/status') },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.status === 403) return { url, error: 'HTTP 403 (not this cluster secret?)' };
    if (!res.ok) return { url, error: `HTTP ${res.status}` };
    return { url, status: (await res.json()) as ReplicaStatus };
  } catch (e) {
    return { url, error: errorText(e) };
  }
}

function errorText(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  return err.cause?.code ?? err.cause?.message ?? err.message;
}

/** The given replicas, then (one round) every peer they name that was not asked yet. */
async function gather(urls: string[], auth: InternalAuth, timeoutMs: number): Promise<Reply[]> {
  const replies = await Promise.all(urls.map((u) => getStatus(u, auth, timeoutMs)));
  const asked = new Set(urls);
  const more = new Set<string>();
  for (const r of replies) {
    if (!('status' in r)) continue;
    for (const p of Object.values(r.status.peers ?? {})) {
      if (!p.url) continue;
      const origin = new URL(p.url).origin;
      if (!asked.has(origin)) more.add(origin);
    }
  }
  replies.push(...(await Promise.all([...more].map((u) => getStatus(u, auth, timeoutMs)))));
  return replies;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

export function formatStatus(replies: Reply[]): string {
  const ok = replies.filter((r): r is Extract<Reply, { status: unknown }> => 'status' in r);
  ok.sort((a, b) => a.status.id.localeCompare(b.status.id));
  const rows = [['ID', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'LAST', 'SNAPSHOT', 'URL']];
  for (const { url, status: s } of ok) {
    rows.push([
      s.id,
      s.role,
      String(s.term),
      s.leaderId ?? '-',
      String(s.commitIndex),
      String(s.appliedIndex),
      String(s.lastIndex),
      String(s.snapshotIndex),
      url,
    ]);
  }
  for (const r of replies) {
    if (!('status' in r))
      rows.push(['?', 'unreachable', '', '', '', '', '', '', `${r.url} (${r.error})`]);
  }
  let out = `${table(rows)}\n`;
  // Only the leader tracks its peers' progress; a follower would print "unknown" for all.
  const view = ok.find((r) => r.status.role === 'leader') ?? ok[0];
  if (view) {
    const s = view.status;
    out += `\nvoters: ${s.conf.voters.join(', ') || '-'}   learners: ${s.conf.learners.join(', ') || '-'}\n`;
    const peers = Object.entries(s.peers ?? {}).sort(([a], [b]) => a.localeCompare(b));
    if (peers.length > 0) {
      const kind = (id: string) => (s.conf.learners.includes(id) ? 'learner' : 'voter');
      const prows = [['PEER', 'KIND', 'MATCH', 'BEHIND', 'HEALTH', 'URL']];
      for (const [id, p] of peers) {
        prows.push([
          id,
          kind(id),
          p.matchIndex === undefined ? '-' : String(p.matchIndex),
          p.matchIndex === undefined ? '-' : String(Math.max(0, s.commitIndex - p.matchIndex)),
          p.health,
          p.url ?? '-',
        ]);
      }
      out += `\npeers as seen by ${s.id} (${s.role}):\n${table(prows)}\n`;
    }
  }
  const leaders = new Set(ok.map((r) => r.status.leaderId).filter((l) => l !== null));
  if (ok.length > 0 && leaders.size === 0) out += '\nno leader known to any replica\n';
  if (leaders.size > 1) out += `\nreplicas disagree on the leader: ${[...leaders].join(', ')}\n`;
  return out;
}

interface AdminAnswer {
  status: number;
  body: {
    ok?: boolean;
    error?: string;
    message?: string;
    leaderId?: string | null;
    leaderUrl?: string | null;
    conf?: { voters: string[]; learners: string[] };
  };
}

async function post(
  url: string,
  action: string,
  body: Record<string, string>,
  auth: InternalAuth,
  timeoutMs: number,
): Promise<AdminAnswer> {
  const path = `/raft/admin/${action}`;
  const text0 = JSON.stringify(body);
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...auth.signBody('POST', path, text0),
    },
    body: text0,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed: AdminAnswer['body'];
  try {
    parsed = JSON.parse(text) as AdminAnswer['body'];
  } catch {
    parsed = { error: `HTTP ${res.status}`, message: text.slice(0, 200) };
  }
  return { status: res.status, body: parsed };
}

/**
 * Sends the change to the first replica that answers and, when that one is not the leader,
 * once more to the leader it names: following further could loop between stale views.
 * Returns the URL of the replica that accepted it.
 */
async function change(
  urls: string[],
  action: string,
  body: Record<string, string>,
  auth: InternalAuth,
  timeoutMs: number,
): Promise<{ at: string; conf?: { voters: string[]; learners: string[] } }> {
  const unreachable: string[] = [];
  for (const url of urls) {
    let a: AdminAnswer;
    try {
      a = await post(url, action, body, auth, timeoutMs);
    } catch (e) {
      unreachable.push(`${url}: ${errorText(e)}`);
      continue;
    }
    let at = url;
    if (a.status === 409 && a.body.error === 'NotLeader') {
      if (!a.body.leaderUrl) {
        throw new CommandError(`${url} knows no leader now (election under way?); try again`);
      }
      at = new URL(a.body.leaderUrl).origin;
      try {
        a = await post(at, action, body, auth, timeoutMs);
      } catch (e) {
        throw new CommandError(`leader ${a.body.leaderId} at ${at} unreachable: ${errorText(e)}`);
      }
    }
    if (a.status === 200 && a.body.ok) return { at, conf: a.body.conf };
    throw new CommandError(
      `${at}: ${a.body.error ?? `HTTP ${a.status}`}: ${a.body.message ?? ''}`.trimEnd(),
    );
  }
  throw new CommandError(`no replica reachable: ${unreachable.join('; ')}`);
}

async function waitForLeader(
  urls: string[],
  id: string,
  auth: InternalAuth,
  timeoutMs: number,
): Promise<ReplicaStatus | null> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const r of await gather(urls, auth, Math.min(timeoutMs, 1_000))) {
      if ('status' in r && r.status.id === id && r.status.role === 'leader') return r.status;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      directory: { type: 'string', default: 'http://127.0.0.1:7001' },
      json: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '5000' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [verb, id, peerUrl] = positionals;
  if (values.help || !verb) {
    process.stdout.write(HELP);
    if (!values.help) process.exitCode = 2;
    return;
  }
  try {
    const timeoutMs = Number(values.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new CommandError('--timeout: milliseconds, a positive integer');
    }
    const urls = baseUrls(values.directory!);
    if (!['status', 'add', 'remove', 'transfer'].includes(verb)) {
      throw new CommandError(`unknown command: admin raft ${verb}\n\n${HELP}`);
    }
    const secret = loadConfig({ file: values.config }).clusterSecret;
    if (!secret)
      throw new CommandError('set KUBESTORAGE_CLUSTER_SECRET (or clusterSecret in --config)');
    const auth = new InternalAuth(secret);
    if (verb === 'status') {
      const replies = await gather(urls, auth, timeoutMs);
      if (values.json) {
        const out = replies.map((r) => ('status' in r ? { url: r.url, ...r.status } : r));
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      } else process.stdout.write(formatStatus(replies));
      if (!replies.some((r) => 'status' in r)) process.exitCode = 1;
      return;
    }
    if (!id) throw new CommandError(`admin raft ${verb} needs a replica id`);
    if (verb === 'add' && !peerUrl) throw new CommandError('admin raft add needs ID and URL');
    const body: Record<string, string> = verb === 'add' ? { id, url: peerUrl! } : { id };
    const { at, conf } = await change(urls, verb, body, auth, timeoutMs);
    const members = conf
      ? ` (voters ${conf.voters.join(',') || '-'}; learners ${conf.learners.join(',') || '-'})`
      : '';
    if (verb === 'add') {
      process.stdout.write(
        `${id} (${peerUrl}) added as a learner by ${at}${members}; it becomes a voter once caught up\n`,
      );
    } else if (verb === 'remove') {
      process.stdout.write(`${id} removed by ${at}${members}\n`);
    } else {
      // The leader only starts the handover (TimeoutNow); the target still has to win.
      const s = await waitForLeader([at, ...urls], id, auth, timeoutMs);
      if (!s)
        throw new CommandError(
          `transfer to ${id} started but it did not lead within ${timeoutMs} ms`,
        );
      process.stdout.write(`${id} is the leader now (term ${s.term})\n`);
    }
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    process.stderr.write(`kubestorage admin raft: ${e.message}\n`);
    process.exitCode = 1;
  }
}
