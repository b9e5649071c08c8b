// What the internal node:http servers share (store node, metadata API, Raft replicas):
// listen/close, bodies read under a byte limit, JSON answers, one error type that knows its
// HTTP answer, and the x-ks-auth checks. Plain node:http rather than a framework: fixed
// routes, binary bodies on the needle path, and nothing allocated per request that a route
// does not need (the store's needle GET/PUT and /meta calls are the hot paths).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AUTH_HEADER, DIGEST_HEADER, type InternalAuth, sha256Hex } from './internal-auth.ts';

/** Anything that knows its HTTP answer: a status and a JSON body. */
export interface HttpAnswer {
  readonly status: number;
  toJSON(): unknown;
}

/** A failure that answers `status` with `{error: code, message, ...details}`. */
export class InternalError extends Error implements HttpAnswer {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra fields of the JSON body (e.g. where the leader is). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'InternalError';
  }

  toJSON(): { error: string; message: string } & Record<string, unknown> {
    return { error: this.code, message: this.message, ...this.details };
  }
}

export const forbidden = (): InternalError =>
  new InternalError(403, 'Forbidden', 'missing or invalid internal auth token');

/** An InternalError as it is; anything else is unexpected: 500 InternalError. */
export function toInternalError(e: unknown): InternalError {
  if (e instanceof InternalError) return e;
  return new InternalError(500, 'InternalError', (e as Error)?.message ?? String(e));
}

// ---- servers ----

export function createServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): http.Server {
  // Longer than the clients' pools keep idle sockets, so a client never reuses one the
  // server is closing.
  return http.createServer({ keepAliveTimeout: 65_000 }, handler);
}

export async function listen(
  server: http.Server,
  host: string,
  port: number,
): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}

/** Stops accepting, lets requests in flight finish, drops idle keep-alive sockets. */
export function close(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

/** Path and query string (without "?") of a request URL: no URL object on hot paths. */
export function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

// ---- answers ----

const bigintAsString = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v);

/** A JSON answer; bigints become decimal strings. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  sendJsonText(res, status, JSON.stringify(body, bigintAsString));
}

/** A JSON answer already encoded. */
export function sendJsonText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Answers a failure with err's status and `body` (its own JSON unless a route's wire format
 * differs). Once the headers are out only a reset can tell the client something went wrong.
 */
export function sendError(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  err: HttpAnswer,
  body: unknown = err.toJSON(),
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // An unread body must not be parsed as the next request on this socket, and a refused
  // sender (bad token, body too large) gets no connection to send more on.
  if (!req.complete || err.status === 403 || err.status === 413) {
    res.setHeader('connection', 'close');
  }
  sendJson(res, err.status, body);
}

// ---- bodies ----

/**
 * The whole body, at most `max` bytes: 413 EntityTooLarge past that (at once when the
 * Content-Length says so, before a byte is read), 400 IncompleteBody when the sender stops
 * short. A refused body is drained, not kept.
 */
export function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const cl = req.headers['content-length'];
  let expected = -1;
  if (cl !== undefined) {
    if (!/^\d{1,16}$/.test(cl)) {
      return Promise.reject(new InternalError(400, 'InvalidArgument', 'bad content-length'));
    }
    expected = Number(cl);
    if (expected > max) {
      return Promise.reject(tooLarge(`body of ${expected} bytes exceeds ${max}`));
    }
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const fail = (e: InternalError) => {
      if (done) return;
      done = true;
      reject(e);
    };
    req.on('data', (c: Buffer) => {
      total += c.length;
      if (total > max) fail(tooLarge(`body exceeds ${max} bytes`));
      else if (!done) chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      if (expected >= 0 && total !== expected) {
        fail(incomplete(`got ${total} of ${expected} bytes`));
        return;
      }
      done = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    });
    req.on('error', () => fail(incomplete('request body aborted')));
    req.on('close', () => {
      if (!req.complete) fail(incomplete(`connection closed after ${total} bytes`));
    });
  });
}

const tooLarge = (message: string) => new InternalError(413, 'EntityTooLarge', message);
const incomplete = (message: string) => new InternalError(400, 'IncompleteBody', message);

// ---- authentication (x-ks-auth, internal-auth.ts) ----

function header(req: http.IncomingMessage, name: string): string | undefined {
  const h = req.headers[name];
  return typeof h === 'string' ? h : undefined;
}

/**
 * The one check of every signed request, before any of its body is read: the token over
 * method, path, Content-Length, x-ks-content-sha256 and the route's `covered` headers
 * (named in lower case, in the order the client signed them). Nobody without the cluster
 * secret gets a byte of body read. Throws 403 Forbidden.
 */
export function authorizeHead(
  req: http.IncomingMessage,
  auth: InternalAuth,
  covered: readonly string[] = [],
): void {
  const ok = auth.verify(header(req, AUTH_HEADER), req.method ?? 'GET', req.url ?? '/', undefined, {
    contentLength: header(req, 'content-length'),
    digest: header(req, DIGEST_HEADER),
    headers: covered.map((name) => header(req, name)),
  });
  if (!ok) throw forbidden();
}

/**
 * The body of a request whose token covers it (at most `max` bytes): the head is verified
 * first (authorizeHead), then the body against the signed digest. 403 otherwise.
 */
export async function readSignedBody(
  req: http.IncomingMessage,
  auth: InternalAuth,
  max: number,
): Promise<Buffer> {
  const digest = header(req, DIGEST_HEADER);
  // A signed body has a signed length: no chunked bodies, no digest-less tokens here.
  if (digest === undefined || header(req, 'content-length') === undefined) throw forbidden();
  authorizeHead(req, auth);
  const body = await readBody(req, max);
  if (sha256Hex(body) !== digest) throw forbidden();
  return body;
}
