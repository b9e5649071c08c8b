// Medians per build of the figures bench/ab-builds.sh collected: node bench/ab-report.mjs DIR
// Directory commit CPU: replicas' CPU (% of one core, summed) × seconds / records = µs per record.
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2] ?? '/tmp/ab';
const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[(s.length - 1) >> 1] : NaN;
};
const rounds = (label, kind) =>
  fs
    .readdirSync(dir)
    .filter((f) => new RegExp(`^${label}-${kind}-\\d+\\.json$`).test(f))
    .sort();

const figures = {
  'engine write µs CPU/needle': (l) =>
    rounds(l, 'engine').map((f) => read(f).write.cpuMicrosPerNeedle),
  'engine read µs CPU/needle': (l) =>
    rounds(l, 'engine').map((f) => read(f).read.cpuMicrosPerNeedle),
  'engine writes/s': (l) => rounds(l, 'engine').map((f) => read(f).writeNeedlesPerSec),
  'engine reads/s': (l) => rounds(l, 'engine').map((f) => read(f).readNeedlesPerSec),
  'engine 1 M index load s': (l) => rounds(l, 'engine').map((f) => read(f).index.loadSeconds),
  'gateway server µs CPU/request (PUT+GET, 4 KiB)': (l) =>
    rounds(l, 'gateway-cpu').map((f) => {
      const j = read(f);
      return ((j.serverCpuTicks / j.ticksPerSecond) * 1e6) / j.requests;
    }),
  'gateway PUT req/s': (l) => rounds(l, 'gateway').map((f) => read(f).put.reqPerSec),
  'gateway GET req/s': (l) => rounds(l, 'gateway').map((f) => read(f).get.reqPerSec),
  'directory commits/s → leader': (l) =>
    rounds(l, 'directory').map((f) => read(f).commit[0].recordsPerSec),
  'directory replicas µs CPU/record': (l) =>
    rounds(l, 'directory').map((f) => {
      const c = read(f).commit[0];
      const pct = Object.entries(c.cpuPercent)
        .filter(([k]) => k !== 'generator')
        .reduce((s, [, v]) => s + v, 0);
      return ((pct / 100) * c.seconds * 1e6) / c.committed;
    }),
  'S3 ListObjectsV2 page p50 ms (random)': (l) =>
    rounds(l, 'directory').map(
      (f) =>
        read(f).list.runs.find((r) => r.via.startsWith('S3') && r.mode === 'random')?.latencyMs.p50,
    ),
  'client→leader page p50 ms (random)': (l) =>
    rounds(l, 'directory').map(
      (f) =>
        read(f).list.runs.find((r) => r.via.startsWith('client→leader') && r.mode === 'random')
          ?.latencyMs.p50,
    ),
};

const fmt = (x) =>
  Number.isFinite(x) ? (Math.abs(x) >= 100 ? Math.round(x).toString() : x.toFixed(2)) : '—';
console.log('| figure | A median (rounds) | B median (rounds) | B/A |');
console.log('|---|---|---|---|');
for (const [name, get] of Object.entries(figures)) {
  const a = get('A');
  const b = get('B');
  const ma = median(a);
  const mb = median(b);
  console.log(
    `| ${name} | ${fmt(ma)} (${a.map(fmt).join(', ')}) | ${fmt(mb)} (${b.map(fmt).join(', ')}) | ${(mb / ma).toFixed(2)} |`,
  );
}
