// The paper's fault experiment as a test (the benchmark is `kubestorage bench faults`): a
// local cluster (3 directories, 4 stores in 2 zones, replica count 2, 2 gateways) under a
// paced 40 KiB random read/write load; kill -9 the directory leader and both stores of zone
// z1. With replicas on distinct zones every object keeps a live replica, so nothing
// acknowledged may be lost, no read may fail after the client's retries, writes go on, and
// read p99 is back under 2× its baseline within 5 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULTS,
  describeFaults,
  type FaultsResult,
  type OwnCluster,
  runFaults,
  startCluster,
} from '../bench/workloads/faults.ts';

// The integration-raft project re-runs conformance/ with a Raft directory: this cluster
// always has one, and a second copy would only halve the CPU each run gets.
const skip = process.env.KUBESTORAGE_TEST_DIRECTORY === 'raft';

describe.skipIf(skip)('cluster fault experiment', () => {
  let own: OwnCluster | undefined;
  let r: FaultsResult;

  beforeAll(async () => {
    const t0 = Date.now();
    own = await startCluster({});
    try {
      r = await runFaults(own.cluster, {
        ...DEFAULTS,
        durationS: 15,
        killAtS: 6,
        objects: 300,
        concurrency: 16,
        rate: 150,
        log: () => {},
      });
    } finally {
      await own.stop();
    }
    process.stdout.write(
      `[conformance] cluster faults: ${((Date.now() - t0) / 1000).toFixed(0)} s\n${describeFaults(r)}` +
        `per second (t reads p50 p99 writes errors retried):\n${r.seconds
          .map(
            (w) =>
              `  ${w.t} ${w.reads} ${w.readP50.toFixed(1)} ${w.readP99.toFixed(1)} ${w.writes} ${w.readErrors + w.writeErrors} ${w.retried}`,
          )
          .join('\n')}\n${r.firstErrors.join('\n')}\n`,
    );
  }, 150_000);

  afterAll(async () => {
    await own?.stop();
  }, 30_000);

  it('killed the directory leader and every store of zone z1', () => {
    expect(r.killed.filter((k) => k.role === 'directory-leader')).toHaveLength(1);
    expect(r.killed.filter((k) => k.role === 'store').map((k) => k.zone)).toEqual(['z1', 'z1']);
  });

  it('loses no acknowledged write', () => {
    expect(r.verify.unverified).toBe(0);
    expect(r.verify.checked).toBe(300 + r.ackedWrites);
    expect(r.verify.firstLost).toEqual([]);
    expect(r.verify.lost).toBe(0);
  });

  it('fails no read after the retries, and never returns wrong bytes', () => {
    expect(r.corruptReads).toBe(0);
    expect(r.analysis.failedReads).toBe(0);
  });

  it('goes on taking writes after the kill', () => {
    expect(r.analysis.writesPerSecAfter).toBeGreaterThan(0);
    expect(r.analysis.writesStartedAfterKill).toBeGreaterThan(0);
    expect(r.analysis.writesPerSecFirst5sAfter).toBeGreaterThan(0);
    expect(r.writePlacement?.onKilledZone).toBe(0);
  });

  it('has read p99 back under 2× the baseline within 5 s', () => {
    expect(r.analysis.baseline.reads).toBeGreaterThan(100);
    expect(r.analysis.recoveryS).not.toBeNull();
    expect(r.analysis.recoveryS!).toBeLessThanOrEqual(5);
  });
});
