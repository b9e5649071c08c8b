// Seeds of the host-level simulation (host-cluster.ts): the real RaftHost loop on virtual
// time, in-memory disks and the faulty network. Shown to catch, each on its own mutant:
// proposals overtaken by an installed snapshot reported as dropped (not ambiguous), the
// log compacted before the state machine's applies were synced, and a staged snapshot
// removed before the host swapped it in.
import { describe, expect, it } from 'vitest';
import { type HostSimResult, runHostSeed } from './host-cluster.ts';

const FROM = 1;
const COUNT = 300;

describe(`raft host simulation, seeds ${FROM}–${FROM + COUNT - 1}`, () => {
  it('every seed: linearizable, honest proposal outcomes, live once healed', {
    timeout: 300_000,
  }, async () => {
    const failures: HostSimResult[] = [];
    const totals: Record<string, number> = {};
    for (let s = FROM; s < FROM + COUNT; s++) {
      const r = await runHostSeed(s);
      for (const [k, v] of Object.entries(r.stats)) totals[k] = (totals[k] ?? 0) + v;
      if (!r.ok) failures.push(r);
    }
    const detail = failures
      .slice(0, 10)
      .map(
        (r) =>
          `seed ${r.seed} (replay: npm run sim -- --host --seed ${r.seed} --verbose):\n  ` +
          r.violations.join('\n  '),
      );
    expect(failures, `${failures.length} seeds failed\n${detail.join('\n')}`).toEqual([]);
    // The faults and the outcomes the checks are about must actually have happened.
    expect(totals.crashes, 'crashes').toBeGreaterThan(0);
    expect(totals.partitions, 'partitions').toBeGreaterThan(0);
    expect(totals.transfers, 'leadership transfers').toBeGreaterThan(0);
    expect(totals.confChanges, 'membership changes').toBeGreaterThan(0);
    expect(totals.snapshotsInstalled, 'snapshots installed').toBeGreaterThan(0);
    expect(totals.notApplied, 'proposals reported not applied').toBeGreaterThan(0);
    expect(totals.unknownOutcome, 'proposals overtaken by a snapshot').toBeGreaterThan(0);
    expect(totals.indefinite, 'client ops with unknown outcome').toBeGreaterThan(0);
    expect(totals.okOps, 'client ops answered').toBeGreaterThan(COUNT);
  });

  it('replays exactly: the same seed gives the same result', { timeout: 60_000 }, async () => {
    for (const seed of [FROM + 3, FROM + 77]) {
      expect(await runHostSeed(seed)).toEqual(await runHostSeed(seed));
    }
  });
});
