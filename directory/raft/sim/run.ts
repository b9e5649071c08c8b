// `npm run sim -- --seeds N [--from S] [--seed S --verbose]`: many seeded simulation runs;
// a failing seed prints its violations and replays exactly with --seed. `--host` runs the
// real RaftHost (host-cluster.ts) instead of the core-level nodes.
import { parseArgs } from 'node:util';
import { runSeed } from './cluster.ts';
import { runHostSeed } from './host-cluster.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1000' },
    from: { type: 'string', default: '1' },
    seed: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    'lease-ms': { type: 'string' },
    host: { type: 'boolean', default: false },
  },
});

const one = values.seed !== undefined;
const from = Number(one ? values.seed : values.from);
const count = one ? 1 : Number(values.seeds);
if (!Number.isInteger(from) || !Number.isInteger(count) || count < 1) {
  console.error('usage: npm run sim -- --seeds N [--from S] | --seed S [--verbose]');
  process.exit(2);
}
const t0 = performance.now();
let failed = 0;
if (values.host) {
  const sum: Record<string, number> = {};
  for (let s = from; s < from + count; s++) {
    const r = await runHostSeed(s, { verbose: values.verbose });
    for (const [k, v] of Object.entries(r.stats)) sum[k] = (sum[k] ?? 0) + v;
    if (!r.ok) {
      failed++;
      console.log(`seed ${s} FAILED:\n  ${r.violations.join('\n  ')}`);
    }
    if (one) console.log(JSON.stringify(r.stats));
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `host: ${count} seeds from ${from}: ${count - failed} passed, ${failed} failed in ${secs.toFixed(1)} s ` +
      `(${(count / secs).toFixed(1)} seeds/s); ${JSON.stringify(sum)}`,
  );
  process.exit(failed > 0 ? 1 : 0);
}
const totals = {
  ops: 0,
  okOps: 0,
  terms: 0,
  crashes: 0,
  partitions: 0,
  confChanges: 0,
  snaps: 0,
  lease: 0,
};
for (let s = from; s < from + count; s++) {
  const r = runSeed(s, {
    verbose: values.verbose,
    leaseMs: values['lease-ms'] === undefined ? undefined : Number(values['lease-ms']),
  });
  totals.ops += r.stats.ops;
  totals.okOps += r.stats.okOps;
  totals.terms += r.stats.terms;
  totals.crashes += r.stats.crashes;
  totals.partitions += r.stats.partitions;
  totals.confChanges += r.stats.confChanges;
  totals.snaps += r.stats.snapshotsInstalled;
  totals.lease += r.stats.leaseReads;
  if (!r.ok) {
    failed++;
    console.log(`seed ${s} FAILED:\n  ${r.violations.join('\n  ')}`);
  }
  if (one) console.log(JSON.stringify(r.stats));
}
const ms = performance.now() - t0;
console.log(
  `${count} seeds from ${from}: ${count - failed} passed, ${failed} failed in ${(ms / 1000).toFixed(1)} s; ` +
    `client ops ${totals.ops} (${totals.okOps} answered), terms ${totals.terms}, crashes ${totals.crashes}, ` +
    `partitions ${totals.partitions}, membership changes ${totals.confChanges}, snapshots installed ${totals.snaps}, ` +
    `lease reads ${totals.lease}`,
);
process.exit(failed > 0 ? 1 : 0);
