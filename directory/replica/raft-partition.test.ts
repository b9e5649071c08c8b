// A leader cut off from its followers while its own proposals sit in its log: what their
// callers are told. Three replicas in this process over loopback HTTP; the partition
// points the transports at a closed port (both directions), the heal points them back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../common/ports.ts';
import { tempDir } from '../../test/kit/temp-dirs.ts';
import {
  startTestDirectory,
  type TestDirectory,
  testRecord,
} from '../../test/kit/test-directory.ts';
import { until } from '../../test/kit/until.ts';
import type { RaftTransport } from '../raft/transport.ts';
import { AmbiguousMetadataError } from '../wire/client.ts';

const transportOf = (d: TestDirectory, i: number) =>
  (d.replicas[i]!.host as unknown as { transport: RaftTransport }).transport;

async function isolate(d: TestDirectory, i: number): Promise<void> {
  const [dead] = await freePorts(1);
  const nowhere = `http://127.0.0.1:${dead}`;
  d.ids.forEach((id, j) => {
    if (j === i || !d.replicas[j]) return;
    transportOf(d, i).setPeer(id, nowhere);
    transportOf(d, j).setPeer(d.ids[i]!, nowhere);
  });
}

function heal(d: TestDirectory, i: number): void {
  d.ids.forEach((id, j) => {
    if (j === i || !d.replicas[j]) return;
    transportOf(d, i).setPeer(id, d.urls[j]!);
    transportOf(d, j).setPeer(d.ids[i]!, d.urls[i]!);
  });
}

describe('a partitioned leader’s own proposals', () => {
  let d: TestDirectory;
  beforeAll(async () => {
    // A long wait, so only the snapshot (not the deadline) can end the first test's call.
    d = await startTestDirectory(tempDir('ks-raftpart-'), 3, {
      snapshotEvery: 50,
      waitMs: 30_000,
      bucket: 'p',
    });
  });
  afterAll(() => d?.close());

  it('overtaken by a snapshot from the new leader: ambiguous, never retried as if dropped', async () => {
    const oldIdx = d.replicas.findIndex((r) => r?.host.isLeader);
    const old = d.replicas[oldIdx]!;
    await isolate(d, oldIdx);
    // Proposed on the cut-off leader: in its log, never replicated.
    const pending = old.meta.putObject('p', testRecord('stranded', 1)).then(
      () => 'resolved',
      (e: unknown) => e,
    );
    const fresh = await until(
      'a leader among the others',
      () => d.replicas.find((r, j) => j !== oldIdx && r?.host.isLeader) ?? undefined,
    );
    // Enough writes that the new leader's log is compacted past the old leader's.
    for (let i = 0; i < 120; i++) await fresh.meta.putObject('p', testRecord(`after/${i}`, i));
    await until('the new leader compacted', () => fresh.host.status().snapshotIndex > 0);
    const installed = old.host.stats.snapshotsInstalled;
    heal(d, oldIdx);
    const out = await pending;
    expect(old.host.stats.snapshotsInstalled).toBeGreaterThan(installed);
    // Before: reported "dropped" and proposed again through the new leader — an entry the
    // snapshot may already hold applied twice. The caller must hear "maybe".
    expect(out).toBeInstanceOf(AmbiguousMetadataError);
    expect((out as Error).message).toMatch(/snapshot/);
    expect(await fresh.meta.getObject('p', 'stranded')).toBeNull();
  });
});

describe('a proposal on a leader that loses its quorum', () => {
  let d: TestDirectory;
  beforeAll(async () => {
    d = await startTestDirectory(tempDir('ks-raftpart2-'), 3, { waitMs: 2_000, bucket: 'q' });
  });
  afterAll(() => d?.close());

  it('ends with an ambiguous Unavailable at the deadline instead of hanging', async () => {
    const oldIdx = d.replicas.findIndex((r) => r?.host.isLeader);
    const old = d.replicas[oldIdx]!;
    await isolate(d, oldIdx);
    const t0 = Date.now();
    const out = await old.meta.putObject('q', testRecord('cut', 1)).catch((e: unknown) => e);
    const took = Date.now() - t0;
    expect(out).toBeInstanceOf(AmbiguousMetadataError);
    expect(out).toMatchObject({ code: 'Unavailable' });
    expect(took).toBeGreaterThanOrEqual(1_900);
    expect(took).toBeLessThan(10_000);
    heal(d, oldIdx);
  });
});
