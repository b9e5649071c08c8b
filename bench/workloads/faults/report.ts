// What `kubestorage bench faults` prints and draws: the summary table and a three-panel SVG.
import { escapeXml, lineChart, type Series } from '../../lib/svg.ts';
import type { SecondStat } from './analysis.ts';
import type { FaultsResult } from './run.ts';

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
