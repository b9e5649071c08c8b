// Real store nodes on loopback for the cluster tests (replication, sync, repair).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { AUTH_HEADER, DIGEST_HEADER, InternalAuth, sha256Hex } from '../../common/internal-auth.ts';
import { StoreClient } from '../../store-node/client.ts';
import { NEEDLE_HEADER_SIZE } from '../../store-node/needle.ts';
import { StoreServer, type StoreServerOptions } from '../../store-node/server.ts';
import { Store, type StoreOptions } from '../../store-node/store.ts';
import type { Cleanups } from './fixture.ts';
import { tempDir } from './temp-dirs.ts';

export const auth = new InternalAuth('cluster-test-secret-0123456789');

/**
 * Origins of every node and fake peer started in this test file: what the nodes' default
 * `knownStore` accepts as replicas and sync sources (a cluster's directory lists its stores;
 * these tests have none). Addresses outside it (another server) are unknown stores.
 */
export const knownOrigins = new Set<string>();
const knownTestStore = async (origin: string) => knownOrigins.has(origin);

export interface TestNode {
  dir: string;
  store: Store;
  server: StoreServer;
  url: string;
  port: number;
  client: StoreClient;
  close(): Promise<void>;
}

/**
 * A store node on a free loopback port, with a client for it: in a new temp dir (or `dir`,
 * to reopen one), no background compaction or scrub, the given volumes created.
 * `standalone`: it knows no other store (forwards to nobody, syncs from nobody).
 */
export async function startNode(
  opts: {
    volumes?: number[];
    server?: Partial<StoreServerOptions>;
    store?: Partial<StoreOptions>;
    dir?: string;
    standalone?: boolean;
  } = {},
): Promise<TestNode> {
  const dir = opts.dir ?? tempDir();
  const store = await Store.open(dir, { compactCheckMs: 0, scrubIntervalMs: 0, ...opts.store });
  for (const v of opts.volumes ?? []) await store.createVolume(v);
  const server = new StoreServer({
    store,
    auth,
    maxNeedleSize: 1024 * 1024,
    knownStore: opts.standalone ? undefined : knownTestStore,
    ...opts.server,
  });
  const { port } = await server.listen('127.0.0.1', 0);
  const url = `http://127.0.0.1:${port}`;
  if (!opts.standalone) knownOrigins.add(url);
  const client = new StoreClient(url, opts.server?.auth ?? auth);
  let closed = false;
  return {
    dir,
    store,
    server,
    url,
    port,
    client,
    async close() {
      if (closed) return;
      closed = true;
      await client.close();
      await server.close();
      await store.close();
    },
  };
}

/** startNode for tests that start nodes as they go: each is closed by `cleanups` after the test. */
export function nodeStarter(cleanups: Cleanups) {
  return async (volumes = [1], server?: Partial<StoreServerOptions>): Promise<TestNode> => {
    const n = await startNode({ volumes, server });
    cleanups.push(() => n.close());
    return n;
  };
}

/** Listens on a free loopback port; close() drops open connections too (peers that hang). */
async function serveLoopback(
  server: http.Server,
): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  knownOrigins.add(`http://127.0.0.1:${port}`);
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * A loopback HTTP peer standing in for a directory: checks every POST against `peerAuth`,
 * hands path, parsed body and the verdict to `answer`, and replies with what it returns as
 * JSON (204 when it returns undefined).
 */
export async function startJsonPeer(
  peerAuth: InternalAuth,
  answer: (path: string, body: unknown, authOk: boolean) => unknown,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c));
    req.on('end', () => {
      const route = req.url ?? '';
      const authOk = verifySignedBody(peerAuth, req, text);
      const r = answer(route, JSON.parse(text), authOk);
      if (r === undefined) res.writeHead(204).end();
      else res.end(JSON.stringify(r));
    });
  });
  return serveLoopback(server);
}

/** A peer that accepts connections and requests but never answers (until closed). */
export async function startBlackHole(): Promise<{ url: string; close(): Promise<void> }> {
  const open = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    req.resume();
    open.add(res);
  });
  return serveLoopback(server);
}

/** Flips one data byte of a needle on disk (the open volume sees it on its next pread). */
export function flipDataByte(node: TestNode, vid: number, offset: number, at = 10): void {
  const fd = fs.openSync(path.join(node.dir, `${vid}.dat`), 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset + NEEDLE_HEADER_SIZE + at);
    b[0]! ^= 0x40;
    fs.writeSync(fd, b, 0, 1, offset + NEEDLE_HEADER_SIZE + at);
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether a request a fake peer received carries a valid token over `body` (signBody). */
export function verifySignedBody(
  auth: InternalAuth,
  req: http.IncomingMessage,
  body: string,
): boolean {
  const one = (name: string) => req.headers[name] as string | undefined;
  const digest = one(DIGEST_HEADER);
  return (
    digest === sha256Hex(body) &&
    auth.verify(one(AUTH_HEADER), req.method ?? 'POST', req.url ?? '/', undefined, {
      contentLength: one('content-length'),
      digest,
    })
  );
}

/**
 * Other bytes of the same length and the same CRC32C as `data` (at least 5 bytes): what
 * an attacker replaying a needle token with its CRC would send. Over a fixed length the
 * CRC is affine in the bits, crc(x ^ d) = crc(x) ^ L(d); L maps 33 single-bit flips into
 * 32 bits, so some of them XOR to 0 and flipping those leaves the CRC as it was.
 */
export function crcTwin(data: Buffer): Buffer {
  if (data.length < 5) throw new Error('crcTwin needs at least 5 bytes');
  const base = crc32c(data);
  const flip = (b: Buffer, bit: number) => {
    b[bit >> 3]! ^= 1 << (bit & 7);
  };
  const basis = new Map<number, { v: number; mask: bigint }>();
  for (let bit = 0; bit < 33; bit++) {
    const probe = Buffer.from(data);
    flip(probe, bit);
    let v = (crc32c(probe) ^ base) >>> 0;
    let mask = 1n << BigInt(bit);
    while (v !== 0) {
      const top = 31 - Math.clz32(v);
      const b = basis.get(top);
      if (!b) break;
      v = (v ^ b.v) >>> 0;
      mask ^= b.mask;
    }
    if (v !== 0) {
      basis.set(31 - Math.clz32(v), { v, mask });
      continue;
    }
    const twin = Buffer.from(data);
    for (let i = 0; i < 33; i++) if ((mask >> BigInt(i)) & 1n) flip(twin, i);
    return twin;
  }
  throw new Error('unreachable: 33 vectors in 32 dimensions are dependent');
}
