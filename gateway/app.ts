// The gateway's HTTP front: Hono (on @hono/node-server) receives the request; this file
// turns it into an S3Request — bucket and key from path or virtual host, identity from
// SigV4/SigV2, a body decoder matching the payload mode — runs the routed handler, and
// renders every failure as S3 error XML with a request id.
import crypto from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createAdaptorServer, type HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import type { InternalAuth } from '../common/internal-auth.ts';
import { DataError } from '../data-path/api.ts';
import { MetadataError } from '../directory/model/api.ts';
import { authorizeBucket } from './access.ts';
import { ADMIN_PREFIX, handleAdmin } from './admin.ts';
import { chunkedOptionsFor, decodeAwsChunked } from './auth/chunked.ts';
import { type AuthResult, authenticate, parseQuery } from './auth/sigv4.ts';
import type { S3Request, Services } from './context.ts';
import { fromMetadataError, S3Error } from './error.ts';
import { serverLimits, uploadLimitFor } from './limits.ts';
import { withLookupCache } from './lookup-cache.ts';
import { type Route, receivesBody, route } from './router.ts';

/**
 * A request id: 16 upper-case hex digits, unique per process (a counter) and across
 * processes (a random prefix, drawn again when the counter wraps). Cheaper than 8 random
 * bytes per request.
 */
let idPrefix = '';
let idCounter = 0x100000000;

export function newRequestId(): string {
  if (idCounter >= 0x100000000) {
    idPrefix = crypto.randomBytes(4).toString('hex').toUpperCase();
    idCounter = 0;
  }
  const n = (idCounter++).toString(16).toUpperCase();
  return idPrefix + '00000000'.slice(n.length) + n;
}

export function splitTarget(
  rawUrl: string,
  host: string | undefined,
  domain: string | undefined,
): { rawPath: string; rawQuery: string; bucket: string; key: string } {
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1);
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw new S3Error('InvalidURI', 'Could not parse the specified URI.', { status: 400 });
  }
  if (domain) {
    const hostname = (host ?? '').replace(/:\d+$/, '').toLowerCase();
    if (hostname.endsWith(`.${domain}`)) {
      return {
        rawPath,
        rawQuery,
        bucket: hostname.slice(0, -domain.length - 1),
        key: path.slice(1),
      };
    }
  }
  const rest = path.slice(1);
  const slash = rest.indexOf('/');
  if (slash < 0) return { rawPath, rawQuery, bucket: rest, key: '' };
  return { rawPath, rawQuery, bucket: rest.slice(0, slash), key: rest.slice(slash + 1) };
}

const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** Something could not be reached, or the data path's stores could not reach replicas. */
function unreachable(e: unknown): boolean {
  if (e instanceof DataError) return e.code === 'Unavailable';
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONNECTION_ERRORS.has(code);
}

export function toS3Error(e: unknown, services: Services): S3Error {
  if (e instanceof S3Error) return e;
  if (e instanceof DataError) {
    if (e.code === 'TooLarge') return new S3Error('EntityTooLarge', e.message);
    if (e.code === 'ShortRead') return new S3Error('InternalError', e.message);
    if (e.code === 'Busy') return new S3Error('SlowDown', 'Please reduce your request rate.');
  }
  if (e instanceof MetadataError) {
    const err = fromMetadataError(e);
    if (err.code === 'InternalError') services.log.error({ err: e }, 'unknown metadata error');
    return err;
  }
  if (unreachable(e)) {
    // Store nodes failing under us (a node just died, replicas unreachable): worth a retry.
    services.log.warn({ err: e }, 'storage unavailable');
    return new S3Error('ServiceUnavailable', 'Please reduce your request rate.');
  }
  services.log.error({ err: e }, 'internal error');
  return new S3Error('InternalError', 'We encountered an internal error. Please try again.');
}

function errorResponse(
  err: S3Error,
  requestId: string,
  resource: string,
  method: string,
): Response {
  const headers: Record<string, string> = {
    'x-amz-request-id': requestId,
    'content-type': 'application/xml',
    ...err.headers,
  };
  if (!err.resource) err.resource = resource;
  const body = method === 'HEAD' || err.status === 304 ? null : err.toXML(requestId);
  return new Response(body, { status: err.status, headers });
}

/**
 * The services plus who may scrape GET /_ks/metrics: the bearer token the stores' /metrics
 * take (InternalAuth.verifyMetricsBearer, compose/gateway.ts says whose). Without it the
 * metrics answer 403 to everyone.
 */
export interface GatewayServices extends Services {
  metricsAuth?: Pick<InternalAuth, 'verifyMetricsBearer'>;
}

/** What a gateway runs on: the lookup cache in front of the metadata store, the upload cap. */
function gatewayServices(uncached: GatewayServices): GatewayServices {
  return {
    ...uncached,
    meta: withLookupCache(uncached.meta),
    uploads: uncached.uploads ?? uploadLimitFor(uncached.config),
  };
}

export function createApp(uncached: GatewayServices): Hono<{ Bindings: HttpBindings }> {
  return appOver(gatewayServices(uncached));
}

function appOver(services: GatewayServices): Hono<{ Bindings: HttpBindings }> {
  const app = new Hono<{ Bindings: HttpBindings }>();
  const handle = handlerOver(services);
  app.all('*', (c) => handle(c.env.incoming));
  return app;
}

/** The gateway's whole request pipeline: a node request in, a Response out, never throwing. */
function handlerOver(services: GatewayServices): (incoming: IncomingMessage) => Promise<Response> {
  return async (incoming) => {
    const requestId = newRequestId();
    const method = incoming.method ?? 'GET';
    let resource = '/';
    try {
      const t = splitTarget(incoming.url ?? '/', incoming.headers.host, services.config.domain);
      resource = t.key ? `/${t.bucket}/${t.key}` : `/${t.bucket}`;
      if (isProbe(t, method)) return await probeAnswer(services, t.key, incoming);
      if (method === 'OPTIONS') throw corsPreflightError(incoming);
      const pairs = parseQuery(t.rawQuery);
      // Verified already when the request came with Expect: 100-continue (checkHead).
      const auth =
        headChecked.get(incoming) ?? (await authenticateHead(services, incoming, t, pairs));
      if (t.rawPath.startsWith(ADMIN_PREFIX)) {
        const res = await handleAdmin(
          services.meta,
          auth.userId,
          method,
          t.rawPath,
          new URLSearchParams(pairs),
        );
        setRequestId(res, requestId);
        return res;
      }
      const decoded = bodyDecoder(incoming, auth);
      const sha = auth.contentSha256;
      const req = s3Request(services, incoming, t, pairs, auth.userId, {
        requestId,
        body: decoded.body,
        trailers: decoded.trailers,
        // Hex in either case is a hash to check (the signature covers the text as sent).
        declaredSha256: /^[0-9a-fA-F]{64}$/.test(sha) ? sha.toLowerCase() : null,
      });
      const res = await dispatch(route(req), req, services);
      setRequestId(res, requestId);
      return res;
    } catch (e) {
      return errorResponse(toS3Error(e, services), requestId, resource, method);
    }
  };
}

/**
 * @hono/node-server's Response keeps what it was built from, [status, body, headers], under
 * a private symbol, and hands a plain headers object straight to writeHead; reading
 * `res.headers` would convert the object to a Headers and back, a fair share of a small
 * GET's CPU. So the request id goes into that object — rebuilt as the Headers round trip
 * would have left it: lower-case names, values trimmed of HTTP whitespace, NUL/CR/LF
 * refused with Headers' TypeError, the default content type for a body that names none.
 * Any other Response (Headers already made, another runtime) gets it through `res.headers`.
 */
let responseStateKey: symbol | undefined;
let probedResponse: unknown;

function stateKey(): symbol | undefined {
  if (probedResponse !== globalThis.Response) {
    probedResponse = globalThis.Response;
    responseStateKey = Object.getOwnPropertySymbols(new Response(null, { headers: {} })).find(
      (s) => s.description === 'cache',
    );
  }
  return responseStateKey;
}

const DEFAULT_CONTENT_TYPE = 'text/plain; charset=UTF-8';
const HEADER_VALUE_INVALID = /[\0\r\n]/;

function isHttpWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** A header value as Headers keeps it: HTTP whitespace (tab, LF, CR, space) trimmed. */
function normalizeHeaderValue(v: string): string {
  const first = v.charCodeAt(0);
  const last = v.charCodeAt(v.length - 1);
  const out =
    isHttpWhitespace(first) || isHttpWhitespace(last)
      ? v.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '')
      : v;
  if (HEADER_VALUE_INVALID.test(out)) {
    throw new TypeError(`Headers.append: "${out}" is an invalid header value.`);
  }
  return out;
}

export function setRequestId(res: Response, requestId: string): void {
  const key = stateKey();
  const state = key === undefined ? undefined : (res as unknown as Record<symbol, unknown>)[key];
  if (Array.isArray(state) && state.length === 3) {
    const given = state[2] as unknown;
    if (
      given === undefined ||
      (given !== null &&
        typeof given === 'object' &&
        !Array.isArray(given) &&
        !(given instanceof Headers))
    ) {
      const headers: Record<string, string> = {};
      if (given !== undefined) {
        const plain = given as Record<string, unknown>;
        for (const k in plain) {
          if (!Object.hasOwn(plain, k)) continue;
          const raw = plain[k];
          const name = k.toLowerCase();
          const value = normalizeHeaderValue(typeof raw === 'string' ? raw : String(raw));
          const had = headers[name];
          headers[name] = had === undefined ? value : `${had}, ${value}`;
        }
      }
      headers['x-amz-request-id'] = requestId;
      if (state[1] !== null && headers['content-type'] === undefined) {
        headers['content-type'] = DEFAULT_CONTENT_TYPE;
      }
      state[2] = headers;
      return;
    }
  }
  res.headers.set('x-amz-request-id', requestId);
}

/**
 * Runs the routed handler after the access check its route declares. Only here does a
 * handler get the bucket writes (`services`, the full store), typed to require the guard.
 */
async function dispatch(r: Route, req: S3Request, services: Services): Promise<Response> {
  if (r.access === 'none' || r.access === 'create') return r.handler(req);
  if (r.alongside) {
    const check = authorizeBucket(req, req.bucket, r.access);
    check.catch(() => {});
    let res: Response;
    try {
      res = await r.handler(req);
    } catch (e) {
      await check;
      throw e;
    }
    await check;
    return res;
  }
  r.validate?.(req);
  const bucketRecord = await authorizeBucket(req, req.bucket, r.access);
  // Onto the request itself: a copy of its dozen fields on every request costs more.
  return r.handler(Object.assign(req, { bucketRecord, services }));
}

function returnThis<T>(this: T): T {
  return this;
}

async function noTrailers(): Promise<Record<string, string>> {
  return {};
}

function bodyDecoder(
  incoming: IncomingMessage,
  auth: AuthResult,
): Pick<S3Request, 'body' | 'trailers'> {
  if (auth.streaming === 'none') {
    // No closures made per request (the build names each one, which costs too).
    return { body: returnThis.bind(incoming), trailers: noTrailers };
  }
  // destroyOnReturn false: a decoder that stops early must not destroy the request,
  // or the error response could not be sent on it.
  const decoded = decodeAwsChunked(
    incoming.iterator({ destroyOnReturn: false }),
    chunkedOptionsFor(auth, incoming.headersDistinct),
  );
  return { body: () => decoded.body, trailers: () => decoded.trailers() };
}

type Target = ReturnType<typeof splitTarget>;

/**
 * Kubernetes' probes and Prometheus' scrape, the gateway's routes outside S3 auth, under
 * /_ks/ (no bucket can be named "_ks"): GET /_ks/healthz (liveness: it serves HTTP),
 * GET /_ks/readyz (readiness: the directory answers too), one word each and anonymous, and
 * GET /_ks/metrics (counters only: the cache levels) with the metrics bearer token, as a
 * store's /metrics (403 AccessDenied without it).
 */
const isProbe = (t: Target, method: string): boolean =>
  t.bucket === '_ks' &&
  (t.key === 'healthz' || t.key === 'readyz' || t.key === 'metrics') &&
  (method === 'GET' || method === 'HEAD');

async function probeAnswer(
  services: GatewayServices,
  which: string,
  incoming: IncomingMessage,
): Promise<Response> {
  if (which === 'metrics') {
    if (!services.metricsAuth?.verifyMetricsBearer(incoming.headers.authorization)) {
      throw new S3Error('AccessDenied', 'Access Denied');
    }
    const text = (await services.metrics?.()) ?? '';
    return new Response(text, {
      headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' },
    });
  }
  let ok = true;
  if (which === 'readyz') {
    // A read the directory answers only with a leader; never cached when there is no such bucket.
    ok = await services.meta.getBucket('_ks').then(
      () => true,
      () => false,
    );
  }
  return new Response(ok ? 'ok\n' : 'unavailable\n', {
    status: ok ? 200 : 503,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
  });
}

/** A CORS preflight: CORS is not configurable here, so no preflight is ever allowed. */
function corsPreflightError(incoming: IncomingMessage): S3Error {
  if (incoming.headers.origin === undefined) {
    return new S3Error('BadRequest', 'Insufficient information. Origin request header needed.', {
      status: 400,
    });
  }
  return new S3Error('AccessForbidden', 'CORSResponse: CORS is not enabled for this bucket.', {
    status: 403,
    extra: { Method: (incoming.headers['access-control-request-method'] as string) ?? '' },
  });
}

/**
 * Who signed the request, from its head alone (SigV4 signs the headers; the payload hash
 * is checked against the body as it is read). Anonymous requests are refused.
 */
async function authenticateHead(
  services: Services,
  incoming: IncomingMessage,
  t: Target,
  pairs: [string, string][],
): Promise<AuthResult> {
  const vhost =
    services.config.domain && t.bucket && !t.rawPath.startsWith(`/${t.bucket}`)
      ? t.bucket
      : undefined;
  const auth = await authenticate(
    {
      method: incoming.method ?? 'GET',
      rawPath: t.rawPath,
      query: pairs,
      headers: incoming.headersDistinct,
      virtualHostBucket: vhost,
    },
    async (accessKey: string) => {
      const k = await services.meta.getKey(accessKey);
      return k ? { secretKey: k.secretKey, userId: k.userId } : null;
    },
  );
  if (auth.anonymous) {
    // As on AWS, a bucket that does not exist is reported as such, even to anonymous callers.
    if (
      t.bucket &&
      !t.rawPath.startsWith(ADMIN_PREFIX) &&
      !(await services.meta.getBucket(t.bucket))
    ) {
      throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', {
        extra: { BucketName: t.bucket },
      });
    }
    throw new S3Error('AccessDenied', 'Access Denied');
  }
  return auth;
}

/** Requests whose head checkHead verified, with the identity it found: not verified twice. */
const headChecked = new WeakMap<IncomingMessage, AuthResult>();

/** The S3Request of a routed, authenticated request; `rest` is what differs by caller. */
function s3Request(
  services: Services,
  incoming: IncomingMessage,
  t: { bucket: string; key: string },
  pairs: [string, string][],
  userId: string,
  rest: Pick<S3Request, 'requestId' | 'body' | 'trailers' | 'declaredSha256'>,
): S3Request {
  return {
    services,
    method: incoming.method ?? 'GET',
    bucket: t.bucket,
    key: t.key,
    query: new URLSearchParams(pairs),
    headers: incoming.headers,
    incoming,
    userId,
    ...rest,
  };
}

/**
 * Judges a request that waits for `100 Continue` by its head, before a byte of its body is
 * read: the signature (SigV4 header or query, SigV2; payload modes included), the declared
 * size, the route's request checks and the bucket (exists, the caller may act on it). The
 * identity found, for the handler; null for the anonymous probe. Throws the S3 error.
 */
async function checkHead(
  services: Services,
  incoming: IncomingMessage,
  head: { resource: string },
): Promise<AuthResult | null> {
  const method = incoming.method ?? 'GET';
  const t = splitTarget(incoming.url ?? '/', incoming.headers.host, services.config.domain);
  head.resource = t.key ? `/${t.bucket}/${t.key}` : `/${t.bucket}`;
  if (isProbe(t, method)) return null;
  if (method === 'OPTIONS') throw corsPreflightError(incoming);
  const pairs = parseQuery(t.rawQuery);
  const auth = await authenticateHead(services, incoming, t, pairs);
  // The body's size as declared: aws-chunked bodies declare their decoded length.
  let declared: number | undefined;
  if (auth.streaming === 'none') {
    const len = incoming.headers['content-length'];
    declared = len === undefined ? undefined : Number(len);
  } else declared = chunkedOptionsFor(auth, incoming.headersDistinct).decodedLength;
  const max = services.config.maxObjectSize;
  if (declared !== undefined && declared > max) {
    throw new S3Error(
      'EntityTooLarge',
      'Your proposed upload exceeds the maximum allowed object size.',
      { extra: { ProposedSize: String(declared), MaxSizeAllowed: String(max) } },
    );
  }
  if (t.rawPath.startsWith(ADMIN_PREFIX)) return auth;
  const req = s3Request(services, incoming, t, pairs, auth.userId, {
    requestId: '',
    body: () => {
      throw new Error('checkHead reads no body');
    },
    trailers: async () => ({}),
    declaredSha256: null,
  });
  const r = route(req);
  if (r.access !== 'none' && r.access !== 'create') {
    if (!r.alongside) r.validate?.(req);
    await authorizeBucket(req, t.bucket, r.access);
  }
  // No slot free now: SlowDown before the client sends its body (it is taken for real
  // when the body is read, upload.ts).
  if (receivesBody(r) && services.uploads?.full) {
    throw new S3Error('SlowDown', 'Please reduce your request rate.');
  }
  return auth;
}

/** A refusal from checkHead: no 100, no body read, and the connection closed after it. */
async function refuseHead(res: ServerResponse, answer: Response): Promise<void> {
  const body = Buffer.from(await answer.arrayBuffer());
  const headers: Record<string, string> = Object.fromEntries(answer.headers);
  headers['content-length'] = String(body.length);
  headers.connection = 'close';
  res.writeHead(answer.status, headers);
  res.end(body);
}

/** An http.Server running the gateway (not yet listening). */
export function createGatewayServer(uncached: GatewayServices): Server {
  const services = gatewayServices(uncached);
  const handle = handlerOver(services);
  const limits = serverLimits(services.config);
  const server = createAdaptorServer({
    // Straight to the pipeline: Hono's routing and context would add nothing to app.all('*').
    // What Hono's fetch did besides stays: HEAD answered without a body, a throw as a 500.
    fetch: (_req, env) => {
      // An HTTP/1 server: the incoming request is node's IncomingMessage.
      const incoming = (env as HttpBindings).incoming;
      return (
        incoming.method === 'HEAD'
          ? handle(incoming).then((res) => new Response(null, res))
          : handle(incoming)
      ).catch((e: unknown) => {
        console.error(e);
        return new Response('Internal Server Error', {
          status: 500,
          headers: { 'content-type': DEFAULT_CONTENT_TYPE },
        });
      });
    },
    autoCleanupIncoming: true,
    serverOptions: limits.options,
  }) as Server;
  // A connection silent this long is closed (node's socket timer), however far it got.
  server.timeout = limits.idleTimeoutMs;
  // Between requests too (node's default is 5 s): clients keep idle sockets about that long
  // (undici 4 s), and a loaded client that reuses one just as the server closes it gets
  // ECONNRESET on a request the server never saw.
  if (limits.idleTimeoutMs > 0) server.keepAliveTimeout = limits.idleTimeoutMs;
  // Node answers unknown Expect values with 417 by itself; let S3 semantics decide.
  server.on('checkExpectation', (req, res) => server.emit('request', req, res));
  // Expect: 100-continue: node would send the 100 at once, to anyone; decide after auth
  // (issue 12 item 8). Requests without Expect never come here.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const head = { resource: '/' };
    checkHead(services, req, head).then(
      (auth) => {
        if (auth) headChecked.set(req, auth);
        res.writeContinue();
        server.emit('request', req, res);
      },
      (e: unknown) => {
        const requestId = newRequestId();
        const err = toS3Error(e, services);
        const answer = errorResponse(err, requestId, head.resource, req.method ?? 'GET');
        refuseHead(res, answer).catch((e2: unknown) => services.log.warn({ err: e2 }, 'refusal'));
      },
    );
  });
  return server;
}
