// The table the directory bench prints at its end (the JSON has every figure).
import { fmtInt } from '../lib/stats.ts';
import type { LatencySummary } from '../lib/summary.ts';
import type { CommitResult } from './commit.ts';
import type { ListResult } from './pages.ts';

export function table(results: Record<string, unknown>): string {
  const rows: string[][] = [['what', 'rate', 'p50 ms', 'p90 ms', 'p99 ms', 'extra']];
  for (const c of (results.commit as CommitResult[] | undefined) ?? []) {
    rows.push([
      `commit → ${c.target} (${c.targetId})`,
      `${fmtInt(c.recordsPerSec)} rec/s`,
      String(c.latencyMs.p50),
      String(c.latencyMs.p90),
      String(c.latencyMs.p99),
      `${c.recordsPerEntry ?? '-'} rec/entry, err ${c.errors}, load ${c.loadAvgEnd[0]} psi ${c.cpuPressureEnd ?? '-'}`,
    ]);
  }
  const list = results.list as
    | { preload?: Record<string, unknown>; runs?: ListResult[] }
    | undefined;
  const pre = list?.preload as
    | { recordsPerSec?: number; records?: number; latencyMs?: LatencySummary; reused?: boolean }
    | undefined;
  if (pre && !pre.reused && pre.latencyMs) {
    rows.push([
      `preload ${fmtInt(pre.records ?? 0)} keys`,
      `${fmtInt(pre.recordsPerSec ?? 0)} rec/s`,
      String(pre.latencyMs.p50),
      String(pre.latencyMs.p90),
      String(pre.latencyMs.p99),
      '',
    ]);
  }
  for (const r of list?.runs ?? []) {
    const floor = r.mode === 'floor';
    rows.push([
      floor ? `getBucket ${r.via} (read floor)` : `list ${r.via} ${r.mode}`,
      `${r.pagesPerSec} ${floor ? 'reads' : 'pages'}/s`,
      String(r.latencyMs.p50),
      String(r.latencyMs.p90),
      String(r.latencyMs.p99),
      `${r.pages} ${floor ? 'reads' : 'pages'}, err ${r.errors}${r.complete === false ? ' INCOMPLETE' : r.complete ? ' complete' : ''}, load ${r.loadAvgEnd[0]} psi ${r.cpuPressureEnd ?? '-'}`,
    ]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n');
}
