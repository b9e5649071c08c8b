// One typed configuration: defaults ← JSON file (--config or KUBESTORAGE_CONFIG) ← env
// (KUBESTORAGE_<SECTION>_<KEY>, e.g. KUBESTORAGE_STORE_MAX_VOLUME_SIZE=256MiB) ← flags.
import fs from 'node:fs';

export interface Config {
  /** Shared by every node of a cluster; derives the internal request tokens. */
  clusterSecret: string;
  logLevel: string;
  /** The embedded server (kubestorage server / npm start). */
  server: {
    data: string;
    listen: string;
    rootAccessKey: string;
    rootSecretKey: string;
  };
  gateway: {
    region: string;
    /** Virtual-host style base domain; empty = path style only. */
    domain: string;
    maxObjectSize: number;
  };
  store: {
    data: string;
    listen: string;
    maxVolumeSize: number;
    maxNeedleSize: number;
    fsync: boolean;
    compression: 'auto' | 'off';
    compactGarbageRatio: number;
    compactMinGarbageBytes: number;
    compactCheckMs: number;
    scrubIntervalMs: number;
  };
}

export const DEFAULT_CONFIG: Config = {
  clusterSecret: '',
  logLevel: 'info',
  server: {
    data: './data',
    listen: '127.0.0.1:9000',
    rootAccessKey: '',
    rootSecretKey: '',
  },
  gateway: {
    region: 'us-east-1',
    domain: '',
    maxObjectSize: 5 * 1024 ** 3,
  },
  store: {
    data: './data/store',
    listen: '127.0.0.1:8080',
    maxVolumeSize: 1024 ** 3,
    maxNeedleSize: 64 * 1024 ** 2,
    fsync: true,
    compression: 'auto',
    compactGarbageRatio: 0.3,
    compactMinGarbageBytes: 16 * 1024 ** 2,
    compactCheckMs: 60_000,
    scrubIntervalMs: 24 * 3600_000,
  },
};

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  t: 1e12,
  ki: 1024,
  mi: 1024 ** 2,
  gi: 1024 ** 3,
  ti: 1024 ** 4,
};

/** "4096", "64MiB", "1g", "1.5GiB" → bytes. */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$/i.exec(s);
  if (!m) throw new Error(`not a size: ${JSON.stringify(s)}`);
  const unit = UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) throw new Error(`not a size: ${JSON.stringify(s)}`);
  return Math.round(Number(m[1]) * unit);
}

function envName(path: string[]): string {
  return `KUBESTORAGE_${path
    .map((p) => p.replace(/[A-Z]/g, (c) => `_${c}`))
    .join('_')
    .toUpperCase()}`;
}

function coerce(def: unknown, raw: unknown, where: string): unknown {
  if (typeof def === 'number') {
    const n = typeof raw === 'number' ? raw : parseSize(String(raw));
    if (!Number.isFinite(n)) throw new Error(`${where}: not a number`);
    return n;
  }
  if (typeof def === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    const s = String(raw).toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) return true;
    if (['0', 'false', 'no', 'off'].includes(s)) return false;
    throw new Error(`${where}: not a boolean: ${raw}`);
  }
  return String(raw);
}

type Tree = Record<string, unknown>;

function merge(def: Tree, over: Tree | undefined, env: NodeJS.ProcessEnv, path: string[]): Tree {
  const out: Tree = {};
  for (const [k, d] of Object.entries(def)) {
    const p = [...path, k];
    if (d && typeof d === 'object') {
      out[k] = merge(d as Tree, over?.[k] as Tree | undefined, env, p);
      continue;
    }
    let v: unknown = d;
    if (over && over[k] !== undefined) v = coerce(d, over[k], p.join('.'));
    const e = env[envName(p)];
    if (e !== undefined && e !== '') v = coerce(d, e, envName(p));
    out[k] = v;
  }
  return out;
}

export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.KUBESTORAGE_CONFIG;
  const fromFile = file ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Tree) : undefined;
  return merge(DEFAULT_CONFIG as unknown as Tree, fromFile, env, []) as unknown as Config;
}
