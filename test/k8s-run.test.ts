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
// Prod's Redis pod (the gateways' shared L2 cache, k8s/components/redis) runs its command,
// redis-server, as Debian's /usr/bin/redis-server with the manifest's args; the gateways
// reach it through the ks-redis Service name in their KUBESTORAGE_CACHE_REDIS_URL.
// Without kubectl (kustomize v5) the file is skipped with the reason printed, except in CI
// (process.env.CI), where that fails.
// Prod has no Secret in its render: the test creates `ks-secrets` as docs/kubernetes.md
// tells the operator to. Pods carry their node's zone label (as PodTopologyLabelsAdmission,
// Kubernetes 1.35+, sets it), so prod's node-zone init container finds it without asking the
// API server (there is none here).
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_SERVER_BIN } from '../cache/redis-process.ts';
import { randomBytes, sha256File } from '../conformance/harness.ts';
import { kustomizeAvailable, LocalCluster, type Pod, render } from './kit/k8s-pods.ts';
import { run } from './kit/processes.ts';
import { AWS, aws, awsEnv, type ClientHome, s3Client } from './kit/s3-clients.ts';
import { tempDir } from './kit/temp-dirs.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const KUSTOMIZE = kustomizeAvailable();
const HAVE_AWS = fs.existsSync(AWS);
const HAVE_REDIS = fs.existsSync(REDIS_SERVER_BIN);
const IN_CI = Boolean(process.env.CI);
if (!KUSTOMIZE.ok) {
  if (!IN_CI) console.warn(`k8s run: ${KUSTOMIZE.reason}: skipped`);
} else if (!HAVE_AWS) console.warn(`k8s run: ${AWS} missing (apt-get install awscli): skipped`);
else if (!HAVE_REDIS)
  console.warn(
    `k8s run: prod: ${REDIS_SERVER_BIN} missing (apt-get install redis-server): skipped`,
  );

describe.runIf(!KUSTOMIZE.ok && IN_CI)('k8s run: CI has kubectl', () => {
  it('fails the run rather than skip the manifests run', () => {
    expect.fail(`${KUSTOMIZE.reason}: CI must run the manifests (.ci/run checks for kubectl)`);
  });
});

/** `INFO clients` of the Redis at ip:port, over one plain connection: connected_clients. */
function redisClients(ip: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, ip);
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${ip}:${port}: no answer`));
    }, 5_000);
    sock.once('connect', () => sock.write('INFO clients\r\n'));
    sock.on('data', (b) => {
      got += b.toString('latin1');
      const m = /connected_clients:(\d+)/.exec(got);
      if (m) {
        clearTimeout(timer);
        sock.destroy();
        resolve(Number(m[1]));
      }
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

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
  const skip = !KUSTOMIZE.ok || !HAVE_AWS || (overlay === 'prod' && !HAVE_REDIS);
  describe.skipIf(skip)(`k8s/overlays/${overlay} runs`, () => {
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
      const counts = ['ks-directory', 'ks-store', 'ks-gateway', 'ks-redis'].map(count);
      if (overlay === 'dev') {
        expect(counts).toEqual([1, 1, 1, 0]);
      } else {
        // The gateways: the HPA's minReplicas (the Deployment leaves replicas to it); one
        // Redis (components/redis).
        expect(counts).toEqual([3, 6, 3, 1]);
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

    /**
     * Prod: every gateway process holds a connection to the Redis pod, made through the
     * ks-redis Service its KUBESTORAGE_CACHE_REDIS_URL names (DNS, then the Service's proxy).
     */
    async function expectGatewaysOnRedis(): Promise<void> {
      const gateways = cluster.podsOf('ks-gateway');
      for (const gw of gateways) {
        const url = new URL(cluster.envOf(gw).get('KUBESTORAGE_CACHE_REDIS_URL')!);
        expect(url.hostname).toBe('ks-redis');
        expect(cluster.serviceUrl('ks-redis', Number(url.port))).toMatch(/^http:\/\/[\d.]+:6379$/);
      }
      const redis = cluster.podsOf('ks-redis')[0]!;
      // The gateways' connections plus this one; a gateway reconnects within a second.
      let clients = 0;
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        clients = await redisClients(redis.ip, 6379);
        if (clients >= gateways.length + 1) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(clients).toBeGreaterThanOrEqual(gateways.length + 1);
    }

    const redisTitle =
      overlay === 'prod'
        ? 'prod: Redis runs as written, every gateway connected to it through its Service'
        : 'dev: no Redis, and no gateway points at one';
    it(redisTitle, async () => {
      if (overlay === 'dev') {
        for (const gw of cluster.podsOf('ks-gateway'))
          expect(cluster.envOf(gw).has('KUBESTORAGE_CACHE_REDIS_URL')).toBe(false);
        return;
      }
      // Redis ran as the manifest says: redis-server, as uid 999 where the runner can.
      const redis = cluster.podsOf('ks-redis')[0]!;
      expect(fs.readFileSync(redis.log, 'utf8')).toMatch(/start 1: \["redis-server"/);
      await expectGatewaysOnRedis();
    });

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
        // The gateways reconnect to the Redis pod, which came back empty.
        if (overlay === 'prod') await expectGatewaysOnRedis();
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
