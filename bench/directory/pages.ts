// Measured runs of listing pages (or single reads) against one target, each bounded by a
// page count, a time cap and 20 errors: a whole-bucket walk, pages at random points, and
// the floor of one linearizable read.
import { performance } from 'node:perf_hooks';
import { cpuPressure, loadAvg } from '../lib/machine.ts';
import type { Prng } from '../lib/prng.ts';
import { fmtInt, progress } from '../lib/stats.ts';
import type { LatencySummary } from '../lib/summary.ts';
import type { Args } from './args.ts';
import { objectKey, round, roundSummary, Samples } from './common.ts';

export interface ListResult {
  via: string;
  /** walk: whole bucket by continuation; random: at random start-after points; floor: getBucket. */
  mode: 'walk' | 'random' | 'floor';
  pages: number;
  keys: number;
  seconds: number;
  pagesPerSec: number;
  keysPerSec: number;
  latencyMs: LatencySummary;
  errors: number;
  firstError?: string;
  capped: boolean;
  complete?: boolean;
  loadAvgEnd: number[];
  cpuPressureEnd: number | null;
}

function report(r: ListResult): ListResult {
  const l = r.latencyMs;
  progress(
    `list ${r.via} ${r.mode}: ${r.pages} pages, ${fmtInt(r.keys)} keys, p50 ${l.p50} ms, ` +
      `p90 ${l.p90} ms, p99 ${l.p99} ms, ${fmtInt(r.keysPerSec)} keys/s, errors ${r.errors}` +
      `${r.firstError ? ` (first: ${r.firstError})` : ''}${r.capped ? ' [time cap]' : ''}` +
      `${r.complete === false ? ' [INCOMPLETE WALK]' : ''}, load ${r.loadAvgEnd.join(' ')}`,
  );
  return r;
}

export type PageFn = (
  after: string | undefined,
  token: string | undefined,
) => Promise<{
  keys: number;
  first?: string;
  last?: string;
  truncated: boolean;
  token?: string;
  /** The page's latency when the caller measured it itself (to leave out its own parsing). */
  ms?: number;
}>;

/** The latencies, errors and time cap of one measured run. */
class Run {
  readonly lat = new Samples();
  private readonly t0 = performance.now();
  private readonly deadline: number;
  private errors = 0;
  private firstError: string | undefined;
  private capped = false;

  constructor(a: Args) {
    this.deadline = this.t0 + a.listCapSeconds * 1000;
  }

  /** False, and the run marked capped, once the time cap has passed. */
  inTime(): boolean {
    if (performance.now() > this.deadline) this.capped = true;
    return !this.capped;
  }

  /** Counts a failure; true when there have been too many to go on. */
  failed(e: unknown): boolean {
    this.errors++;
    this.firstError ??= (e as Error).message;
    return this.errors > 20;
  }

  result(
    via: string,
    mode: ListResult['mode'],
    pages: number,
    keys: number,
    complete?: boolean,
  ): ListResult {
    const seconds = (performance.now() - this.t0) / 1000;
    return report({
      via,
      mode,
      pages,
      keys,
      seconds: round(seconds, 3),
      pagesPerSec: round(pages / seconds, 1),
      keysPerSec: round(keys / seconds, 0),
      latencyMs: roundSummary(this.lat.summary()),
      errors: this.errors,
      firstError: this.firstError,
      capped: this.capped,
      complete,
      loadAvgEnd: loadAvg(),
      cpuPressureEnd: cpuPressure(),
    });
  }
}

/** Unmeasured pages at random points; errors are left to the measured runs to report. */
export async function warmUp(a: Args, loaded: number, rng: Prng, page: PageFn): Promise<void> {
  const deadline = performance.now() + a.listCapSeconds * 1000;
  for (let i = 0; i < a.listWarmup && performance.now() < deadline; i++) {
    await page(objectKey(rng.below(loaded)), undefined).catch(() => {});
  }
}

/** Pages from the start by continuation until the end, `maxPages` or the time cap. */
export async function walk(
  a: Args,
  via: string,
  loaded: number,
  page: PageFn,
): Promise<ListResult> {
  const run = new Run(a);
  let token: string | undefined;
  let after: string | undefined;
  let keys = 0;
  let pages = 0;
  let ordered = true;
  let expect = 0;
  let reachedEnd = false;
  const maxPages = Math.min(a.walkPages, Math.ceil(loaded / a.pageSize) + 1);
  while (pages < maxPages && run.inTime()) {
    const s = performance.now();
    let p: Awaited<ReturnType<PageFn>>;
    try {
      p = await page(after, token);
    } catch (e) {
      if (run.failed(e)) break;
      continue;
    }
    run.lat.push(p.ms ?? performance.now() - s);
    pages++;
    keys += p.keys;
    if (p.first !== undefined && p.first !== objectKey(expect)) ordered = false;
    expect += p.keys;
    if (!p.truncated) {
      reachedEnd = true;
      break;
    }
    after = p.last;
    token = p.token;
  }
  // Only a walk that reached the end can be checked: every key, in order, once.
  return run.result(via, 'walk', pages, keys, reachedEnd ? ordered && keys === loaded : undefined);
}

/** Pages starting after random existing keys; checks each page's size and first key. */
export async function randomPages(
  a: Args,
  via: string,
  loaded: number,
  rng: Prng,
  page: PageFn,
): Promise<ListResult> {
  const run = new Run(a);
  let keys = 0;
  let pages = 0;
  for (let n = 0; n < a.randomPages && run.inTime(); n++) {
    const at = rng.below(loaded);
    const s = performance.now();
    try {
      const p = await page(objectKey(at), undefined);
      run.lat.push(p.ms ?? performance.now() - s);
      pages++;
      keys += p.keys;
      const want = Math.min(a.pageSize, loaded - at - 1);
      if (p.keys !== want || (want > 0 && p.first !== objectKey(at + 1))) {
        throw new Error(`start-after ${objectKey(at)}: ${p.keys} keys from ${p.first}`);
      }
    } catch (e) {
      if (run.failed(e)) break;
    }
  }
  return run.result(via, 'random', pages, keys);
}

/** Sequential small reads (a.randomPages of them, at least 50): the per-read floor. */
export async function readFloor(
  a: Args,
  via: string,
  read: () => Promise<void>,
): Promise<ListResult> {
  const run = new Run(a);
  const n = Math.max(50, a.randomPages);
  for (let i = 0; i < n && run.inTime(); i++) {
    const s = performance.now();
    try {
      await read();
      run.lat.push(performance.now() - s);
    } catch (e) {
      if (run.failed(e)) break;
    }
  }
  return run.result(via, 'floor', run.lat.n, 0);
}
