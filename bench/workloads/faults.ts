// The paper's fault experiment, as a benchmark (`kubestorage bench faults`) and a test
// (conformance/cluster-faults.test.ts): a local cluster under a bounded random read/write
// load of known objects; mid-run, kill -9 the Raft directory leader and every store of one
// zone; then count failed reads (after a client retry like the AWS SDK's standard mode),
// lost acknowledged writes (every one is read back byte-exactly), and how long read p99
// takes to come back near its baseline.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { type ClusterFile, down, up } from '../../cli/cluster.ts';
import { InternalAuth } from '../../common/internal-auth.ts';
import { MetadataClient } from '../../directory/wire/client.ts';
import { signRequest } from '../../gateway/auth/sign.ts';
import { UNSIGNED_PAYLOAD } from '../../gateway/auth/sigv4-canonical.ts';
import { mix32, Prng } from '../lib/prng.ts';
import { progress } from '../lib/stats.ts';
import { summarize } from '../lib/summary.ts';
import { escapeXml, lineChart, type Series } from '../lib/svg.ts';

export interface FaultsOptions {
  durationS: number;
  killAtS: number;
  size: number;
  /** Objects preloaded before the load starts. */
  objects: number;
  /** Requests in flight (closed loop), spread over the gateways. */
  concurrency: number;
  /** Operations started per second over all workers; 0 = as fast as `concurrency` allows. */
  rate: number;
  readRatio: number;
  seed: number;
  bucket: string;
  /** Zone whose stores are all killed with the directory leader. */
  killZone: string;
  /** Attempts per request, the first included (the AWS SDK's standard mode: 3). */
  attempts: number;
  /** One attempt's time limit; the SDK has none by default, but the run must stay bounded. */
  attemptTimeoutMs: number;
  /** Read p99 must come back under `factor` × its baseline. */
  factor: number;
  /** Progress lines (per second of load); default stderr. */
  log?: (line: string) => void;
}

export const DEFAULTS: Omit<FaultsOptions, 'log'> = {
  durationS: 40,
  killAtS: 15,
  size: 40 * 1024,
  objects: 2000,
  concurrency: 32,
  rate: 200,
  readRatio: 0.8,
  seed: 42,
  bucket: 'faults',
  killZone: 'z1',
  attempts: 3,
  attemptTimeoutMs: 10_000,
  factor: 2,
};

// ---------------------------------------------------------------------------------------
// Pure helpers (unit-tested in faults.test.ts)

/** "40s" → 40, "1.5m" → 90, "500ms" → 0.5, "12" → 12 (seconds). */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad duration ${JSON.stringify(s)}`);
  const v =
    Number(m[1]) *
    ({ ms: 0.001, s: 1, m: 60 } as Record<string, number>)[(m[2] ?? 's').toLowerCase()]!;
  if (!(v > 0)) throw new Error(`bad duration ${JSON.stringify(s)}`);
  return v;
}

/**
 * The AWS SDK's standard-mode delay before retry `retry` (1-based): full jitter over
 * 100 ms × 2^retry (the JS SDK v3's DEFAULT_RETRY_DELAY_BASE and formula), so ≤ 200 ms
 * before the 2nd attempt and ≤ 400 ms before the 3rd.
 */
export function backoffMs(retry: number, rand01: number): number {
  return Math.floor(Math.min(20_000, rand01 * 2 ** retry * 100));
}

/** Status codes the SDK's standard mode retries (5xx and throttling). */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 429;
}

/**
 * Object `id`'s bytes: a window of one random buffer, stamped with the id so no two
 * objects are equal (a read answered with another object's bytes must not pass).
 */
export class ObjectData {
  private readonly base: Buffer;
  private static readonly SLACK = 4096;

  constructor(
    readonly size: number,
    private readonly seed: number,
  ) {
    this.base = Buffer.allocUnsafe(size + ObjectData.SLACK);
    new Prng(seed ^ 0xfa17).fill(this.base, false);
  }

  get(id: number): Buffer {
    const off = mix32(id ^ this.seed) % ObjectData.SLACK;
    const b = Buffer.from(this.base.subarray(off, off + this.size));
    const stamp = Buffer.alloc(8);
    stamp.writeUInt32LE(id >>> 0, 0);
    stamp.writeUInt32LE(mix32(id + 1), 4);
    stamp.copy(b, 0, 0, Math.min(8, b.length));
    return b;
  }
}

export const faultKey = (prefix: string, id: number) =>
  `${prefix}/${id.toString(16).padStart(8, '0')}`;

/** One completed operation of the load. */
export interface OpSample {
  /** Completion time, ms since the load began. */
  end: number;
  /** Latency incl. retries and backoff, ms. */
  ms: number;
  op: 'GET' | 'PUT';
  attempts: number;
  ok: boolean;
}

export interface SecondStat {
  /** Window start, seconds since the load began. */
  t: number;
  reads: number;
  writes: number;
  readMean: number;
  readP50: number;
  readP99: number;
  readMax: number;
  writeP99: number;
  /** Operations that failed after every attempt. */
  readErrors: number;
  writeErrors: number;
  /** Operations that needed more than one attempt. */
  retried: number;
}

/** Operations grouped by completion second; windows t = 0 .. ceil(durationS) - 1 all present. */
export function perSecond(samples: readonly OpSample[], durationS: number): SecondStat[] {
  const n = Math.max(1, Math.ceil(durationS));
  const reads: number[][] = Array.from({ length: n }, () => []);
  const writes: number[][] = Array.from({ length: n }, () => []);
  const out: SecondStat[] = Array.from({ length: n }, (_, t) => ({
    t,
    reads: 0,
    writes: 0,
    readMean: 0,
    readP50: 0,
    readP99: 0,
    readMax: 0,
    writeP99: 0,
    readErrors: 0,
    writeErrors: 0,
    retried: 0,
  }));
  for (const s of samples) {
    // Requests in flight when the load stops finish late: they count in the last second.
    const t = Math.min(n - 1, Math.max(0, Math.floor(s.end / 1000)));
    const w = out[t]!;
    if (s.attempts > 1) w.retried++;
    if (s.op === 'GET') {
      w.reads++;
      if (!s.ok) w.readErrors++;
      reads[t]!.push(s.ms);
    } else {
      w.writes++;
      if (!s.ok) w.writeErrors++;
      writes[t]!.push(s.ms);
    }
  }
  for (let t = 0; t < n; t++) {
    const r = summarize(Float64Array.from(reads[t]!), reads[t]!.length);
    const w = summarize(Float64Array.from(writes[t]!), writes[t]!.length);
    Object.assign(out[t]!, {
      readMean: r.mean,
      readP50: r.p50,
      readP99: r.p99,
      readMax: r.max,
      writeP99: w.p99,
    });
  }
  return out;
}

export interface FaultsAnalysis {
  killAtS: number;
  /** Read latency over the seconds before the kill (the first second, warm-up, left out). */
  baseline: { reads: number; mean: number; p50: number; p99: number };
  /** Threshold: factor × baseline p99. */
  thresholdMs: number;
  /**
   * Seconds from the kill to the start of the first window from which every window's read
   * p99 stays under the threshold (0: it never went over); null if it never came back.
   */
  recoveryS: number | null;
  /** Windows at or after the kill whose read p99 is over the threshold. */
  slowSeconds: number[];
  worstSecond: { t: number; readP99: number; readMean: number; readMax: number } | null;
  failedReads: number;
  failedWrites: number;
  retriedOps: number;
  readsPerSecBefore: number;
  readsPerSecAfter: number;
  writesPerSecBefore: number;
  writesPerSecAfter: number;
  /** Acked writes per second in the first 5 s after the kill. */
  writesPerSecFirst5sAfter: number;
  /** Acked writes sent after the kill (the others may have reached the dead stores first). */
  writesStartedAfterKill: number;
}

function pooled(samples: readonly OpSample[], from: number, to: number) {
  const xs = samples.filter((s) => s.op === 'GET' && s.end >= from && s.end < to).map((s) => s.ms);
  const r = summarize(Float64Array.from(xs), xs.length);
  return { reads: r.count, mean: r.mean, p50: r.p50, p99: r.p99 };
}

/** The experiment's figures from the samples (`killAtS`: when the kill actually happened). */
export function analyze(
  samples: readonly OpSample[],
  durationS: number,
  killAtS: number,
  factor: number,
): FaultsAnalysis {
  const secs = perSecond(samples, durationS);
  const warm = killAtS > 2 ? 1000 : 0;
  const baseline = pooled(samples, warm, killAtS * 1000);
  const thresholdMs = factor * baseline.p99;
  const k = Math.min(secs.length - 1, Math.floor(killAtS));
  // The last window also holds the stragglers of the stop: judged like the others.
  const after = secs.slice(k);
  const slow = after.filter((w) => w.reads === 0 || w.readP99 >= thresholdMs).map((w) => w.t);
  let recoveryS: number | null;
  if (slow.length === 0) recoveryS = 0;
  else {
    const last = slow[slow.length - 1]!;
    recoveryS = last + 1 >= secs.length ? null : Math.max(0, last + 1 - killAtS);
  }
  let worst: SecondStat | null = null;
  for (const w of after) if (!worst || w.readP99 > worst.readP99) worst = w;
  const ok = samples.filter((s) => s.ok);
  const rate = (op: 'GET' | 'PUT', from: number, to: number) =>
    to > from
      ? ok.filter((s) => s.op === op && s.end >= from && s.end < to).length / ((to - from) / 1000)
      : 0;
  const killMs = killAtS * 1000;
  const endMs = durationS * 1000;
  return {
    killAtS,
    baseline,
    thresholdMs,
    recoveryS,
    slowSeconds: slow,
    worstSecond: worst
      ? { t: worst.t, readP99: worst.readP99, readMean: worst.readMean, readMax: worst.readMax }
      : null,
    failedReads: samples.filter((s) => s.op === 'GET' && !s.ok).length,
    failedWrites: samples.filter((s) => s.op === 'PUT' && !s.ok).length,
    retriedOps: samples.filter((s) => s.attempts > 1).length,
    readsPerSecBefore: rate('GET', warm, killMs),
    readsPerSecAfter: rate('GET', killMs, endMs),
    writesPerSecBefore: rate('PUT', warm, killMs),
    writesPerSecAfter: rate('PUT', killMs, endMs),
    writesPerSecFirst5sAfter: rate('PUT', killMs, Math.min(endMs, killMs + 5000)),
    writesStartedAfterKill: ok.filter((s) => s.op === 'PUT' && s.end - s.ms >= killMs).length,
  };
}

// ---------------------------------------------------------------------------------------
// The client: SigV4 over keep-alive pools, one per gateway, with the SDK's retry policy

export interface Outcome {
  ok: boolean;
  attempts: number;
  ms: number;
  /** Why the last attempt failed. */
  error?: string;
  /** True when a GET answered 200 with other bytes than were written. */
  corrupt?: boolean;
}

export class FaultClient {
  private readonly pools: Pool[];
  private readonly hosts: string[];
  private readonly rng: Prng;

  constructor(
    readonly gateways: readonly string[],
    private readonly keys: { accessKey: string; secretKey: string },
    private readonly o: {
      connections: number;
      attempts: number;
      attemptTimeoutMs: number;
      seed: number;
    },
  ) {
    this.hosts = gateways.map((g) => new URL(g).host);
    this.pools = gateways.map(
      (g) =>
        new Pool(new URL(g).origin, {
          connections: o.connections,
          pipelining: 1,
          keepAliveTimeout: 30_000,
          connectTimeout: o.attemptTimeoutMs,
          headersTimeout: o.attemptTimeoutMs,
          bodyTimeout: o.attemptTimeoutMs,
        }),
    );
    this.rng = new Prng(o.seed ^ 0xbac0ff);
  }

  private async attempt(
    gw: number,
    method: 'GET' | 'PUT',
    rawPath: string,
    body: Buffer | undefined,
  ): Promise<{ status: number; body?: Buffer; text?: string }> {
    const headers: Record<string, string> = { host: this.hosts[gw]! };
    if (body) headers['content-length'] = String(body.length);
    const signed = signRequest({
      method,
      rawPath,
      headers,
      accessKey: this.keys.accessKey,
      secretKey: this.keys.secretKey,
      payloadHash: UNSIGNED_PAYLOAD,
    }).headers;
    const res = await this.pools[gw]!.request({
      method,
      path: rawPath,
      headers: signed,
      body,
      signal: AbortSignal.timeout(this.o.attemptTimeoutMs),
    });
    if (res.statusCode !== 200) {
      return { status: res.statusCode, text: (await res.body.text()).slice(0, 200) };
    }
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    return { status: 200, body: Buffer.concat(chunks) };
  }

  /**
   * One S3 call with retries on 5xx, 429 and transport errors. A GET passes only with
   * exactly `expect`'s bytes; other answers (404, 403, wrong bytes) are final, as in the SDK.
   */
  async call(
    gw: number,
    method: 'GET' | 'PUT',
    key: string,
    data: { body?: Buffer; expect?: Buffer },
  ): Promise<Outcome> {
    const t0 = performance.now();
    const rawPath = `/${key}`;
    let error = '';
    for (let a = 1; a <= this.o.attempts; a++) {
      if (a > 1) await sleep(backoffMs(a - 1, this.rng.u32() / 0x1_0000_0000));
      try {
        const r = await this.attempt(gw, method, rawPath, data.body);
        if (r.status === 200) {
          const ms = performance.now() - t0;
          if (method === 'GET' && data.expect && !data.expect.equals(r.body!)) {
            return { ok: false, attempts: a, ms, corrupt: true, error: `GET ${key}: wrong bytes` };
          }
          return { ok: true, attempts: a, ms };
        }
        error = `${method} ${key}: HTTP ${r.status} ${r.text ?? ''}`;
        if (!retryableStatus(r.status)) {
          return { ok: false, attempts: a, ms: performance.now() - t0, error };
        }
      } catch (e) {
        error = `${method} ${key}: ${(e as Error)?.message ?? String(e)}`;
      }
    }
    return { ok: false, attempts: this.o.attempts, ms: performance.now() - t0, error };
  }

  async createBucket(bucket: string): Promise<void> {
    for (let gw = 0; gw < this.pools.length; gw++) {
      const headers = signRequest({
        method: 'PUT',
        rawPath: `/${bucket}`,
        headers: { host: this.hosts[gw]! },
        accessKey: this.keys.accessKey,
        secretKey: this.keys.secretKey,
        payloadHash: UNSIGNED_PAYLOAD,
      }).headers;
      const res = await this.pools[gw]!.request({ method: 'PUT', path: `/${bucket}`, headers });
      const text = await res.body.text();
      if (res.statusCode !== 200 && !/BucketAlreadyOwnedByYou/.test(text)) {
        throw new Error(`create bucket ${bucket}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.close()));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------
// The cluster side

/** The directory leader, asked of every replica's unauthenticated /status. */
export async function findLeader(c: ClusterFile): Promise<ClusterFile['directories'][number]> {
  for (let tries = 0; tries < 50; tries++) {
    for (const d of c.directories) {
      try {
        const r = await fetch(`${d.url}/status`, { signal: AbortSignal.timeout(1_000) });
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

function sigkill(pid: number): boolean {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
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

/** A port base P with P+1 .. P+30 free on loopback (cluster up's layout), tried at random. */
export async function freePortBase(rng = Math.random): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (let i = 0; i < 20; i++) {
    const base = 20_000 + 100 * Math.floor(rng() * 400);
    let ok = true;
    for (let p = base + 1; p <= base + 30 && ok; p++) ok = await free(p);
    if (ok) return base;
  }
  throw new Error('no free port range found');
}

/** Where writes sent after the kill went: their volumes' replicas and those replicas' zones. */
export interface Placement {
  checked: number;
  volumes: Array<{ id: number; replicas: string[]; zones: string[]; writes: number }>;
  /** Checked writes whose volume has a replica in the killed zone (degraded-mode writes). */
  onKilledZone: number;
  mode: 're-homed' | 'degraded' | 'mixed' | 'unknown';
}

async function placementOf(
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

// ---------------------------------------------------------------------------------------
// The experiment

export interface FaultsResult {
  settings: Omit<FaultsOptions, 'log'>;
  gateways: string[];
  preload: { objects: number; seconds: number; retried: number };
  killed: Killed[];
  /** Actual kill time, seconds since the load began. */
  killAtS: number;
  loadSeconds: number;
  reads: number;
  writes: number;
  ackedWrites: number;
  corruptReads: number;
  firstErrors: string[];
  seconds: SecondStat[];
  analysis: FaultsAnalysis;
  verify: {
    checked: number;
    /** Acknowledged (or preloaded) objects not read back byte-exactly after retries. */
    lost: number;
    retried: number;
    unverified: number;
    seconds: number;
    firstLost: string[];
  };
  writePlacement: Placement | null;
}

/** Runs `op(i)` for i in [0, n) with `concurrency` in flight; stops starting new ones at `deadline`. */
async function pool(
  n: number,
  concurrency: number,
  deadline: number,
  op: (i: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < n && performance.now() < deadline) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, worker));
  return next;
}

export async function runFaults(c: ClusterFile, opts: FaultsOptions): Promise<FaultsResult> {
  const log = opts.log ?? progress;
  const { durationS, killAtS } = opts;
  if (!(killAtS > 0 && killAtS < durationS)) throw new Error('kill-at must be inside the duration');
  const data = new ObjectData(opts.size, opts.seed);
  const prefix = `${opts.bucket}/r${Date.now().toString(36)}`;
  const client = new FaultClient(
    c.gateways,
    { accessKey: c.accessKey, secretKey: c.secretKey },
    {
      connections: opts.concurrency,
      attempts: opts.attempts,
      attemptTimeoutMs: opts.attemptTimeoutMs,
      seed: opts.seed,
    },
  );
  const ng = c.gateways.length;
  try {
    await client.createBucket(opts.bucket);

    // Preload: the known objects every read picks from.
    const p0 = performance.now();
    let preRetried = 0;
    const preFail: string[] = [];
    await pool(
      opts.objects,
      Math.max(opts.concurrency, 16),
      Number.POSITIVE_INFINITY,
      async (i) => {
        const r = await client.call(i % ng, 'PUT', faultKey(prefix, i), { body: data.get(i) });
        if (r.attempts > 1) preRetried++;
        if (!r.ok) preFail.push(r.error ?? '?');
      },
    );
    if (preFail.length > 0) throw new Error(`preload: ${preFail.length} failed: ${preFail[0]}`);
    const preload = {
      objects: opts.objects,
      seconds: (performance.now() - p0) / 1000,
      retried: preRetried,
    };
    log(`preloaded ${opts.objects} objects of ${opts.size} B in ${preload.seconds.toFixed(1)} s`);

    // Objects a read may pick: preloaded ones, then writes as they are acknowledged.
    const known: number[] = Array.from({ length: opts.objects }, (_, i) => i);
    const acked: number[] = [];
    const ackedAfterKill: number[] = [];
    let nextWrite = opts.objects;
    const samples: OpSample[] = [];
    const firstErrors: string[] = [];
    let corruptReads = 0;
    const rng = new Prng(opts.seed ^ 0x10ad);
    const t0 = performance.now();
    const endAt = t0 + durationS * 1000;
    let killed: Killed[] = [];
    let killedAtMs = Number.NaN;
    let killError: unknown = null;
    const killTimer = setTimeout(() => {
      killLeaderAndZone(c, opts.killZone).then(
        (k) => {
          killed = k;
          killedAtMs = performance.now() - t0;
          log(
            `t=${(killedAtMs / 1000).toFixed(1)} s: kill -9 ${k.map((x) => `${x.role === 'store' ? 'store' : 'directory leader'} ${x.id} (pid ${x.pid})`).join(', ')}`,
          );
        },
        (e) => {
          killError = e;
        },
      );
    }, killAtS * 1000);
    let lastLogged = 0;
    const ticker = setInterval(() => {
      const now = performance.now() - t0;
      const t = Math.floor(now / 1000) - 1;
      if (t < lastLogged || t >= durationS) return;
      lastLogged = t + 1;
      const w = perSecond(
        samples.filter((s) => Math.floor(s.end / 1000) === t),
        t + 1,
      )[t];
      if (w) {
        log(
          `t=${t} s: ${w.reads} reads (p50 ${w.readP50.toFixed(1)} p99 ${w.readP99.toFixed(1)} ms), ${w.writes} writes, ${w.readErrors + w.writeErrors} errors, ${w.retried} retried`,
        );
      }
    }, 250);
    ticker.unref();
    const interval = opts.rate > 0 ? 1000 / opts.rate : 0;
    let next = 0;
    let slot = t0 - interval;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (interval > 0) {
          // Paced: the load stays below what the cluster can take, so latency is service
          // time rather than the queue a closed loop builds. After a stall it catches up
          // by at most one second's worth, not by a flood of every missed slot.
          slot = Math.max(slot + interval, performance.now() - 1000);
          const wait = slot - performance.now();
          if (wait > 0) await sleep(wait);
        }
        if (performance.now() >= endAt) return;
        const gw = i % ng;
        const isRead = rng.u32() / 0x1_0000_0000 < opts.readRatio;
        let r: Outcome;
        if (isRead) {
          const id = known[rng.below(known.length)]!;
          r = await client.call(gw, 'GET', faultKey(prefix, id), { expect: data.get(id) });
          if (r.corrupt) corruptReads++;
        } else {
          const id = nextWrite++;
          const sentAfterKill = killed.length > 0;
          r = await client.call(gw, 'PUT', faultKey(prefix, id), { body: data.get(id) });
          if (r.ok) {
            acked.push(id);
            known.push(id);
            if (sentAfterKill) ackedAfterKill.push(id);
          }
        }
        const end = performance.now() - t0;
        samples.push({ end, ms: r.ms, op: isRead ? 'GET' : 'PUT', attempts: r.attempts, ok: r.ok });
        if (!r.ok && firstErrors.length < 10) {
          firstErrors.push(`t=${(end / 1000).toFixed(2)} s: ${r.error}`);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: opts.concurrency }, worker));
    } finally {
      clearTimeout(killTimer);
      clearInterval(ticker);
    }
    const loadSeconds = (performance.now() - t0) / 1000;
    if (killError) throw killError;
    if (killed.length === 0) throw new Error('the kill did not happen');
    const killAt = killedAtMs / 1000;
    const seconds = perSecond(samples, durationS);
    const analysis = analyze(samples, durationS, killAt, opts.factor);

    // Read back everything that was acknowledged, byte for byte.
    const v0 = performance.now();
    const all = [...Array.from({ length: opts.objects }, (_, i) => i), ...acked];
    let lost = 0;
    let vRetried = 0;
    const firstLost: string[] = [];
    const checked = await pool(
      all.length,
      Math.max(opts.concurrency, 16),
      v0 + Math.max(120_000, all.length * 20),
      async (j) => {
        const id = all[j]!;
        const r = await client.call(j % ng, 'GET', faultKey(prefix, id), {
          expect: data.get(id),
        });
        if (r.attempts > 1) vRetried++;
        if (!r.ok) {
          lost++;
          if (firstLost.length < 10) firstLost.push(r.error ?? '?');
        }
      },
    );
    const verify = {
      checked,
      lost,
      retried: vRetried,
      unverified: all.length - checked,
      seconds: (performance.now() - v0) / 1000,
      firstLost,
    };
    log(
      `read back ${checked}/${all.length} acknowledged objects in ${verify.seconds.toFixed(1)} s: ${lost} lost`,
    );
    let writePlacement: Placement | null = null;
    try {
      // A sample is enough to tell re-homed volumes from degraded writes.
      const step = Math.max(1, Math.floor(ackedAfterKill.length / 200));
      const keys = ackedAfterKill
        .filter((_, j) => j % step === 0)
        .map((id) => faultKey(prefix, id));
      const live = {
        ...c,
        directories: c.directories.filter((d) => !killed.some((k) => k.pid === d.pid)),
      };
      writePlacement = await withTimeout(
        placementOf(live, opts.bucket, keys, opts.killZone),
        20_000,
      );
    } catch (e) {
      log(`could not look up where the writes after the kill went: ${(e as Error).message}`);
    }
    const { log: _log, ...settings } = opts;
    return {
      settings,
      gateways: [...c.gateways],
      preload,
      killed,
      killAtS: killAt,
      loadSeconds,
      reads: samples.filter((s) => s.op === 'GET').length,
      writes: samples.filter((s) => s.op === 'PUT').length,
      ackedWrites: acked.length,
      corruptReads,
      firstErrors,
      seconds,
      analysis,
      verify,
      writePlacement,
    };
  } finally {
    await client.close();
  }
}

// ---------------------------------------------------------------------------------------
// Output

const f1 = (x: number) => x.toFixed(1);

/** The summary table. */
export function describeFaults(r: FaultsResult): string {
  const a = r.analysis;
  const fac = r.settings.factor;
  const rows: [string, string][] = [
    ['killed', r.killed.map((k) => `${k.id}${k.zone ? `(${k.zone})` : '(leader)'}`).join(' ')],
    ['kill at', `${r.killAtS.toFixed(2)} s of ${r.settings.durationS} s`],
    [
      'baseline read latency',
      `mean ${f1(a.baseline.mean)} p50 ${f1(a.baseline.p50)} p99 ${f1(a.baseline.p99)} ms (${a.baseline.reads} reads)`,
    ],
    [
      'worst second after kill',
      a.worstSecond
        ? `t=${a.worstSecond.t} s: p99 ${f1(a.worstSecond.readP99)} mean ${f1(a.worstSecond.readMean)} max ${f1(a.worstSecond.readMax)} ms`
        : '-',
    ],
    [
      `recovery (p99 < ${fac}× baseline = ${f1(a.thresholdMs)} ms)`,
      a.recoveryS === null ? 'never' : `${f1(a.recoveryS)} s after the kill`,
    ],
    ['seconds over threshold', a.slowSeconds.length ? a.slowSeconds.join(' ') : 'none'],
    [
      'reads',
      `${r.reads} (${f1(a.readsPerSecBefore)}/s before, ${f1(a.readsPerSecAfter)}/s after); failed after retry ${a.failedReads}; wrong bytes ${r.corruptReads}`,
    ],
    [
      'writes',
      `${r.writes}, acked ${r.ackedWrites} (${f1(a.writesPerSecBefore)}/s before, ${f1(a.writesPerSecAfter)}/s after, ${f1(a.writesPerSecFirst5sAfter)}/s in the first 5 s); failed ${a.failedWrites}; ${a.writesStartedAfterKill} sent after the kill acked`,
    ],
    ['requests retried', `${a.retriedOps}`],
    [
      'acked writes lost',
      `${r.verify.lost} of ${r.verify.checked} read back (incl. ${r.preload.objects} preloaded)${r.verify.unverified ? `, ${r.verify.unverified} NOT CHECKED` : ''}`,
    ],
    [
      'writes after the kill',
      r.writePlacement
        ? `${r.writePlacement.mode}: ${r.writePlacement.volumes.map((v) => `vol ${v.id} on ${v.replicas.map((x, i) => `${x}/${v.zones[i]}`).join('+')} (${v.writes})`).join(', ')}`
        : 'unknown',
    ],
  ];
  const w = Math.max(...rows.map((x) => x[0].length));
  return `${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n`;
}

/** Bars as an outline polyline (lineChart draws lines only). */
function bars(name: string, pts: [number, number][]): Series {
  const out: [number, number][] = [];
  for (const [t, v] of pts) out.push([t, 0], [t, v], [t + 1, v], [t + 1, 0]);
  return { name, points: out };
}

/** Three stacked panels: read p50/p99 (log), ops/s, errors and retries; a line at the kill. */
export function faultsChart(r: FaultsResult): string {
  const s = r.seconds;
  const W = 760;
  const H = 300;
  const mid = (w: SecondStat) => w.t + 0.5;
  const lat = s.filter((w) => w.reads > 0);
  const ys = lat.flatMap((w) => [w.readP50, w.readP99]).filter((y) => y > 0);
  const lo = ys.length ? Math.min(...ys) : 1;
  const hi = ys.length ? Math.max(...ys) : 10;
  const kill = (y0: number, y1: number): Series => ({
    name: `kill -9 at ${r.killAtS.toFixed(1)} s`,
    points: [
      [r.killAtS, y0],
      [r.killAtS, y1],
    ],
  });
  const panels = [
    lineChart({
      title: `Fault experiment: read latency per second (kill at ${r.killAtS.toFixed(1)} s)`,
      xLabel: 'seconds since load start',
      yLabel: 'read latency incl. retries (ms, log)',
      logY: true,
      width: W,
      height: H,
      series: [
        { name: 'read p50', points: lat.map((w) => [mid(w), w.readP50]) },
        { name: 'read p99', points: lat.map((w) => [mid(w), w.readP99]) },
        {
          name: `${r.settings.factor}× baseline p99`,
          points: [
            [0, r.analysis.thresholdMs],
            [s.length, r.analysis.thresholdMs],
          ],
        },
        kill(lo, hi),
      ],
    }),
    lineChart({
      title: 'Completed operations per second',
      xLabel: 'seconds since load start',
      yLabel: 'ops/s',
      width: W,
      height: H,
      series: [
        { name: 'reads/s', points: s.map((w) => [mid(w), w.reads]) },
        { name: 'writes/s', points: s.map((w) => [mid(w), w.writes]) },
        kill(0, Math.max(1, ...s.map((w) => w.reads))),
      ],
    }),
    lineChart({
      title: 'Failures (after all attempts) and retried requests per second',
      xLabel: 'seconds since load start',
      yLabel: 'requests',
      width: W,
      height: H,
      series: [
        bars(
          'failed',
          s.map((w) => [w.t, w.readErrors + w.writeErrors]),
        ),
        bars(
          'retried',
          s.map((w) => [w.t, w.retried]),
        ),
        kill(0, Math.max(1, ...s.map((w) => Math.max(w.retried, w.readErrors + w.writeErrors)))),
      ],
    }),
  ];
  const body = panels.map((p, i) => p.replace('<svg ', `<svg y="${i * H}" `)).join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${3 * H}" viewBox="0 0 ${W} ${3 * H}">` +
    `<title>${escapeXml('kubestorage bench faults')}</title>\n${body}</svg>\n`
  );
}

// ---------------------------------------------------------------------------------------
// kubestorage bench faults

export const FAULTS_USAGE = `usage: kubestorage bench faults [options]
  Starts a local cluster (3 directories, 4 stores in zones z1/z2, 2 gateways, 2 replicas),
  preloads objects, runs a paced random read/write load over both gateways, kill -9s the
  directory leader and every store of zone z1 mid-run, then reads every acknowledged
  object back. Requests are retried like the AWS SDK's standard mode (3 attempts).
  --data DIR            cluster data and logs (default a temp dir, removed unless --keep)
  --cluster FILE        use a running cluster's cluster.json instead (its processes get killed)
  --port-base P         ports of the cluster (default a free random range)
  --duration 40s        load duration
  --kill-at 15s         when to kill
  --size 40KiB          object size
  --objects N           objects preloaded (default ${DEFAULTS.objects})
  --concurrency C       requests in flight (default ${DEFAULTS.concurrency})
  --rate R              operations started per second, 0 = unpaced (default ${DEFAULTS.rate})
  --read-ratio 0.8      share of reads
  --kill-zone z1        zone whose stores die
  --seed N              seed of payloads and the operation mix (default 42)
  --keep                keep the temp data dir (logs in DIR/logs)
  --json FILE           write results as JSON and the chart to FILE.svg (without .json)`;

export function parseFaultsArgs(argv: string[], parseSize: (s: string) => number) {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      cluster: { type: 'string' },
      'port-base': { type: 'string' },
      duration: { type: 'string', default: `${DEFAULTS.durationS}s` },
      'kill-at': { type: 'string', default: `${DEFAULTS.killAtS}s` },
      size: { type: 'string', default: '40KiB' },
      objects: { type: 'string', default: String(DEFAULTS.objects) },
      concurrency: { type: 'string', default: String(DEFAULTS.concurrency) },
      rate: { type: 'string', default: String(DEFAULTS.rate) },
      'read-ratio': { type: 'string', default: String(DEFAULTS.readRatio) },
      'kill-zone': { type: 'string', default: DEFAULTS.killZone },
      seed: { type: 'string', default: String(DEFAULTS.seed) },
      keep: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const int = (name: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: an integer ≥ ${min}`);
    return n;
  };
  const readRatio = Number(values['read-ratio']);
  if (!(readRatio >= 0 && readRatio <= 1)) throw new Error('--read-ratio: 0..1');
  const opts: Omit<FaultsOptions, 'log'> = {
    ...DEFAULTS,
    durationS: parseDuration(values.duration),
    killAtS: parseDuration(values['kill-at']),
    size: parseSize(values.size),
    objects: int('objects', values.objects, 1),
    concurrency: int('concurrency', values.concurrency, 1),
    rate: int('rate', values.rate, 0),
    readRatio,
    killZone: values['kill-zone'],
    seed: int('seed', values.seed, 0),
  };
  if (!(opts.killAtS < opts.durationS)) throw new Error('--kill-at must be before --duration');
  return {
    help: !!values.help,
    opts,
    data: values.data,
    cluster: values.cluster,
    portBase:
      values['port-base'] === undefined ? undefined : int('port-base', values['port-base'], 1024),
    keep: values.keep,
    json: values.json,
  };
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

export async function faultsCommand(
  argv: string[],
  parseSize: (s: string) => number,
): Promise<void> {
  const a = parseFaultsArgs(argv, parseSize);
  if (a.help) {
    process.stdout.write(`${FAULTS_USAGE}\n`);
    return;
  }
  let own: OwnCluster | undefined;
  const onSignal = () => {
    progress('interrupted: stopping the cluster');
    void (own?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: FaultsResult;
  try {
    let cluster: ClusterFile;
    if (a.cluster) {
      cluster = JSON.parse(fs.readFileSync(a.cluster, 'utf8')) as ClusterFile;
    } else {
      own = await startCluster({ dir: a.data, portBase: a.portBase, keep: a.keep });
      cluster = own.cluster;
      progress(`cluster up in ${own.dir} (logs in ${own.dir}/logs)`);
    }
    result = await runFaults(cluster, a.opts);
  } finally {
    await own?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(describeFaults(result));
  if (a.json) {
    const out = {
      command: `kubestorage bench faults ${argv.join(' ')}`,
      date: new Date().toISOString(),
      machine: {
        cores: os.availableParallelism?.() ?? os.cpus().length,
        loadAvg: os.loadavg().map((x) => +x.toFixed(2)),
        node: process.version,
      },
      ...result,
    };
    fs.writeFileSync(a.json, `${JSON.stringify(out, null, 2)}\n`);
    const svg = `${a.json.replace(/\.json$/, '')}.svg`;
    fs.writeFileSync(svg, faultsChart(result));
    progress(`wrote ${a.json}, ${svg}`);
  }
}
