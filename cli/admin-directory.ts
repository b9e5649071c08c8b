// kubestorage admin directory: backups of the Raft directory's state (buckets, object
// records, users and keys, store nodes and volumes, hot tables), fetched from the leader's
// GET /cluster/backup (signed with the cluster secret) into a file, and checks of such a
// file. A backup is restored by starting a new single-replica directory on it
// (`kubestorage directory --restore FILE`); see docs/directory.md "Backup and restore".
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { AUTH_HEADER, type InternalAuth } from '../common/internal-auth.ts';
import { checkSnapshot } from '../directory/engine/sm-snapshot.ts';
import { BACKUP_PATH } from '../directory/replica/raft-server.ts';
import { parseAdminCommand } from './common.ts';

const HELP = `usage: kubestorage admin directory <backup|check> [options]

  backup --out FILE  the directory's state as of now, from the leader (found through any
                     replica), written to FILE: checked whole (record count, checksum),
                     synced, then renamed into place — FILE is never a partial backup.
                     --out -: to stdout (e.g. through kubectl exec), checked as it passes;
                     exit status 1 if it was not whole
  check FILE         checks a backup file; prints its record count and Raft index (reads
                     only the file, though the cluster secret is still asked for)

  --directory URLS   replicas to ask, comma-separated (default $KS_DIRECTORY_URLS, else
                     http://127.0.0.1:7001)
  --timeout S        give up on the download after S seconds (default 600)
  --config FILE      the cluster secret comes from it or from KUBESTORAGE_CLUSTER_SECRET

Needle data (object bytes) lives on the store nodes and is not in the backup.
Exit status 1 when no replica answers with a backup or the file does not check out.
`;

class CommandError extends Error {}

export async function main(argv: string[]): Promise<void> {
  const cmd = parseAdminCommand(argv, HELP, ([verb]) => Boolean(verb), 'out timeout');
  if (!cmd) return;
  const { flags: values } = cmd;
  const [verb, arg] = cmd.words;
  try {
    if (verb === 'check') {
      if (!arg) throw new CommandError('check FILE: which file?');
      const r = await checkFile(arg);
      process.stdout.write(`${arg}: ${r.frames} records, at Raft index ${r.appliedIndex}: ok\n`);
    } else if (verb === 'backup') {
      if (!values.out) throw new CommandError('backup needs --out FILE');
      const seconds = Number(values.timeout ?? 600);
      if (!Number.isFinite(seconds) || seconds <= 0) {
        throw new CommandError('--timeout must be a number of seconds');
      }
      const r = await backupDirectory({
        urls: baseUrls(cmd.directory),
        auth: cmd.auth,
        out: values.out,
        timeoutMs: seconds * 1000,
      });
      // With --out - the backup itself is on stdout: the summary goes to stderr.
      (values.out === '-' ? process.stderr : process.stdout).write(
        `backup of ${r.leader} at Raft index ${r.appliedIndex}: ${r.frames} records, ` +
          `${r.bytes} bytes, written to ${values.out === '-' ? 'stdout' : values.out}\n`,
      );
    } else {
      throw new CommandError(`unknown command: admin directory ${verb}\n\n${HELP}`);
    }
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    process.stderr.write(`kubestorage admin directory: ${e.message}\n`);
    process.exitCode = 1;
  }
}

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

async function checkFile(file: string) {
  try {
    return await checkSnapshot(createReadStream(file));
  } catch (e) {
    throw new CommandError(`${file}: ${(e as Error).message}`);
  }
}

export interface BackupResult {
  /** The replica that served it (the leader). */
  leader: string;
  appliedIndex: number;
  frames: number;
  bytes: number;
}

/**
 * Downloads the leader's backup into `out` (through `out`.partial: checked, synced and
 * renamed, so `out` is a whole backup or untouched). Each replica is asked in turn; one
 * that is not the leader names it, and the leader is asked next.
 */
export async function backupDirectory(o: {
  urls: string[];
  auth: InternalAuth;
  out: string;
  timeoutMs: number;
}): Promise<BackupResult> {
  const reasons: string[] = [];
  const asked = new Set<string>();
  const queue = [...o.urls];
  const signal = AbortSignal.timeout(o.timeoutMs);
  while (queue.length > 0) {
    const url = queue.shift() as string;
    if (asked.has(url)) continue;
    asked.add(url);
    let res: Response;
    try {
      res = await fetch(`${url}${BACKUP_PATH}`, {
        headers: { [AUTH_HEADER]: o.auth.sign('GET', BACKUP_PATH) },
        signal,
      });
    } catch (e) {
      reasons.push(`${url}: ${(e as Error).message}`);
      continue;
    }
    if (res.status === 409) {
      const b = (await res.json().catch(() => ({}))) as { leaderUrl?: string | null };
      if (b.leaderUrl) queue.unshift(new URL(b.leaderUrl).origin);
      else reasons.push(`${url}: no leader known`);
      continue;
    }
    if (!res.ok || !res.body) {
      const hint = res.status === 403 ? ' (not this cluster secret?)' : '';
      reasons.push(`${url}: HTTP ${res.status}${hint}`);
      await res.body?.cancel().catch(() => {});
      continue;
    }
    return { leader: url, ...(await save(res, o.out)) };
  }
  throw new CommandError(`no backup: ${reasons.join('; ') || 'no replica to ask'}`);
}

/** `--out -`: to stdout as it arrives, checked on the way; a failed check exits 1. */
async function toStdout(
  res: Response,
): Promise<{ appliedIndex: number; frames: number; bytes: number }> {
  let bytes = 0;
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
  async function* tee(): AsyncGenerator<Buffer> {
    for await (const chunk of body) {
      const b = chunk as Buffer;
      bytes += b.length;
      if (!process.stdout.write(b)) {
        await new Promise<void>((resolve) => process.stdout.once('drain', () => resolve()));
      }
      yield b;
    }
  }
  try {
    return { ...(await checkSnapshot(tee())), bytes };
  } catch (e) {
    throw new CommandError(`the backup sent to stdout is not whole: ${(e as Error).message}`);
  }
}

async function save(
  res: Response,
  out: string,
): Promise<{ appliedIndex: number; frames: number; bytes: number }> {
  if (out === '-') return toStdout(res);
  const partial = `${out}.partial`;
  const f = await fs.open(partial, 'w', 0o600);
  let bytes = 0;
  try {
    for await (const chunk of Readable.fromWeb(
      res.body as import('node:stream/web').ReadableStream,
    )) {
      const b = chunk as Buffer;
      await f.write(b);
      bytes += b.length;
    }
    await f.sync();
  } catch (e) {
    await f.close().catch(() => {});
    await fs.rm(partial, { force: true });
    throw new CommandError(`download cut short: ${(e as Error).message}`);
  }
  await f.close();
  let r: { frames: number; appliedIndex: number };
  try {
    r = await checkSnapshot(createReadStream(partial));
  } catch (e) {
    await fs.rm(partial, { force: true });
    throw new CommandError(`the backup received does not check out: ${(e as Error).message}`);
  }
  await fs.rename(partial, out);
  const dir = await fs.open(path.dirname(path.resolve(out)), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
  return { ...r, bytes };
}
