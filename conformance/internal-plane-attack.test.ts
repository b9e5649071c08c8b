// Issue 12 items 1 and 2 over real sockets against `kubestorage cluster up` (3 Raft
// directory replicas, 4 stores, 2 gateways, every one its own process on loopback), played
// by someone on the internal network who lacks the cluster secret but sees its traffic:
//
//  1. Forged tokens with large bodies: three connections to one directory replica promise
//     48 MiB behind a made-up token, send the first 16 KiB and hold the rest back while
//     they wait for an answer (streaming it if none comes), to the Raft route (/raft/msgs)
//     and to the metadata API (/meta/_batch, another replica). Each is answered 403 at
//     once, before the body (and without the leader's URL): the replica's RSS does not
//     grow, and the cluster still serves S3.
//  2. A captured needle PUT token (the test signs one with the cluster secret, as the
//     gateway would): replayed with other bytes of the same size, with bytes crafted to
//     share the CRC32C, or with another replica list, it is refused and every replica
//     still serves the original bytes; even a validly signed PUT cannot make a store
//     forward the needle to an address the directory does not list.
//
// The real cluster already runs the Raft directory, so the integration-raft and cluster
// projects (the conformance files again with KUBESTORAGE_TEST_DIRECTORY=raft or
// KUBESTORAGE_TEST_TARGET=cluster) skip it rather than run it three times.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { crc32c } from '@node-rs/crc32';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { AUTH_HEADER, DIGEST_HEADER, InternalAuth } from '../common/internal-auth.ts';
import { CRC_HEADER, NEEDLE_PUT_COVERED, REPLICAS_HEADER } from '../store-node/api.ts';
import { crcTwin } from '../test/kit/test-nodes.ts';
import { startCluster, type TestCluster } from './cluster-util.ts';

const RUN =
  process.env.KUBESTORAGE_TEST_DIRECTORY !== 'raft' &&
  process.env.KUBESTORAGE_TEST_TARGET !== 'cluster';
const BUCKET = 'attack';
const MiB = 1024 * 1024;

/** Resident memory of a process (bytes), from /proc. */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

interface RawReply {
  /** The status code of the answer, or null when none came within the bound. */
  status: number | null;
  /** From connecting to the status line. */
  ms: number;
  /** Body bytes the socket accepted before the answer or the end of sending. */
  sent: number;
  text: string;
}

/**
 * One request on its own socket: `head` (request line and headers, no blank line), then
 * `body` in 1 MiB pieces (fewer when the server closes first), never more than the
 * Content-Length the head may promise. With `holdMs`, only the first 16 KiB go at once and
 * the rest waits that long for an answer: a server that closes with unread bytes in its
 * socket sends a reset, which can destroy an answer not yet read here, so an answer before
 * the body must be given room to arrive. Resolves once the answer is in (status null when
 * none came within `waitMs`).
 */
function rawRequest(
  url: string,
  head: string,
  body: Buffer,
  o: { holdMs?: number; waitMs?: number } = {},
): Promise<RawReply> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const t0 = performance.now();
    let sent = 0;
    let text = '';
    let done = false;
    let answered: (() => void) | null = null;
    const sock = net.connect(Number(u.port), u.hostname);
    const finish = (status: number | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      answered?.();
      sock.destroy();
      resolve({ status, ms: performance.now() - t0, sent, text });
    };
    const timer = setTimeout(() => finish(null), o.waitMs ?? 10_000);
    sock.on('error', () => {}); // EPIPE / ECONNRESET once the server closes: expected
    sock.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      finish(m ? Number(m[1]) : null);
    });
    sock.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      // The whole answer is small JSON: wait for its end (or the close) before judging.
      const m = /^HTTP\/1\.1 (\d{3})[\s\S]*?\r\n\r\n/.exec(text);
      const len = /content-length: (\d+)/i.exec(text);
      if (m && len && text.length >= m[0].length + Number(len[1])) finish(Number(m[1]));
    });
    const write = async (piece: Buffer) => {
      sent += piece.length;
      if (sock.write(piece)) return;
      await new Promise<void>((r) => {
        const go = () => {
          sock.off('drain', go);
          sock.off('close', go);
          r();
        };
        sock.on('drain', go);
        sock.on('close', go);
      });
    };
    sock.on('connect', async () => {
      sock.write(`${head}\r\n\r\n`);
      let off = 0;
      if (o.holdMs) {
        off = Math.min(body.length, 16 * 1024);
        await write(body.subarray(0, off));
        await new Promise<void>((r) => {
          answered = r;
          setTimeout(r, o.holdMs);
        });
      }
      for (; off < body.length && !done && !sock.destroyed; off += MiB) {
        await write(body.subarray(off, Math.min(body.length, off + MiB)));
      }
    });
  });
}

function headLines(method: string, path: string, host: string, headers: Record<string, string>) {
  const lines = [`${method} ${path} HTTP/1.1`, `host: ${host}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return lines.join('\r\n');
}

async function readObject(s3: S3Client, key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from((await r.Body?.transformToByteArray()) ?? []);
}

describe.skipIf(!RUN)('the internal plane against someone without the cluster secret', () => {
  let c: TestCluster | undefined;

  beforeAll(async () => {
    c = await startCluster('attack', []);
    await c.s3[0]!.send(new CreateBucketCommand({ Bucket: BUCKET }));
  }, 120_000);

  afterAll(async () => {
    await c?.close();
  }, 60_000);

  /**
   * Three connections with a forged token and 48 MiB bodies held back to directory replica
   * `which` on `path`: each answered 403 before its body, the RSS does not grow, and the
   * cluster still serves S3 (an object `key` in and out through both gateways).
   */
  async function forgedBodies(which: number, path: string, key: string): Promise<RawReply[]> {
    const cl = c as TestCluster;
    onTestFailed(() => console.log(cl.logTail()));
    const target = cl.file.directories[which]!;
    const u = new URL(target.url);
    const before = rss(target.pid);
    const forged = `${Math.floor(Date.now() / 1000)}.${'0'.repeat(64)}`;
    // Each connection offers 24 MiB of its 48 (all three buffered: 72 MiB of RSS), the first
    // 16 KiB at once and the rest unless answered within 3 s.
    const body = crypto.randomBytes(24 * MiB);
    const head = headLines('POST', path, u.host, {
      [AUTH_HEADER]: forged,
      [DIGEST_HEADER]: '0'.repeat(64),
      'content-type': 'application/octet-stream',
      'content-length': String(48 * MiB),
    });
    const replies = await Promise.all(
      [1, 2, 3].map(() => rawRequest(target.url, head, body, { holdMs: 3_000 })),
    );
    for (const r of replies) {
      expect(r.status, r.text.slice(0, 200)).toBe(403);
      // Answered at once, before the body (only its first 16 KiB had gone out).
      expect(r.ms).toBeLessThan(2_500);
      expect(r.sent).toBeLessThanOrEqual(16 * 1024);
    }
    await new Promise((r) => setTimeout(r, 300));
    const grown = rss(target.pid) - before;
    console.log(
      `[attack] directory replica ${target.id} RSS ${(before / MiB).toFixed(1)} MiB before, grew ${(grown / MiB).toFixed(1)} MiB over 3 forged 48 MiB requests to ${path}`,
    );
    expect(grown, `RSS grew by ${(grown / MiB).toFixed(1)} MiB`).toBeLessThan(20 * MiB);
    // Still a working cluster: an object in and out through both gateways.
    const data = crypto.randomBytes(20_000);
    await cl.s3[0]!.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: data }));
    for (const s3 of cl.s3) expect((await readObject(s3, key)).equals(data)).toBe(true);
    return replies;
  }

  it('a directory replica refuses forged tokens with 48 MiB bodies before reading them', async () => {
    await forgedBodies(0, '/raft/msgs', 'after-1');
  }, 60_000);

  it('a directory replica refuses forged metadata calls with 48 MiB bodies before reading them', async () => {
    // The route every gateway call takes (MetadataClient batches), on another replica.
    const replies = await forgedBodies(1, '/meta/_batch', 'after-meta');
    // Nor does the refusal name the leader (x-ks-leader is for token holders).
    for (const r of replies) expect(r.text).not.toMatch(/x-ks-leader|127\.0\.0\.1/i);
  }, 60_000);

  it('a captured needle PUT token replayed with other bytes or replicas is refused', async () => {
    const cl = c as TestCluster;
    onTestFailed(() => console.log(cl.logTail()));
    const auth = new InternalAuth(cl.file.secret);
    // An existing volume and its replicas, as the gateway placed an object.
    const seed = crypto.randomBytes(4_000);
    await cl.s3[0]!.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'seed', Body: seed }));
    const rec = await cl.meta.getObject(BUCKET, 'seed');
    const volumeId = rec!.chunks[0]!.volumeId;
    const vol = await cl.meta.getVolume(volumeId);
    const urls = vol!.replicas.map((id) => cl.storeUrl(id));
    expect(urls.length).toBeGreaterThanOrEqual(2);
    const [primary, ...others] = urls as [string, ...string[]];
    const { first: needleId } = await cl.meta.allocateNeedleIds(1);
    const ref = { volumeId, needleId, cookie: crypto.randomBytes(4).readUInt32LE(0) };
    const path = `/volumes/${volumeId}/needles/${needleId}?cookie=${ref.cookie}`;

    // The gateway's PUT: CRC and replica list under the token. Captured on the wire.
    const original = crypto.randomBytes(30_000);
    const crc = String(crc32c(original));
    const signed: Record<string, string> = {
      [CRC_HEADER]: crc,
      [REPLICAS_HEADER]: others.join(','),
    };
    const token = auth.sign('PUT', path, undefined, {
      contentLength: original.length,
      headers: NEEDLE_PUT_COVERED.map((h) => signed[h]),
    });
    const host = new URL(primary).host;
    const put = (body: Buffer, headers: Record<string, string>) =>
      rawRequest(
        primary,
        headLines('PUT', path, host, {
          [AUTH_HEADER]: token,
          ...headers,
          'content-length': String(original.length),
        }),
        body,
      );
    const first = await put(original, signed);
    expect(first.status, first.text).toBe(201);

    // A listener the attacker owns: no store may ever call it.
    let calls = 0;
    const trap = http.createServer((req, res) => {
      calls++;
      req.resume();
      res.writeHead(201).end('{}');
    });
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', () => r()));
    const trapUrl = `http://127.0.0.1:${(trap.address() as net.AddressInfo).port}`;
    try {
      // Other bytes of the same size under the captured CRC: they do not match it.
      const other = crypto.randomBytes(original.length);
      const r1 = await put(other, signed);
      expect([r1.status, r1.text.includes('BadChecksum')]).toEqual([400, true]);
      // …with their own CRC: the token covers the CRC header.
      const r2 = await put(other, { ...signed, [CRC_HEADER]: String(crc32c(other)) });
      expect(r2.status).toBe(403);
      // …crafted to share the CRC: needles are write-once.
      const twin = crcTwin(original);
      expect(crc32c(twin)).toBe(crc32c(original));
      const r3 = await put(twin, signed);
      expect([r3.status, r3.text.includes('NeedleExists')]).toEqual([409, true]);
      // Another replica list (one more, or one swapped for the attacker's), or none: 403,
      // and answered without the body (none is sent here).
      for (const replicas of [`${others.join(',')},${trapUrl}`, trapUrl, '']) {
        const r = await rawRequest(
          primary,
          headLines('PUT', path, host, {
            [AUTH_HEADER]: token,
            [CRC_HEADER]: crc,
            ...(replicas === '' ? {} : { [REPLICAS_HEADER]: replicas }),
            'content-length': String(original.length),
          }),
          Buffer.alloc(0),
          { waitMs: 5_000 },
        );
        expect([replicas, r.status]).toEqual([replicas, 403]);
      }
      // Even with the secret, a store forwards only to stores the directory lists.
      const id2 = (await cl.meta.allocateNeedleIds(1)).first;
      await expect(
        cl
          .store(vol!.replicas[0]!)
          .put({ ...ref, needleId: id2 }, original, undefined, { replicas: [trapUrl] }),
      ).rejects.toMatchObject({ code: 'UnknownReplica' });
      expect(calls).toBe(0);
    } finally {
      await new Promise<void>((r) => trap.close(() => r()));
    }

    // Every replica still holds the original bytes, and the seed object reads back.
    for (const id of vol!.replicas) {
      expect((await cl.store(id).get(ref)).data.equals(original), `store ${id}`).toBe(true);
    }
    for (const s3 of cl.s3) expect((await readObject(s3, 'seed')).equals(seed)).toBe(true);
  }, 60_000);
});
