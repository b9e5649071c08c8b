// The simulation as a vitest suite: "every seed ok" plus fault totals, so a simulator that
// silently stops injecting faults cannot pass vacuously, and exact replay of a seed.
// sim-a.test.ts and sim-b.test.ts each run half of the seeds (vitest's two workers).
import { describe, expect, it } from 'vitest';
import { runSeed, type SimResult } from './cluster.ts';

type Totals = Omit<SimResult['stats'], 'voters'>;

function runRange(from: number, count: number): { failures: SimResult[]; totals: Totals } {
  const failures: SimResult[] = [];
  const totals: Totals = {
    ops: 0,
    okOps: 0,
    indefinite: 0,
    failed: 0,
    terms: 0,
    crashes: 0,
    partitions: 0,
    oneWayPartitions: 0,
    lost: 0,
    duplicated: 0,
    heldBack: 0,
    cut: 0,
    confChanges: 0,
    transfers: 0,
    snapshotsInstalled: 0,
    leaseReads: 0,
    events: 0,
  };
  for (let s = from; s < from + count; s++) {
    const r = runSeed(s);
    for (const k of Object.keys(totals) as Array<keyof Totals>) totals[k] += r.stats[k];
    if (!r.ok) failures.push(r);
  }
  return { failures, totals };
}

function describeFailures(failures: SimResult[]): string {
  // Every failing seed by number, the first 20 with their violations (a broken core can fail
  // hundreds of seeds, each with up to 20 violations).
  const detail = failures
    .slice(0, 20)
    .map(
      (r) =>
        `seed ${r.seed} (replay: node --import tsx directory/raft/sim/run.ts --seed ${r.seed} --verbose):\n  ` +
        r.violations.join('\n  '),
    );
  return `${failures.length} seeds failed: ${failures.map((r) => r.seed).join(' ')}\n${detail.join('\n')}`;
}

/** The seeded-simulation suite for seeds FROM .. FROM+COUNT-1 (one per test file). */
export function simulationSuite(FROM: number, COUNT: number): void {
  describe(`raft simulation, seeds ${FROM}–${FROM + COUNT - 1}`, () => {
    it('every seed keeps safety, linearizability and liveness, under real faults', {
      timeout: 120_000,
    }, () => {
      const { failures, totals } = runRange(FROM, COUNT);
      expect(failures, describeFailures(failures)).toEqual([]);
      // The faults must actually have happened (and clients must have got answers).
      expect(totals.crashes, 'crashes injected').toBeGreaterThan(0);
      expect(totals.partitions, 'partitions injected').toBeGreaterThan(0);
      expect(totals.oneWayPartitions, 'one-way partitions injected').toBeGreaterThan(0);
      expect(totals.partitions - totals.oneWayPartitions, 'symmetric ones').toBeGreaterThan(0);
      expect(totals.lost, 'messages lost').toBeGreaterThan(0);
      expect(totals.duplicated, 'messages duplicated').toBeGreaterThan(0);
      expect(totals.heldBack, 'messages held back behind later ones').toBeGreaterThan(0);
      expect(totals.cut, 'messages cut by partitions').toBeGreaterThan(0);
      expect(totals.transfers, 'leadership transfers').toBeGreaterThan(0);
      expect(totals.confChanges, 'membership changes made').toBeGreaterThan(0);
      expect(totals.snapshotsInstalled, 'snapshots installed').toBeGreaterThan(0);
      expect(totals.leaseReads, 'reads answered under a leader lease').toBeGreaterThan(0);
      expect(totals.terms, 'leader changes: more terms than seeds').toBeGreaterThan(COUNT);
      expect(totals.indefinite, 'client ops with unknown outcome').toBeGreaterThan(0);
      expect(totals.okOps, 'client ops answered').toBeGreaterThan(0);
    });

    it('replays exactly: the same seed gives the same result', { timeout: 120_000 }, () => {
      for (const seed of [FROM, FROM + 7, FROM + 420]) {
        expect(runSeed(seed)).toEqual(runSeed(seed));
      }
    });
  });
}
