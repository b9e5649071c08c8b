// The manifests run (issue 13): each overlay is rendered with `kubectl kustomize`, and every
// pod of its StatefulSets and Deployment is started as a local process from its
// container's command, args and env exactly as written (test/kit/k8s-pods.ts: the kubelet's
// $(VAR) expansion, downward API, ConfigMap/Secret refs, volumes as directories, one
// loopback address per pod, per-pod /etc/hosts for the cluster's DNS names, init
// containers run). What had to be replaced in the strings is printed. Then:
//  - every pod's readinessProbe passes (so the probes mean something);
//  - the aws-cli scenario (as conformance/aws-cli.test.ts) passes against the gateway
//    Service (a TCP proxy over the ready gateway pods, as kube-proxy);
//  - each pod killed with SIGKILL and started again with the same volume (PVC) keeps every
//    object, byte for byte.
// Prod has no Secret in its render: the test creates `ks-secrets` as docs/kubernetes.md
// tells the operator to. Pods carry their node's zone label (as PodTopologyLabelsAdmission,
// Kubernetes 1.35+, sets it), so prod's node-zone init container finds it without asking the
// API server (there is none here).
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, sha256File } from '../conformance/harness.ts';
import { kustomizeAvailable, LocalCluster, type Pod, render } from './kit/k8s-pods.ts';
import { run } from './kit/processes.ts';
import { AWS, aws, awsEnv, type ClientHome, s3Client } from './kit/s3-clients.ts';
import { tempDir } from './kit/temp-dirs.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const KUSTOMIZE = kustomizeAvailable();
const HAVE_AWS = fs.existsSync(AWS);
if (!KUSTOMIZE.ok) console.warn(`k8s run: ${KUSTOMIZE.reason}: skipped`);
else if (!HAVE_AWS) console.warn(`k8s run: ${AWS} missing (apt-get install awscli): skipped`);

const ZONES = ['zone-a', 'zone-b', 'zone-c'];
// On a loaded 2-core machine a dozen tsx-started processes take a while.
const READY_MS = 180_000;
const STEP_MS = 240_000;

/** The Secret prod expects the operator to create (docs/kubernetes.md, Prod step 2). */
function operatorSecret(): Record<string, string> {
  return {
    'cluster-secret': crypto.randomBytes(32).toString('base64'),
    'root-access-key': crypto.randomBytes(10).toString('hex').toUpperCase(),
    'root-secret-key': crypto.randomBytes(30).toString('base64'),
  };
}

for (const overlay of ['dev', 'prod'] as const) {
  describe.skipIf(!KUSTOMIZE.ok || !HAVE_AWS)(`k8s/overlays/${overlay} runs`, () => {
    let cluster: LocalCluster;
    let h: ClientHome;
    let env: NodeJS.ProcessEnv;
    /** bucket/key -> sha256 of every object written. */
    const objects = new Map<string, string>();
    const t0 = performance.now();
    const awsRun = (args: string[], ms = 60_000) => aws(h, env, args, ms);

    beforeAll(async () => {
      const root = tempDir(`ks-k8s-${overlay}-`);
      // Addresses of their own per run and overlay (parallel runs do not collide).
      const net = `127.${100 + (process.pid % 100)}.${overlay === 'dev' ? 11 : 12}`;
      cluster = new LocalCluster(render(path.join(ROOT, 'k8s/overlays', overlay)), {
        root,
        net,
        zones: ZONES,
        secrets: overlay === 'prod' ? { 'ks-secrets': operatorSecret() } : undefined,
      });
      await cluster.startServices();
      await cluster.startAll();
      await cluster.waitReady(cluster.pods, READY_MS);
      console.log(
        `[k8s-run] ${overlay}: ${cluster.pods.length} pods ready in ${((performance.now() - t0) / 1000).toFixed(1)} s\n${cluster.describe()}`,
      );
      const gw = cluster.podsOf('ks-gateway')[0]!;
      const genv = cluster.envOf(gw);
      const dir = path.join(root, 'client');
      fs.mkdirSync(path.join(dir, 'home'), { recursive: true });
      h = {
        srv: {
          endpoint: cluster.serviceUrl('ks-gateway', 's3'),
          accessKey: genv.get('KUBESTORAGE_ROOT_ACCESS_KEY')!,
          secretKey: genv.get('KUBESTORAGE_ROOT_SECRET_KEY')!,
        },
        dir,
        env: {
          PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          HOME: path.join(dir, 'home'),
          LANG: 'C.UTF-8',
          LC_ALL: 'C.UTF-8',
          TMPDIR: os.tmpdir(),
          NO_PROXY: '*',
          no_proxy: '*',
        },
      };
      env = awsEnv(h);
    }, READY_MS + 60_000);

    afterAll(async () => {
      await cluster?.stop();
      console.log(
        `[k8s-run] ${overlay}: ${((performance.now() - t0) / 1000).toFixed(1)} s in all; ${cluster?.pods.length} pods stopped`,
      );
    }, 60_000);

    it('every pod is ready by its readinessProbe, every workload at its replica count', () => {
      const count = (w: string) => cluster.podsOf(w).length;
      if (overlay === 'dev') {
        expect([count('ks-directory'), count('ks-store'), count('ks-gateway')]).toEqual([1, 1, 1]);
      } else {
        // The gateways: the HPA's minReplicas (the Deployment leaves replicas to it).
        expect([count('ks-directory'), count('ks-store'), count('ks-gateway')]).toEqual([3, 6, 3]);
      }
      expect(cluster.pods.every((p) => p.ready)).toBe(true);
    });

    it(
      'the aws-cli scenario passes against the gateway Service',
      async () => {
        const bucket = `k8s-${overlay}`;
        await awsRun(['s3', 'mb', `s3://${bucket}`]);
        expect((await awsRun(['s3', 'ls'])).stdout).toMatch(new RegExp(`\\s${bucket}\\s*$`, 'm'));

        // mb, cp up/down incl. a 20 MiB multipart object, byte-for-byte.
        const big = path.join(h.dir, 'big.bin');
        fs.writeFileSync(big, randomBytes(`big-${overlay}`, 20 * 1024 * 1024 + 12345));
        const small = path.join(h.dir, 'small.txt');
        fs.writeFileSync(small, 'hello from aws-cli\n');
        await awsRun(['s3', 'cp', big, `s3://${bucket}/blobs/big.bin`], 120_000);
        await awsRun(['s3', 'cp', small, `s3://${bucket}/small.txt`]);
        objects.set(`${bucket}/blobs/big.bin`, sha256File(big));
        objects.set(`${bucket}/small.txt`, sha256File(small));
        const head = JSON.parse(
          (await awsRun(['s3api', 'head-object', '--bucket', bucket, '--key', 'blobs/big.bin']))
            .stdout,
        );
        expect(head.ContentLength).toBe(20 * 1024 * 1024 + 12345);
        expect(head.ETag).toMatch(/^"[0-9a-f]{32}-3"$/);
        const bigBack = path.join(h.dir, 'big.back');
        const smallBack = path.join(h.dir, 'small.back');
        await awsRun(['s3', 'cp', `s3://${bucket}/blobs/big.bin`, bigBack], 120_000);
        await awsRun(['s3', 'cp', `s3://${bucket}/small.txt`, smallBack]);
        expect(sha256File(bigBack)).toBe(sha256File(big));
        expect(fs.readFileSync(smallBack, 'utf8')).toBe('hello from aws-cli\n');

        // A presigned GET URL that a plain HTTP client can fetch; a tampered one refused.
        const body = randomBytes('presign', 70_000);
        const file = path.join(h.dir, 'presign.bin');
        fs.writeFileSync(file, body);
        await awsRun(['s3', 'cp', file, `s3://${bucket}/pre/signed.bin`]);
        objects.set(`${bucket}/pre/signed.bin`, sha256File(file));
        const url = (
          await awsRun(['s3', 'presign', `s3://${bucket}/pre/signed.bin`, '--expires-in', '300'])
        ).stdout.trim();
        expect(url.startsWith(`${h.srv.endpoint}/${bucket}/`)).toBe(true);
        const res = await fetch(url);
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
        const bad = await fetch(url.replace(/X-Amz-Signature=[0-9a-f]/, 'X-Amz-Signature=Z'));
        expect(bad.status).toBe(403);

        // s3api put/get/head-object with user metadata and an awkward key.
        const key = 'odd dir/a+b ü €漢字 (1).txt';
        const meta = path.join(h.dir, 'meta.txt');
        fs.writeFileSync(meta, 'metadata body\n');
        const put = JSON.parse(
          (
            await awsRun([
              's3api',
              'put-object',
              '--bucket',
              bucket,
              '--key',
              key,
              '--body',
              meta,
              '--content-type',
              'text/plain; charset=utf-8',
              '--metadata',
              'color=blue,owner=conformance',
            ])
          ).stdout,
        );
        objects.set(`${bucket}/${key}`, sha256File(meta));
        const head2 = JSON.parse(
          (await awsRun(['s3api', 'head-object', '--bucket', bucket, '--key', key])).stdout,
        );
        expect(head2.Metadata).toEqual({ color: 'blue', owner: 'conformance' });
        expect(head2.ContentType).toBe('text/plain; charset=utf-8');
        expect(head2.ETag).toBe(put.ETag);
        const out = path.join(h.dir, 'meta.back');
        await awsRun(['s3api', 'get-object', '--bucket', bucket, '--key', key, out]);
        expect(fs.readFileSync(out, 'utf8')).toBe('metadata body\n');
        const list = JSON.parse(
          (await awsRun(['s3api', 'list-objects-v2', '--bucket', bucket, '--prefix', 'odd']))
            .stdout,
        );
        expect(list.Contents.map((c: { Key: string }) => c.Key)).toEqual([key]);

        // A delete, then a head that must miss.
        await awsRun(['s3', 'cp', small, `s3://${bucket}/gone.txt`]);
        await awsRun(['s3', 'rm', `s3://${bucket}/gone.txt`]);
        const gone = await run(
          AWS,
          [
            '--endpoint-url',
            h.srv.endpoint,
            's3api',
            'head-object',
            '--bucket',
            bucket,
            '--key',
            'gone.txt',
          ],
          { env, timeoutMs: 30_000, allowFail: true },
        );
        expect(gone.code).not.toBe(0);
        expect(gone.stderr).toMatch(/404|Not Found/);
      },
      STEP_MS,
    );

    /** Every object written is listed and reads back byte-for-byte through the Service. */
    async function expectEveryObject(): Promise<void> {
      expect(objects.size).toBeGreaterThan(0);
      const s3 = s3Client(h.srv);
      try {
        const byBucket = new Map<string, string[]>();
        for (const k of objects.keys()) {
          const [b, ...rest] = k.split('/');
          byBucket.set(b!, [...(byBucket.get(b!) ?? []), rest.join('/')]);
        }
        for (const [bucket, keys] of byBucket) {
          const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
          expect((listed.Contents ?? []).map((c) => c.Key).sort()).toEqual([...keys].sort());
          for (const key of keys) {
            const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
            const bytes = Buffer.from(await got.Body!.transformToByteArray());
            expect(crypto.createHash('sha256').update(bytes).digest('hex'), key).toBe(
              objects.get(`${bucket}/${key}`),
            );
          }
        }
      } finally {
        s3.destroy();
      }
    }

    /** kill -9, start again with the same volumes, wait for its readinessProbe. */
    async function restart(pods: Pod[]): Promise<void> {
      for (const p of pods) await cluster.kill(p);
      for (const p of pods) await cluster.start(p);
      await cluster.waitReady(pods, READY_MS);
      // The rest of the cluster must be ready again too (e.g. gateways after the directory).
      await cluster.waitReady(cluster.pods, READY_MS);
    }

    it(
      'a store pod killed with SIGKILL and started again with its volume keeps every object',
      async () => {
        await restart([cluster.podsOf('ks-store')[0]!]);
        await expectEveryObject();
      },
      STEP_MS,
    );

    it(
      'a directory pod killed with SIGKILL and started again with its volume keeps every object',
      async () => {
        await restart([cluster.podsOf('ks-directory')[0]!]);
        await expectEveryObject();
      },
      STEP_MS,
    );

    it(
      'every pod killed at once and started again with its volume: every object kept, writes work',
      async () => {
        await restart(cluster.pods);
        await expectEveryObject();
        const after = path.join(h.dir, 'after.txt');
        fs.writeFileSync(after, `written after the restart of every ${overlay} pod\n`);
        await awsRun(['s3', 'cp', after, `s3://k8s-${overlay}/after.txt`]);
        objects.set(`k8s-${overlay}/after.txt`, sha256File(after));
        await expectEveryObject();
        expect(cluster.pods.every((p) => p.starts >= 2)).toBe(true);
      },
      STEP_MS,
    );

    it('no container exited on its own (the kubelet would have restarted it)', () => {
      const crashes = cluster.pods.flatMap((p) =>
        p.crashes.map((c) => `${p.name}: exit ${c.code ?? c.signal}: ${c.output.trim()}`),
      );
      expect(crashes).toEqual([]);
    });
  });
}
