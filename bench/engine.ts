// In-process benchmark of the volume engine (store-node): fsync'd group-commit appends,
// random reads on a warm page cache, RAM of the needle index per live needle, and the
// time Store.open takes to load a 10 M-needle volume set.
//
//   npm run bench:engine -- --needles 200000 --size 4096 --json /tmp/engine.json
//
// Run with --expose-gc (the npm script does) so index RAM can be measured.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DEFAULT_STORE_OPTIONS, Store } from '../store-node/store.ts';
import { generateIndexSet, indexNeedle } from './lib/index-set.ts';
import { Prng } from './lib/prng.ts';
import { fmtInt, percentiles, progress, runConcurrent } from './lib/stats.ts';

const USAGE = `usage: npm run bench:engine -- [options]
  --needles N          needles to write (default 100000)
  --size BYTES         payload size per needle (default 4096)
  --concurrency C      operations in flight (default 256)
  --reads R            random reads (default = needles)
  --payload ascii|random  random printable ASCII (compressible) or random bytes (default ascii)
  --index-needles M    needles in the generated set for the load test (default 10000000; 0 skips)
  --index-volumes V    volumes to spread them over (default 4; more if a .dat would pass 1 GiB)
  --dir DIR            where to put data (default: a fresh dir under the OS temp dir)
  --keep               keep the data afterwards
  --no-fsync           experiment only: appends are not fdatasync'd
  --max-batch-bytes B  experiment: engine group-commit batch limit (default: engine default)
  --seed S             PRNG seed (default 1)
  --duration-cap SEC   each phase stops after this long and reports what it measured (default 300)
  --json FILE          write the results as JSON`;

function parse() {
  const { values } = parseArgs({
    options: {
      needles: { type: 'string', default: '100000' },
      size: { type: 'string', default: '4096' },
      concurrency: { type: 'string', default: '256' },
      reads: { type: 'string' },
      payload: { type: 'string', default: 'ascii' },
      'index-needles': { type: 'string', default: '10000000' },
      'index-volumes': { type: 'string', default: '4' },
      dir: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'no-fsync': { type: 'boolean', default: false },
      'max-batch-bytes': { type: 'string' },
      seed: { type: 'string', default: '1' },
      'duration-cap': { type: 'string', default: '300' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v?.replace(/_/g, ''));
    if (!Number.isSafeInteger(n) || n < min) {
      console.error(`--${name} must be an integer ≥ ${min}, got ${v}\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  const payload = values.payload;
  if (payload !== 'ascii' && payload !== 'random') {
    console.error(`--payload must be ascii or random\n${USAGE}`);
    process.exit(2);
  }
  const needles = int('needles', values.needles, 1);
  const capSeconds = Number(values['duration-cap']);
  if (!(capSeconds > 0)) {
    console.error(`--duration-cap must be a positive number of seconds\n${USAGE}`);
    process.exit(2);
  }
  return {
    needles,
    size: int('size', values.size, 0),
    concurrency: int('concurrency', values.concurrency, 1),
    reads: values.reads === undefined ? needles : int('reads', values.reads, 0),
    payload: payload as 'ascii' | 'random',
    indexNeedles: int('index-needles', values['index-needles'], 0),
    indexVolumes: int('index-volumes', values['index-volumes'], 1),
    dir: values.dir,
    keep: values.keep,
    fsync: !values['no-fsync'],
    maxBatchBytes:
      values['max-batch-bytes'] === undefined
        ? DEFAULT_STORE_OPTIONS.maxBatchBytes
        : int('max-batch-bytes', values['max-batch-bytes'], 1),
    seed: int('seed', values.seed, 0),
    capSeconds,
    json: values.json,
  };
}

type Opts = ReturnType<typeof parse>;

const gc = (globalThis as { gc?: () => void }).gc;

async function settledArrayBuffers(): Promise<number> {
  if (!gc) return Number.NaN;
  for (let k = 0; k < 3; k++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().arrayBuffers;
}

/** Index RAM of an open store: the measured delta is taken by the caller. */
async function indexTableBytes(store: Store): Promise<{ needles: number; tableBytes: number }> {
  const st = await store.status();
  return { needles: st.needles, tableBytes: st.indexBytes };
}

/** Latency of one 4 KiB write + fdatasync on the data dir's disk: context for write figures. */
function probeFdatasync(dir: string): number {
  const file = path.join(dir, 'fsync-probe');
  const fd = fs.openSync(file, 'w');
  const buf = Buffer.alloc(4096, 1);
  const rounds = 50;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    fs.writeSync(fd, buf, 0, buf.length, i * 4096);
    fs.fdatasyncSync(fd);
  }
  const ms = (performance.now() - t0) / rounds;
  fs.closeSync(fd);
  fs.rmSync(file);
  return ms;
}

interface WriteSet {
  written: Uint32Array; // global indices that were acknowledged
  count: number;
  vids: Uint32Array;
  cookies: Uint32Array;
  poolOff: Uint32Array;
}

async function writePhase(store: Store, o: Opts, pool: Buffer, rng: Prng) {
  const n = o.needles;
  const vids = new Uint32Array(n);
  const cookies = new Uint32Array(n);
  const poolOff = new Uint32Array(n);
  const room = pool.length - o.size;
  for (let i = 0; i < n; i++) {
    cookies[i] = rng.u32();
    poolOff[i] = rng.below(room + 1);
  }
  const lat = new Float64Array(n);
  let compressed = 0;
  let storedBytes = 0;
  const r = await runConcurrent({
    label: 'write',
    total: n,
    concurrency: o.concurrency,
    capSeconds: o.capSeconds,
    latencies: lat,
    op: async (i) => {
      const data = pool.subarray(poolOff[i]!, poolOff[i]! + o.size);
      const w = await store.append(BigInt(i + 1), cookies[i]!, data);
      vids[i] = w.volumeId;
      storedBytes += w.storedLength;
      if (w.compressed) compressed++;
    },
  });
  const written = new Uint32Array(r.done);
  let k = 0;
  for (let i = 0; i < n; i++) if (vids[i] !== 0) written[k++] = i;
  const set: WriteSet = { written, count: k, vids, cookies, poolOff };
  return { run: r, lat: percentiles(lat, r.done), compressed, storedBytes, set };
}

async function readPhase(store: Store, o: Opts, pool: Buffer, set: WriteSet, rng: Prng) {
  const picks = new Uint32Array(o.reads);
  for (let k = 0; k < o.reads; k++) picks[k] = set.written[rng.below(set.count)]!;
  const lat = new Float64Array(o.reads);
  let mismatches = 0;
  let bytes = 0;
  const r = await runConcurrent({
    label: 'read',
    total: o.reads,
    concurrency: o.concurrency,
    capSeconds: o.capSeconds,
    latencies: lat,
    op: async (k) => {
      const i = picks[k]!;
      const { data } = await store.read(set.vids[i]!, BigInt(i + 1), set.cookies[i]!);
      bytes += data.length;
      const off = set.poolOff[i]!;
      if (!data.equals(pool.subarray(off, off + o.size))) mismatches++;
    },
  });
  if (mismatches > 0) throw new Error(`read phase: ${mismatches} needles came back wrong`);
  return { run: r, lat: percentiles(lat, r.done), bytes };
}

async function indexPhase(dir: string, o: Opts) {
  progress(`[generate] writing ${fmtInt(o.indexNeedles)} small needles into ${dir}`);
  const gen = generateIndexSet({
    dir,
    needles: o.indexNeedles,
    volumes: o.indexVolumes,
    seed: o.seed,
    capSeconds: o.capSeconds,
  });
  progress(
    `[generate] ${fmtInt(gen.needles)} needles in ${gen.volumes.size} volumes, ` +
      `${(gen.datBytes / 2 ** 20).toFixed(0)} MiB .dat + ${(gen.idxBytes / 2 ** 20).toFixed(0)} MiB .idx ` +
      `in ${gen.seconds.toFixed(1)} s${gen.capped ? ' (stopped by --duration-cap)' : ''}`,
  );
  const before = await settledArrayBuffers();
  const heapBefore = process.memoryUsage().heapUsed;
  progress('[load] Store.open');
  const t0 = performance.now();
  const store = await Store.open(dir);
  const loadSeconds = (performance.now() - t0) / 1000;
  const after = await settledArrayBuffers();
  const heapAfter = process.memoryUsage().heapUsed;
  const { needles, tableBytes } = await indexTableBytes(store);
  progress(`[load] ${fmtInt(needles)} needles loaded in ${loadSeconds.toFixed(2)} s`);
  if (needles !== gen.needles) {
    await store.close();
    throw new Error(`index load: generated ${gen.needles} needles, Store.open found ${needles}`);
  }
  // Prove the generated set is what the engine expects: random needles read back intact.
  const rng = new Prng(o.seed ^ 0x5eed);
  const scratch = Buffer.allocUnsafe(8);
  const vols = [...gen.volumes.entries()];
  const checks = Math.min(1000, gen.needles);
  for (let c = 0; c < checks; c++) {
    const i = c === 0 ? 0 : c === 1 ? gen.needles - 1 : rng.below(gen.needles);
    const vid = vols.find(([, [a, b]]) => i >= a && i < b)![0];
    const want = indexNeedle(i, o.seed, scratch);
    const got = await store.read(vid, want.id, want.cookie);
    if (!got.data.equals(want.data)) {
      await store.close();
      throw new Error(`index load: needle ${want.id} in volume ${vid} read back wrong`);
    }
  }
  await store.close();
  return {
    gen,
    loadSeconds,
    needles,
    tableBytes,
    measuredBytes: after - before,
    heapBytes: heapAfter - heapBefore,
    verified: checks,
  };
}

async function main() {
  const o = parse();
  if (!gc) progress('warning: run with --expose-gc (npm run bench:engine does) to measure RAM');
  const root = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ks-bench-'));
  fs.mkdirSync(root, { recursive: true });
  const writeDir = path.join(root, 'write');
  const indexDir = path.join(root, 'index');
  for (const d of [writeDir, indexDir]) {
    if (fs.existsSync(d) && fs.readdirSync(d).length > 0) {
      console.error(`${d} is not empty: pick another --dir or remove it`);
      process.exit(2);
    }
  }
  const cleanup = () => {
    if (o.keep) return;
    fs.rmSync(writeDir, { recursive: true, force: true });
    fs.rmSync(indexDir, { recursive: true, force: true });
    if (!o.dir) fs.rmSync(root, { recursive: true, force: true });
  };
  const interrupted = () => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  const loadAtStart = os.loadavg()[0]!;
  if (loadAtStart > 0.5) {
    progress(
      `warning: 1-min load average is ${loadAtStart.toFixed(2)} on ${os.cpus().length} CPUs: ` +
        'other processes compete with the benchmark; figures will be low and noisy',
    );
  }
  try {
    fs.mkdirSync(writeDir, { recursive: true });
    const fsyncMs = probeFdatasync(writeDir);
    const rng = new Prng(o.seed);

    // Payloads are slices of one random pool at random offsets, so generating them costs
    // the engine no CPU during the timed phase and every needle is still different.
    const pool = Buffer.allocUnsafe(Math.max(32 * 2 ** 20, o.size * 4));
    rng.fill(pool, o.payload === 'ascii');

    const store = await Store.open(writeDir, { fsync: o.fsync, maxBatchBytes: o.maxBatchBytes });
    progress(
      `[write] ${fmtInt(o.needles)} × ${o.size} B ${o.payload}, ${o.concurrency} in flight, fsync ${o.fsync}`,
    );
    const w = await writePhase(store, o, pool, rng);
    const writeRate = w.run.done / w.run.seconds;
    progress(
      `[write] ${fmtInt(w.run.done)} in ${w.run.seconds.toFixed(1)} s: ${fmtInt(writeRate)}/s`,
    );

    let rd: Awaited<ReturnType<typeof readPhase>> | null = null;
    if (o.reads > 0 && w.set.count > 0) {
      progress(`[read] ${fmtInt(o.reads)} uniform random reads, ${o.concurrency} in flight`);
      rd = await readPhase(store, o, pool, w.set, rng);
      progress(
        `[read] ${fmtInt(rd.run.done)} in ${rd.run.seconds.toFixed(1)} s: ${fmtInt(rd.run.done / rd.run.seconds)}/s`,
      );
    }
    const writeStatus = await store.status();
    await store.close();

    // Index RAM of the written set as loaded from disk (presized maps).
    const wb = await settledArrayBuffers();
    const reopened = await Store.open(writeDir);
    const wa = await settledArrayBuffers();
    const writeSetIndex = await indexTableBytes(reopened);
    await reopened.close();

    let ix: Awaited<ReturnType<typeof indexPhase>> | null = null;
    if (o.indexNeedles > 0) {
      // Free the written set first: its files are no longer needed.
      if (!o.keep) fs.rmSync(writeDir, { recursive: true, force: true });
      ix = await indexPhase(indexDir, o);
    }

    const cpus = os.cpus();
    const round = (x: number, d = 2) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);
    const result = {
      writeNeedlesPerSec: round(writeRate, 0),
      writeP99Ms: round(w.lat.p99, 3),
      readNeedlesPerSec: rd ? round(rd.run.done / rd.run.seconds, 0) : null,
      readP99Ms: rd ? round(rd.lat.p99, 3) : null,
      bytesPerNeedle: ix ? round(ix.measuredBytes / ix.needles) : null,
      indexTableBytesPerNeedle: ix ? round(ix.tableBytes / ix.needles) : null,
      indexLoadSeconds: ix ? round(ix.loadSeconds, 3) : null,
      indexNeedles: ix ? ix.needles : 0,
      needles: o.needles,
      size: o.size,
      concurrency: o.concurrency,
      payload: o.payload,
      compressedShare: w.run.done > 0 ? round(w.compressed / w.run.done, 4) : null,
      fsync: o.fsync,
      maxBatchBytes: o.maxBatchBytes,
      machine: {
        cpus: cpus.length,
        model: cpus[0]?.model ?? 'unknown',
        totalMemBytes: os.totalmem(),
        platform: `${os.platform()} ${os.release()}`,
        loadAvg1mAtStart: round(loadAtStart),
        loadAvg1mAtEnd: round(os.loadavg()[0]!),
      },
      node: process.version,
      uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
      date: new Date().toISOString(),
      command: [
        'node',
        ...process.execArgv,
        path.relative(process.cwd(), process.argv[1] ?? ''),
        ...process.argv.slice(2),
      ].join(' '),
      dataDir: root,
      seed: o.seed,
      durationCapSeconds: o.capSeconds,
      write: {
        completed: w.run.done,
        seconds: round(w.run.seconds, 3),
        cappedByDuration: w.run.capped,
        p50Ms: round(w.lat.p50, 3),
        p90Ms: round(w.lat.p90, 3),
        p99Ms: round(w.lat.p99, 3),
        maxMs: round(w.lat.max, 3),
        meanMs: round(w.lat.mean, 3),
        cpuMicrosPerNeedle: w.run.done > 0 ? round((w.run.cpuSeconds * 1e6) / w.run.done, 1) : null,
        payloadMBps: round((w.run.done * o.size) / 2 ** 20 / w.run.seconds),
        storedBytesPerNeedle: w.run.done > 0 ? round(w.storedBytes / w.run.done, 1) : null,
        volumes: writeStatus.volumes.length,
        datBytes: writeStatus.volumes.reduce((a, v) => a + v.fileBytes, 0),
        diskFdatasyncMs: round(fsyncMs, 3),
      },
      read: rd && {
        requested: o.reads,
        completed: rd.run.done,
        seconds: round(rd.run.seconds, 3),
        cappedByDuration: rd.run.capped,
        p50Ms: round(rd.lat.p50, 3),
        p90Ms: round(rd.lat.p90, 3),
        p99Ms: round(rd.lat.p99, 3),
        maxMs: round(rd.lat.max, 3),
        meanMs: round(rd.lat.mean, 3),
        cpuMicrosPerNeedle:
          rd.run.done > 0 ? round((rd.run.cpuSeconds * 1e6) / rd.run.done, 1) : null,
        payloadMBps: round(rd.bytes / 2 ** 20 / rd.run.seconds),
        verified: 'every read compared byte for byte',
      },
      writeSetIndex: {
        needles: writeSetIndex.needles,
        bytesPerNeedle: round((wa - wb) / writeSetIndex.needles),
        indexTableBytesPerNeedle: round(writeSetIndex.tableBytes / writeSetIndex.needles),
      },
      index: ix && {
        needles: ix.needles,
        volumes: ix.gen.volumes.size,
        datBytes: ix.gen.datBytes,
        idxBytes: ix.gen.idxBytes,
        generateSeconds: round(ix.gen.seconds, 1),
        generateCappedByDuration: ix.gen.capped,
        loadSeconds: round(ix.loadSeconds, 3),
        loadNeedlesPerSec: round(ix.needles / ix.loadSeconds, 0),
        arrayBuffersDeltaBytes: ix.measuredBytes,
        heapDeltaBytes: ix.heapBytes,
        tableBytes: ix.tableBytes,
        verifiedReads: ix.verified,
        pageCache: 'warm (files just generated and fsync’d)',
      },
    };

    printSummary(result);
    if (o.json) {
      fs.writeFileSync(o.json, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`\nJSON written to ${o.json}`);
    }
  } finally {
    cleanup();
  }
}

function printSummary(r: {
  writeNeedlesPerSec: number | null;
  writeP99Ms: number | null;
  readNeedlesPerSec: number | null;
  readP99Ms: number | null;
  bytesPerNeedle: number | null;
  indexTableBytesPerNeedle: number | null;
  indexLoadSeconds: number | null;
  indexNeedles: number;
  needles: number;
  size: number;
  concurrency: number;
  payload: string;
  compressedShare: number | null;
  fsync: boolean;
  write: { p50Ms: number | null; completed: number; cappedByDuration: boolean };
  read: { p50Ms: number | null; completed: number; cappedByDuration: boolean } | null;
  index: { generateCappedByDuration: boolean } | null;
  writeSetIndex: { bytesPerNeedle: number | null };
}): void {
  const show = (x: number | null, unit = '') =>
    x === null ? 'n/a' : `${Number.isInteger(x) ? fmtInt(x) : String(x)}${unit}`;
  const rows: [string, string, string][] = [
    ['writes', `${show(r.writeNeedlesPerSec)} needles/s`, '≥ 40,000/s'],
    ['write latency p50 / p99', `${show(r.write.p50Ms)} / ${show(r.writeP99Ms)} ms`, ''],
    ['reads', `${show(r.readNeedlesPerSec)} needles/s`, '≥ 50,000/s'],
    ['read latency p50 / p99', `${show(r.read?.p50Ms ?? null)} / ${show(r.readP99Ms)} ms`, ''],
    [
      `index RAM (${fmtInt(r.indexNeedles)} needles)`,
      `${show(r.bytesPerNeedle)} B/needle measured, ${show(r.indexTableBytesPerNeedle)} table`,
      '≤ 24 B/needle',
    ],
    ['index RAM (written set)', `${show(r.writeSetIndex.bytesPerNeedle)} B/needle measured`, ''],
    [`index load (${fmtInt(r.indexNeedles)} needles)`, `${show(r.indexLoadSeconds)} s`, '≤ 5 s'],
    [
      'stored compressed',
      r.compressedShare === null ? 'n/a' : `${(r.compressedShare * 100).toFixed(1)} %`,
      '',
    ],
  ];
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  console.log(
    `\nengine benchmark: ${fmtInt(r.write.completed)} writes + ${fmtInt(r.read?.completed ?? 0)} reads of ` +
      `${r.size} B ${r.payload}, concurrency ${r.concurrency}, fsync ${r.fsync}\n`,
  );
  console.log(`${'metric'.padEnd(w0)}  ${'result'.padEnd(w1)}  target`);
  console.log(`${'-'.repeat(w0)}  ${'-'.repeat(w1)}  ------`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`);
  const capped = [
    r.write.cappedByDuration && 'write',
    r.read?.cappedByDuration && 'read',
    r.index?.generateCappedByDuration && 'index generation',
  ].filter(Boolean);
  if (capped.length > 0) {
    console.log(`\nstopped by --duration-cap: ${capped.join(', ')} (figures cover what completed)`);
  }
}

await main();
