// Real store nodes on loopback for the cluster tests (replication, sync, repair).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { AUTH_HEADER, DIGEST_HEADER, InternalAuth, sha256Hex } from '../../common/internal-auth.ts';
import { StoreClient } from '../../store-node/client.ts';
import { NEEDLE_HEADER_SIZE } from '../../store-node/needle.ts';
import { StoreServer, type StoreServerOptions } from '../../store-node/server.ts';
import { Store } from '../../store-node/store.ts';
import type { Cleanups } from './fixture.ts';
import { tempDir } from './temp-dirs.ts';

export const auth = new InternalAuth('cluster-test-secret-0123456789');

export interface TestNode {
  dir: string;
  store: Store;
  server: StoreServer;
  url: string;
  client: StoreClient;
  close(): Promise<void>;
}

export async function startNode(
  opts: { volumes?: number[]; server?: Partial<StoreServerOptions> } = {},
): Promise<TestNode> {
  const dir = tempDir();
  const store = await Store.open(dir, { compactCheckMs: 0, scrubIntervalMs: 0 });
  for (const v of opts.volumes ?? []) await store.createVolume(v);
  const server = new StoreServer({ store, auth, maxNeedleSize: 1024 * 1024, ...opts.server });
  const { port } = await server.listen('127.0.0.1', 0);
  const url = `http://127.0.0.1:${port}`;
  const client = new StoreClient(url, auth);
  let closed = false;
  return {
    dir,
    store,
    server,
    url,
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
