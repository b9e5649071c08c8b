// The closing table of `kubestorage bench`: one row per phase run, so that req/s and the
// server's CPU per request can be read side by side without opening the JSON.
import { fmtUs, type PhaseResult } from '../workloads/common.ts';
import { fmtInt } from './stats.ts';

export interface TableRow extends PhaseResult {
  target: string;
  round?: number;
}

/** Columns padded to their widest cell; numbers right-aligned. */
export function alignTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), ...rows.map(line)].map((l) => l.trimEnd()).join('\n');
}

export function resultTable(results: TableRow[]): string {
  const head = [
    'target',
    'phase',
    'round',
    'c',
    'requests',
    'errors',
    'req/s',
    'mean ms',
    'p99 ms',
    'server CPU µs/req',
  ];
  const rows = results.map((r) => [
    r.target,
    r.phase,
    r.round === undefined ? '' : String(r.round + 1),
    String(r.concurrency),
    String(r.requests),
    String(r.errors),
    fmtInt(r.reqPerSec),
    r.latencyMs.mean.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    r.serverCpuUsPerReq === null ? '-' : fmtUs(r.serverCpuUsPerReq),
  ]);
  return alignTable(head, rows);
}
