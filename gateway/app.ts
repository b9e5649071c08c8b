// The gateway's HTTP front: Hono (on @hono/node-server) receives the request; this file
// turns it into an S3Request — bucket and key from path or virtual host, identity from
// SigV4/SigV2, a body decoder matching the payload mode — runs the routed handler, and
// renders every failure as S3 error XML with a request id.
import crypto from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { createAdaptorServer, type HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import { DataError } from '../data-path/api.ts';
import { MetadataError } from '../directory/model/api.ts';
import { StoreError } from '../store-node/errors.ts';
import { authorizeBucket } from './access.ts';
import { ADMIN_PREFIX, handleAdmin } from './admin.ts';
import { chunkedOptionsFor, decodeAwsChunked } from './auth/chunked.ts';
import { type AuthResult, authenticate, parseQuery } from './auth/sigv4.ts';
import type { S3Request, Services } from './context.ts';
import { fromMetadataError, S3Error } from './error.ts';
import { withLookupCache } from './lookup-cache.ts';
import { type Route, route } from './router.ts';

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
  const hostname = (host ?? '').replace(/:\d+$/, '').toLowerCase();
  if (domain && hostname.endsWith(`.${domain}`)) {
    return { rawPath, rawQuery, bucket: hostname.slice(0, -domain.length - 1), key: path.slice(1) };
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

/** A store could not be reached or could not reach its replicas. */
function unreachable(e: unknown): boolean {
  if (e instanceof StoreError) return e.code === 'ReplicaWriteFailed';
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONNECTION_ERRORS.has(code);
}

export function toS3Error(e: unknown, services: Services): S3Error {
  if (e instanceof S3Error) return e;
  if (e instanceof DataError) {
    return e.code === 'TooLarge'
      ? new S3Error('EntityTooLarge', e.message)
      : new S3Error('InternalError', e.message);
  }
  if (e instanceof MetadataError) {
    const err = fromMetadataError(e);
    if (err.code === 'InternalError') services.log.error({ err: e }, 'unknown metadata error');
    return err;
  }
  if (e instanceof StoreError && (e.code === 'Busy' || e.code === 'VolumeFull')) {
    return new S3Error('SlowDown', 'Please reduce your request rate.');
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

export function createApp(uncached: Services): Hono<{ Bindings: HttpBindings }> {
  const services: Services = { ...uncached, meta: withLookupCache(uncached.meta) };
  const app = new Hono<{ Bindings: HttpBindings }>();
  app.all('*', async (c) => {
    const incoming = c.env.incoming;
    const requestId = crypto.randomBytes(8).toString('hex').toUpperCase();
    const method = incoming.method ?? 'GET';
    let resource = '/';
    try {
      const t = splitTarget(incoming.url ?? '/', incoming.headers.host, services.config.domain);
      resource = t.key ? `/${t.bucket}/${t.key}` : `/${t.bucket}`;
      if (method === 'OPTIONS') {
        // CORS preflight: CORS is not configurable here, so no preflight is ever allowed.
        if (incoming.headers.origin === undefined) {
          throw new S3Error(
            'BadRequest',
            'Insufficient information. Origin request header needed.',
            {
              status: 400,
            },
          );
        }
        throw new S3Error('AccessForbidden', 'CORSResponse: CORS is not enabled for this bucket.', {
          status: 403,
          extra: { Method: (incoming.headers['access-control-request-method'] as string) ?? '' },
        });
      }
      const pairs = parseQuery(t.rawQuery);
      const vhost =
        services.config.domain && t.bucket && !t.rawPath.startsWith(`/${t.bucket}`)
          ? t.bucket
          : undefined;
      const auth = await authenticate(
        {
          method,
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
      if (t.rawPath.startsWith(ADMIN_PREFIX)) {
        const res = await handleAdmin(
          services.meta,
          auth.userId,
          method,
          t.rawPath,
          new URLSearchParams(pairs),
        );
        res.headers.set('x-amz-request-id', requestId);
        return res;
      }
      const decoded = bodyDecoder(incoming, auth);
      const sha = auth.contentSha256;
      const req: S3Request = {
        services,
        requestId,
        method,
        bucket: t.bucket,
        key: t.key,
        query: new URLSearchParams(pairs),
        headers: incoming.headers,
        incoming,
        userId: auth.userId,
        body: decoded.body,
        trailers: decoded.trailers,
        // Hex in either case is a hash to check (the signature covers the text as sent).
        declaredSha256: /^[0-9a-fA-F]{64}$/.test(sha) ? sha.toLowerCase() : null,
      };
      const res = await dispatch(route(req), req, services);
      res.headers.set('x-amz-request-id', requestId);
      return res;
    } catch (e) {
      return errorResponse(toS3Error(e, services), requestId, resource, method);
    }
  });
  return app;
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

function bodyDecoder(
  incoming: IncomingMessage,
  auth: AuthResult,
): Pick<S3Request, 'body' | 'trailers'> {
  if (auth.streaming === 'none') {
    return { body: () => incoming, trailers: async () => ({}) };
  }
  // destroyOnReturn false: a decoder that stops early must not destroy the request,
  // or the error response could not be sent on it.
  const decoded = decodeAwsChunked(
    incoming.iterator({ destroyOnReturn: false }),
    chunkedOptionsFor(auth, incoming.headersDistinct),
  );
  return { body: () => decoded.body, trailers: () => decoded.trailers() };
}

/** An http.Server running the gateway (not yet listening). */
export function createGatewayServer(services: Services): Server {
  const app = createApp(services);
  const server = createAdaptorServer({ fetch: app.fetch, autoCleanupIncoming: true }) as Server;
  // Node answers unknown Expect values with 417 by itself; let S3 semantics decide.
  server.on('checkExpectation', (req, res) => server.emit('request', req, res));
  return server;
}
