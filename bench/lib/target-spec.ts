// What `--endpoint` / `--targets` name: where the requests go, how, and which processes
// serve them (so that the bench can report their CPU per request).
//
//   NAME=embedded                      kubestorage server started by the bench
//   NAME=cluster@DIR                   a `kubestorage cluster up --data DIR`
//   NAME=[s3@|http@]URL[@pids=P,P…][@pidfile=FILE]…
//
// PID lists use commas like the target list does: a comma starts a new target only when
// NAME= follows it.
import type { Mode } from './target.ts';

export interface TargetSpec {
  name: string;
  /** A URL, or 'embedded'; a cluster's first gateway once opened. */
  endpoint: string;
  mode: Mode;
  /** Server processes to measure, with their descendants. */
  pids?: number[];
  /** Files holding a server's PID (nginx.pid), read when the target is opened. */
  pidfiles?: string[];
  /** DIR of `kubestorage cluster up --data DIR`: endpoint, keys and processes from DIR/cluster.json. */
  cluster?: string;
}

const OPTION = /@(pids|pidfile)=([^@]*)$/;
/** Option keys: a target cannot be called that, or `a=URL@pids=1,pids=2` would be ambiguous. */
const RESERVED = new Set(['pids', 'pidfile']);

export function parsePids(s: string): number[] {
  const pids = s
    .split(/[,+\s]+/)
    .filter((x) => x !== '')
    .map(Number);
  if (pids.length === 0 || pids.some((p) => !Number.isInteger(p) || p <= 0)) {
    throw new Error(`bad PID list ${JSON.stringify(s)} (want e.g. 123,456)`);
  }
  return pids;
}

/** One target's spec, without its `NAME=`. */
export function parseTargetSpec(name: string, spec: string, defaultMode: Mode): TargetSpec {
  let rest = spec;
  const pids: number[] = [];
  const pidfiles: string[] = [];
  for (let m = OPTION.exec(rest); m; m = OPTION.exec(rest)) {
    if (m[1] === 'pids') pids.unshift(...parsePids(m[2]!));
    else if (m[2]) pidfiles.unshift(m[2]);
    else throw new Error(`${name}: @pidfile= wants a file`);
    rest = rest.slice(0, m.index);
  }
  const t: TargetSpec = { name, endpoint: rest, mode: defaultMode };
  const cluster = /^cluster@(.+)$/.exec(rest);
  const mode = /^(s3|http)@(.*)$/.exec(rest);
  if (cluster) {
    t.cluster = cluster[1]!;
    t.endpoint = `cluster@${t.cluster}`;
    t.mode = 's3';
  } else if (mode) {
    t.mode = mode[1] as Mode;
    t.endpoint = mode[2]!;
  }
  if (t.endpoint === 'embedded') t.mode = 's3';
  if ((t.endpoint === 'embedded' || t.cluster) && (pids.length || pidfiles.length)) {
    throw new Error(`${name}: ${t.endpoint} knows its own processes; no @pids/@pidfile`);
  }
  if (!t.cluster && t.endpoint !== 'embedded' && !/^https?:\/\//.test(t.endpoint)) {
    throw new Error(`${name}: want embedded, cluster@DIR or a URL, got ${JSON.stringify(spec)}`);
  }
  if (pids.length) t.pids = pids;
  if (pidfiles.length) t.pidfiles = pidfiles;
  return t;
}

/** "a=embedded,b=http@http://127.0.0.1:8080@pidfile=/x/nginx.pid" → specs. */
export function parseTargets(s: string, defaultMode: Mode): TargetSpec[] {
  return s.split(/,(?=[A-Za-z_][\w.-]*=)/).map((part) => {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`bad target ${JSON.stringify(part)} (want name=URL)`);
    const name = part.slice(0, eq);
    if (RESERVED.has(name)) throw new Error(`bad target ${JSON.stringify(part)}: @${name}= ?`);
    return parseTargetSpec(name, part.slice(eq + 1), defaultMode);
  });
}
