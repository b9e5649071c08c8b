// `kubestorage server --workers 2` as a real process: S3 traffic through the cluster
// workers, SIGTERM shutdown, then a single-process restart on the same data.
import { type ChildProcess, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { filesContaining, openToOthers } from '../test/kit/files-at-rest.ts';
import { exited, killChildren, startKubestorage } from '../test/kit/processes.ts';
import { adminCall, s3Client } from '../test/kit/s3-clients.ts';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { parseWorkers } from './server.ts';

afterEach(() => killChildren());

// Random, so that no compression of the files at rest can hide a copy of it in the
// data-at-rest test (a repetitive secret compresses to something else).
const ROOT_SECRET = crypto.randomBytes(20).toString('hex');

interface Running {
  child: ChildProcess;
  endpoint: string;
  accessKey: string;
  secretKey: string;
  output: () => string;
}

async function start(data: string, workers: string[]): Promise<Running> {
  const p = startKubestorage(['server', '--data', data, '--listen', '127.0.0.1:0', ...workers], {
    env: {
      ...process.env,
      KUBESTORAGE_LOG_LEVEL: 'info',
      KUBESTORAGE_ROOT_ACCESS_KEY: 'TESTKEY0123456789',
      KUBESTORAGE_ROOT_SECRET_KEY: ROOT_SECRET,
    },
  });
  // Three processes load the gateway at once: next to the rest of CI on 2 cores a start
  // took over 20 s once (5 s when idle).
  const m = await p.waitFor(/S3 endpoint: (http:\/\/\S+)/, 60_000, 'all');
  return {
    child: p.child,
    endpoint: m[1]!,
    accessKey: 'TESTKEY0123456789',
    secretKey: ROOT_SECRET,
    output: p.output,
  };
}

const s3 = (r: Running): S3Client => s3Client(r);

const KUBESTORAGE_BIN = path.join(import.meta.dirname, '..', 'bin', 'kubestorage.js');

/** GET /_ks/metrics on a connection of its own. */
function scrape(endpoint: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      `${endpoint}/_ks/metrics`,
      { agent: false, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
  });
}

describe('parseWorkers', () => {
  it('defaults to 1, maps 0 and auto to the core count and rejects junk', () => {
    expect(parseWorkers(undefined)).toBe(1);
    expect(parseWorkers('3')).toBe(3);
    expect(parseWorkers('auto')).toBeGreaterThanOrEqual(1);
    expect(parseWorkers('0')).toBe(parseWorkers('auto'));
    expect(() => parseWorkers('-1')).toThrow();
    expect(() => parseWorkers('two')).toThrow();
  });
});

describe('kubestorage server --workers 2', () => {
  it('serves S3 from two workers, stops cleanly on SIGTERM and reloads single-process', async () => {
    const data = tempDir();
    const a = await start(data, ['--workers', '2']);
    expect(a.output().match(/S3 endpoint/g)).toHaveLength(1); // printed once, by the primary
    // Both workers check the metrics token derived from DIR/secret.key, which
    // `kubestorage admin metrics-token --data DIR` prints (a fresh connection each: the
    // cluster spreads them over the workers).
    const token = execFileSync(
      process.execPath,
      [KUBESTORAGE_BIN, 'admin', 'metrics-token', '--data', data],
      { encoding: 'utf8' },
    ).trim();
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    for (let i = 0; i < 6; i++) {
      expect(await scrape(a.endpoint, token)).toMatchObject({ status: 200 });
      expect((await scrape(a.endpoint, token)).body).toContain('# HELP');
      expect((await scrape(a.endpoint, 'x'.repeat(64))).status).toBe(403);
    }
    const c1 = s3(a);
    await c1.send(new CreateBucketCommand({ Bucket: 'photos' }));
    const keys = Array.from({ length: 24 }, (_, i) => `img/${String(i).padStart(3, '0')}.jpg`);
    const body = (k: string) => `data of ${k} `.repeat(50);
    // Concurrent requests open several connections, which the cluster spreads over workers.
    await Promise.all(
      keys.map((k) => c1.send(new PutObjectCommand({ Bucket: 'photos', Key: k, Body: body(k) }))),
    );
    const got = await Promise.all(
      keys.map(async (k) =>
        (
          await c1.send(new GetObjectCommand({ Bucket: 'photos', Key: k }))
        ).Body!.transformToString(),
      ),
    );
    expect(got).toEqual(keys.map(body));
    const list = await c1.send(new ListObjectsV2Command({ Bucket: 'photos', MaxKeys: 10 }));
    expect(list.KeyCount).toBe(10);
    expect(list.IsTruncated).toBe(true);
    const rest = await c1.send(
      new ListObjectsV2Command({ Bucket: 'photos', ContinuationToken: list.NextContinuationToken }),
    );
    expect([...list.Contents!, ...rest.Contents!].map((o) => o.Key)).toEqual(keys);
    c1.destroy();

    a.child.kill('SIGTERM');
    expect(await exited(a.child)).toBe(0);
    // Both workers served requests (each logs its count when it stops).
    const stops = [...a.output().matchAll(/"served":(\d+),"msg":"worker stopped"/g)];
    expect(stops).toHaveLength(2);
    for (const m of stops) expect(Number(m[1])).toBeGreaterThan(0);
    expect(fs.readdirSync(path.join(data, 'store')).some((f) => f.endsWith('.dat'))).toBe(true);

    const b = await start(data, []);
    const c2 = s3(b);
    for (const k of [keys[0]!, keys[13]!, keys[23]!]) {
      const r = await c2.send(new GetObjectCommand({ Bucket: 'photos', Key: k }));
      expect(await r.Body!.transformToString()).toBe(body(k));
    }
    const all = await c2.send(new ListObjectsV2Command({ Bucket: 'photos' }));
    expect(all.KeyCount).toBe(keys.length);
    c2.destroy();
    b.child.kill('SIGTERM');
    expect(await exited(b.child)).toBe(0);
  }, 180_000);
});

/** A request to the admin API, signed with `r`'s root key: the new key it answers with. */
async function admin(r: Running, method: string, what: string, query: [string, string][]) {
  const res = await adminCall(r.endpoint, r, method, what, query);
  expect(res.status).toBe(201);
  return res.body as unknown as { accessKey: string; secretKey: string };
}

describe('data at rest', () => {
  it('creates nothing other users can read and holds no secret key in clear', async () => {
    const data = tempDir();
    const a = await start(data, []);
    const c = s3(a);
    await c.send(new CreateBucketCommand({ Bucket: 'private' }));
    await c.send(new PutObjectCommand({ Bucket: 'private', Key: 'k', Body: 'v' }));
    c.destroy();
    // A second user, and a second key of it, through the admin API.
    const alice = await admin(a, 'POST', 'users', [['id', 'alice']]);
    const aliceC = s3Client(a, alice);
    await aliceC.send(new CreateBucketCommand({ Bucket: 'alices' }));
    aliceC.destroy();
    a.child.kill('SIGTERM');
    expect(await exited(a.child)).toBe(0);
    // The same data under --workers 2 (the primary installs the root key, a worker the new one).
    const b = await start(data, ['--workers', '2']);
    const key2 = await admin(b, 'POST', 'keys', [['user', 'alice']]);
    b.child.kill('SIGTERM');
    expect(await exited(b.child)).toBe(0);

    expect(fs.readdirSync(path.join(data, 'store')).some((f) => f.endsWith('.dat'))).toBe(true);
    expect.soft(openToOthers(data)).toEqual([]);
    for (const secret of [a.secretKey, alice.secretKey, key2.secretKey]) {
      expect.soft(filesContaining(data, secret), secret).toEqual([]);
      // Nor in what the server printed (stdout is a pipe here, as when sent to a log).
      expect.soft(a.output()).not.toContain(secret);
      expect.soft(b.output()).not.toContain(secret);
    }
    expect(a.output()).toContain(`access key: ${a.accessKey}`);
  }, 180_000);
});
