import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { AUTH_HEADER, DIGEST_HEADER, InternalAuth } from './internal-auth.ts';
import {
  authorizeHead,
  close,
  createServer,
  InternalError,
  listen,
  readBody,
  readSignedBody,
  sendError,
  sendJson,
  toInternalError,
} from './internal-http.ts';

const auth = new InternalAuth('internal-http-test-secret');
const servers: http.Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => close(s)));
});

/** A server answering `handle`'s value as JSON and whatever it throws through sendError. */
async function serve(
  handle: (req: http.IncomingMessage) => Promise<unknown>,
): Promise<{ port: number; seen: unknown[] }> {
  const seen: unknown[] = [];
  const server = createServer((req, res) => {
    handle(req).then(
      (out) => sendJson(res, 200, out),
      (e: unknown) => {
        seen.push(e);
        sendError(req, res, toInternalError(e));
      },
    );
  });
  servers.push(server);
  return { port: (await listen(server, '127.0.0.1', 0)).port, seen };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: unknown;
}

/** Sends headers, then `body` unless it is null (a sender that never gets to its body). */
function request(
  port: number,
  path: string,
  headers: Record<string, string | number>,
  body: Buffer | string | null,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path, headers, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => {
          resolve({ status: res.statusCode!, headers: res.headers, json: JSON.parse(text) });
          req.destroy();
        });
      },
    );
    req.on('error', reject);
    if (body === null) req.flushHeaders();
    else req.end(body);
  });
}

describe('InternalError', () => {
  it('answers its status with {error, message, ...details}; anything else is a 500', () => {
    const e = new InternalError(409, 'NotLeader', 'go elsewhere', { leaderId: 'd2' });
    expect(e.toJSON()).toEqual({ error: 'NotLeader', message: 'go elsewhere', leaderId: 'd2' });
    expect(toInternalError(e)).toBe(e);
    const other = toInternalError(new TypeError('boom'));
    expect(other).toMatchObject({ status: 500, code: 'InternalError', message: 'boom' });
  });
});

describe('readBody', () => {
  it('returns the body, refuses one over the limit with 413 and closes the connection', async () => {
    const { port } = await serve(async (req) => (await readBody(req, 10)).toString('utf8'));
    const ok = await request(port, '/', {}, '0123456789');
    expect([ok.status, ok.json]).toEqual([200, '0123456789']);
    // Refused from the Content-Length alone, before any byte arrives.
    const declared = await request(port, '/', { 'content-length': 1 << 20 }, null);
    expect(declared.status).toBe(413);
    expect(declared.json).toEqual({
      error: 'EntityTooLarge',
      message: 'body of 1048576 bytes exceeds 10',
    });
    expect(declared.headers.connection).toBe('close');
    // A chunked body is counted as it comes.
    const chunked = await request(port, '/', { 'transfer-encoding': 'chunked' }, 'x'.repeat(11));
    expect(chunked.status).toBe(413);
    expect(chunked.json).toMatchObject({ error: 'EntityTooLarge' });
  });

  it('fails IncompleteBody when the sender stops short', async () => {
    let failure: Promise<unknown> = Promise.resolve();
    const got = new Promise<unknown>((resolve) => {
      const server = createServer((req) => {
        failure = readBody(req, 100).catch((e: unknown) => e);
        void failure.then(resolve);
      });
      servers.push(server);
      void listen(server, '127.0.0.1', 0).then(({ port }) => {
        const req = http.request({
          host: '127.0.0.1',
          port,
          method: 'POST',
          headers: { 'content-length': 50 },
          agent: false,
        });
        req.on('error', () => {});
        req.write('only ten b');
        setTimeout(() => req.destroy(), 50);
      });
    });
    expect(await got).toMatchObject({ status: 400, code: 'IncompleteBody' });
  });
});

describe('signed requests', () => {
  const path = '/signed?x=1';

  it('verifies the whole token before reading the body, and the body against its digest after', async () => {
    let reads = 0;
    const { port } = await serve(async (req) => {
      const body = await readSignedBody(req, auth, 64 << 20);
      reads++;
      return body.toString('utf8');
    });
    const body = '{"a":1}';
    const ok = await request(port, path, auth.signBody('POST', path, body), body);
    expect([ok.status, ok.json]).toEqual([200, body]);
    // A forged token with a fresh time and a large body held back (the attack of issue 12):
    // refused at once, so the server neither waits for nor buffers the body.
    const forged = { [AUTH_HEADER]: `${Math.floor(Date.now() / 1000)}.${'0'.repeat(64)}` };
    const big = 48 << 20;
    const early = await request(
      port,
      path,
      { ...forged, [DIGEST_HEADER]: '0'.repeat(64), 'content-length': big },
      null,
    );
    expect(early.status).toBe(403);
    expect(early.json).toEqual({
      error: 'Forbidden',
      message: 'missing or invalid internal auth token',
    });
    expect(early.headers.connection).toBe('close');
    // Stale, or for another length, path or secret: refused before the body too.
    const heads = [
      auth.signBody('POST', path, 'x'.repeat(1000), Date.now() - 3600_000),
      auth.signBody('POST', path, 'x'.repeat(999)),
      auth.signBody('POST', '/signed?x=2', 'x'.repeat(1000)),
      new InternalAuth('another-secret-0123456789').signBody('POST', path, 'x'.repeat(1000)),
    ];
    for (const h of heads) {
      const r = await request(port, path, { ...h, 'content-length': 1000 }, null);
      expect(r.status).toBe(403);
    }
    // A genuine head with another body of the same length: the digest does not match.
    const other = await request(port, path, auth.signBody('POST', path, '{"a":2}'), body);
    expect(other.status).toBe(403);
    // Without the digest header, or without any token.
    const noDigest = { [AUTH_HEADER]: auth.signBody('POST', path, body)[AUTH_HEADER]! };
    expect((await request(port, path, noDigest, body)).status).toBe(403);
    expect((await request(port, path, {}, body)).status).toBe(403);
    expect(reads).toBe(1);
  });

  it('covers Content-Length and the headers a route names', async () => {
    const covered = ['x-ks-crc32c', 'x-ks-replicas'];
    const { port } = await serve(async (req) => {
      authorizeHead(req, auth, covered);
      return (await readBody(req, 100)).length;
    });
    const sign = (len: number, crc: string, replicas?: string) => ({
      [AUTH_HEADER]: auth.sign('POST', path, undefined, {
        contentLength: len,
        headers: [crc, replicas],
      }),
      'x-ks-crc32c': crc,
      ...(replicas === undefined ? {} : { 'x-ks-replicas': replicas }),
    });
    const ok = await request(port, path, sign(3, '7'), 'abc');
    expect([ok.status, ok.json]).toEqual([200, 3]);
    const withReplicas = await request(port, path, sign(3, '7', 'http://a:1'), 'abc');
    expect(withReplicas.status).toBe(200);
    // Another length, another covered value, or a covered header added on the way.
    expect((await request(port, path, sign(4, '7'), 'abc')).status).toBe(403);
    expect((await request(port, path, { ...sign(3, '7'), 'x-ks-crc32c': '8' }, 'abc')).status).toBe(
      403,
    );
    const added = { ...sign(3, '7'), 'x-ks-replicas': 'http://evil:1' };
    expect((await request(port, path, added, 'abc')).status).toBe(403);
    const early = await request(port, path, { ...sign(3, '7'), 'content-length': 50 }, null);
    expect(early.status).toBe(403);
  });
});

describe('sendError', () => {
  it('resets the connection once the headers are out', async () => {
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-length': 100 });
      res.write('partial');
      sendError(req, res, new InternalError(500, 'InternalError', 'late'));
    });
    servers.push(server);
    const { port } = await listen(server, '127.0.0.1', 0);
    const outcome = await fetch(`http://127.0.0.1:${port}/`)
      .then((r) => r.text())
      .then(
        () => 'complete',
        () => 'reset',
      );
    expect(outcome).toBe('reset');
  });
});
