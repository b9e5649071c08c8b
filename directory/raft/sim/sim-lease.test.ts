// The simulator can fail a lease: seeds run with leases far longer than replicas promise
// not to vote (deposed leaders keep answering from their lease) must produce
// linearizability violations. sim-a/sim-b run the same seeds with the safe lease and must
// pass. Without this, "every seed passes" would say nothing about lease reads.
import { describe, expect, it } from 'vitest';
import { runSeed } from './cluster.ts';

describe('raft simulation: lease reads', () => {
  it('catches leases that outlive the followers’ promise', {
    timeout: 120_000,
  }, () => {
    const SEEDS = 400;
    let unsafeFailures = 0;
    let leaseReads = 0;
    for (let s = 1; s <= SEEDS; s++) {
      const bad = runSeed(s, { leaseMs: 1_000_000 });
      leaseReads += bad.stats.leaseReads;
      if (!bad.ok) {
        unsafeFailures++;
        expect(bad.violations.join('\n')).toMatch(/linearizab/);
      }
    }
    expect(leaseReads).toBeGreaterThan(0);
    expect(unsafeFailures, 'seeds where an unbounded lease read stale data').toBeGreaterThan(0);
  });
});
