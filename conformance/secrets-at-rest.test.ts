// Secrets at rest on a real cluster (issue 12 item 3): after `kubestorage cluster up` (3 Raft
// directory replicas, 4 stores, 2 gateways, each its own process writing its log under
// DIR/logs) and some traffic, nothing under DIR is open to other users, and no file under
// it — Raft logs and snapshots, LevelDB files, volumes, process logs, cluster.json,
// root.keys — holds the root secret key or a user's secret key in clear. The cluster
// secret lives in DIR/cluster.secret alone, and no log holds it.
//
// `cluster up` is its own project's business: the raft and cluster projects, which run
// conformance/ again against other targets, skip this file.
import fs from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { readClusterFile } from '../cli/cluster.ts';
import { signRequest } from '../gateway/auth/sign.ts';
import { filesContaining, openToOthers } from '../test/kit/files-at-rest.ts';
import { KUBESTORAGE_BIN as BIN, run } from '../test/kit/processes.ts';
import { s3Client } from '../test/kit/s3-clients.ts';
import { startCluster, type TestCluster } from './cluster-util.ts';

const RUN =
  process.env.KUBESTORAGE_TEST_DIRECTORY !== 'raft' &&
  process.env.KUBESTORAGE_TEST_TARGET !== 'cluster';

describe.skipIf(!RUN)('secrets at rest after cluster up', () => {
  let c: TestCluster | undefined;

  beforeAll(async () => {
    c = await startCluster('secrets', []);
  }, 120_000);

  afterAll(async () => {
    await c?.close();
  }, 60_000);

  it('leaves nothing readable by others and no secret key in clear in DIR or its logs', async () => {
    const cl = c as TestCluster;
    onTestFailed(() => {
      console.log(cl.logTail());
    });
    const { file, dir } = cl;
    await cl.s3[0]?.send(new CreateBucketCommand({ Bucket: 'secrets' }));
    await cl.s3[1]?.send(
      new PutObjectCommand({ Bucket: 'secrets', Key: 'k', Body: 'v'.repeat(5000) }),
    );
    // A user of its own, added through the second gateway's admin API; its key works on the first.
    const url = new URL(file.gateways[1]!);
    const q: [string, string][] = [['id', 'dora']];
    const { headers } = signRequest({
      method: 'POST',
      rawPath: '/_ks/admin/users',
      query: q,
      headers: { host: url.host },
      accessKey: file.accessKey,
      secretKey: file.secretKey,
    });
    const res = await fetch(`${url.origin}/_ks/admin/users?id=dora`, { method: 'POST', headers });
    expect(res.status).toBe(201);
    const dora = (await res.json()) as { accessKey: string; secretKey: string };
    const doraS3 = s3Client({ endpoint: file.gateways[0]!, ...dora });
    try {
      await doraS3.send(new CreateBucketCommand({ Bucket: 'doras' }));
      await doraS3.send(new PutObjectCommand({ Bucket: 'doras', Key: 'd', Body: 'dora' }));
      const got = await doraS3.send(new GetObjectCommand({ Bucket: 'doras', Key: 'd' }));
      expect(await got.Body?.transformToString()).toBe('dora');
    } finally {
      doraS3.destroy();
    }

    expect(fs.readdirSync(path.join(dir, 'logs')).length).toBeGreaterThanOrEqual(9);
    expect.soft(openToOthers(dir)).toEqual([]);
    for (const secret of [file.secretKey, dora.secretKey]) {
      expect.soft(filesContaining(dir, secret), 'a secret key in clear').toEqual([]);
    }
    expect
      .soft(filesContaining(dir, file.secret), 'the cluster secret')
      .toEqual(['cluster.secret']);

    // cluster.json reads back as `up` returned it, though it holds no secret in clear.
    expect(readClusterFile(path.join(dir, 'cluster.json'))).toEqual(file);
    // On request, the CLI prints the root credentials (the one place they are shown).
    const creds = await run(process.execPath, [BIN, 'cluster', 'credentials', '--data', dir], {
      env: process.env,
    });
    expect(creds.stdout).toContain(`secret key: ${file.secretKey}`);
  }, 60_000);
});
