// Helpers shared by CLI commands: flags and config, listen addresses, the cluster secret,
// shutdown.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Config, loadConfig } from '../common/config.ts';
import { InternalAuth } from '../common/internal-auth.ts';
import type { Logger } from '../common/log.ts';
import type { StoreOptions } from '../store-node/store.ts';

/** 'a b c' → 'a' | 'b' | 'c': flag names listed in one string keep their types. */
type Words<S extends string> = S extends `${infer H} ${infer T}` ? H | Words<T> : S;

export type Flags<S extends string, B extends string> = { [K in Words<S>]?: string } & {
  [K in Words<B>]?: boolean;
};

/** Flags named in `strings` (each takes a value) and `booleans`, space-separated. */
export function parseFlags<S extends string, B extends string = never>(
  argv: string[],
  strings: S,
  booleans?: B,
): Flags<S, B> {
  return flagsAndWords(argv, strings, booleans, false).flags;
}

function flagsAndWords<S extends string, B extends string>(
  argv: string[],
  strings: S,
  booleans: B | undefined,
  allowPositionals: boolean,
): { flags: Flags<S, B>; words: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const s of strings.split(' ')) options[s] = { type: 'string' };
  for (const b of booleans?.split(' ') ?? []) options[b] = { type: 'boolean' };
  if ('help' in options) options.help = { type: 'boolean', short: 'h' };
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals });
  return { flags: values as Flags<S, B>, words: positionals };
}

/** The directory replicas an admin command asks when --directory is not given. */
export const DEFAULT_DIRECTORY_URLS = 'http://127.0.0.1:7001';

/**
 * The start of an admin command signed with the cluster secret (admin store, cache, …):
 * its flags plus --directory URLS, --config FILE and --help, and its words (the verb and
 * its arguments). Null once the help is printed — asked for, or `wants(words)` is false
 * (then with exit code 2); otherwise the flags, the words, the cluster's InternalAuth
 * (the secret from the config or KUBESTORAGE_CLUSTER_SECRET) and the directory URLs
 * (--directory, else $KS_DIRECTORY_URLS, else DEFAULT_DIRECTORY_URLS), comma-separated.
 */
export function parseAdminCommand<S extends string, B extends string = never>(
  argv: string[],
  help: string,
  wants: (words: string[]) => boolean,
  strings: S,
  booleans?: B,
): {
  flags: Flags<S, B>;
  words: string[];
  auth: InternalAuth;
  directory: string;
} | null {
  const { flags, words } = flagsAndWords(
    argv,
    `${strings} directory config`,
    booleans ? `${booleans} help` : 'help',
    true,
  );
  const f = flags as Flags<S, B> & { directory?: string; config?: string; help?: boolean };
  if (f.help || !wants(words)) {
    process.stdout.write(help);
    if (!f.help) process.exitCode = 2;
    return null;
  }
  const cfg = loadConfig({ file: f.config });
  if (!cfg.clusterSecret) throw new Error('set KUBESTORAGE_CLUSTER_SECRET');
  return {
    flags,
    words,
    auth: new InternalAuth(cfg.clusterSecret),
    directory: f.directory ?? process.env.KS_DIRECTORY_URLS ?? DEFAULT_DIRECTORY_URLS,
  };
}

/**
 * A server command's start: its flags plus --config FILE and --help. Null once the help is
 * printed; otherwise the flags and the config (defaults ← file ← KUBESTORAGE_* env) for
 * the flags to override.
 */
export function parseCommand<S extends string, B extends string = never>(
  argv: string[],
  help: string,
  strings: S,
  booleans?: B,
): { flags: Flags<S, B>; cfg: Config } | null {
  const flags = parseFlags(
    argv,
    `${strings} config`,
    booleans ? `${booleans} help` : 'help',
  ) as Flags<S, B> & { config?: string; help?: boolean };
  if (flags.help) {
    process.stdout.write(help);
    return null;
  }
  return { flags, cfg: loadConfig({ file: flags.config }) };
}

/** An integer flag within [min, max]; undefined when not given. */
export function intFlag(
  flags: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`--${name}: an integer from ${min} to ${max}`);
  }
  return n;
}

export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  if (!m) throw new Error(`--listen wants HOST:PORT, got ${JSON.stringify(s)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port ${port} out of range`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/**
 * The configured cluster secret, or one kept in `<dataDir>/cluster.secret` (created on
 * first start) so a single node works out of the box. Clusters must configure one.
 */
export function clusterSecret(configured: string, dataDir: string, log: Logger): string {
  if (configured) return configured;
  const file = path.join(dataDir, 'cluster.secret');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    fs.mkdirSync(dataDir, { recursive: true });
    const secret = crypto.randomBytes(32).toString('base64url');
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    log.warn(
      { file },
      'no cluster secret configured: generated one (set KUBESTORAGE_CLUSTER_SECRET for a cluster)',
    );
    return secret;
  }
}

/** Runs `stop` once on SIGINT/SIGTERM, then exits. */
export function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (e) => {
        log.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** Store options from the store section of the config. */
export function storeOptions(sc: Config['store']): Partial<StoreOptions> {
  return {
    maxSize: sc.maxVolumeSize,
    fsync: sc.fsync,
    compression: sc.compression,
    compactGarbageRatio: sc.compactGarbageRatio,
    compactMinGarbageBytes: sc.compactMinGarbageBytes,
    compactCheckMs: sc.compactCheckMs,
    scrubIntervalMs: sc.scrubIntervalMs,
  };
}
