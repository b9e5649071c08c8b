// The metadata service over the network: every MetadataStore method as
//
//   POST /meta/<method>    body: JSON array of the arguments    → 200 {"r": result}
//
// authenticated like the store API (x-ks-auth, InternalAuth; 403 otherwise). JSON cannot
// carry bigints, so they travel as {"$bigint": "<decimal>"} both ways (encodeJson /
// decodeJson). A MetadataError thrown by the store answers 409 {error: code, message}
// and MetadataClient throws it again as a MetadataError; anything else is 500.
// Plain node:http, like the store server: fixed routes, small JSON bodies.
//
//   POST /meta/_batch      body: [[method, [args…]], …]   → 200 [{"r": result} | {"e": …}, …]
//
// runs several calls in one request (MetadataClient coalesces concurrent calls this way:
// per-request HTTP, auth and JSON work cost the leader as much CPU as the records). The
// calls run concurrently, so a RaftMetadata proposes their mutations together, and each
// answers on its own: {"e": {error, message, status}} carries what the call alone would
// have got (status 409 for a MetadataError). Auth and body errors (403, 400, 413) answer
// for the whole batch; a server of an older build answers 404 (no such route).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as httpServer from '../../common/http-server.ts';
import { AUTH_HEADER, type InternalAuth } from '../../common/internal-auth.ts';
import type { Logger } from '../../common/log.ts';
import { hasWireJson, WIRE_JSON } from '../engine/object-listing.ts';
import { MetadataError, type MetadataStore } from '../model/api.ts';
import type { ClusterDirectory } from '../model/topology.ts';

/** The MetadataStore methods served (all but close). */
export const META_METHODS = [
  'createBucket',
  'getBucket',
  'deleteBucket',
  'listBuckets',
  'putObject',
  'putObjectStored',
  'getObject',
  'deleteObject',
  'listObjects',
  'listObjectSummaries',
  'createUpload',
  'getUpload',
  'putPart',
  'listParts',
  'completeUpload',
  'abortUpload',
  'listUploads',
  'createUser',
  'getUser',
  'listUsers',
  'deleteUser',
  'addKey',
  'getKey',
  'listKeys',
  'deleteKey',
  'allocateNeedleIds',
  'allocateVolumeId',
  'registerNode',
  'setNodeState',
  'listNodes',
  'createVolume',
  'getVolume',
  'listVolumes',
  'updateVolume',
  // ClusterDirectory: only a Raft directory replica has these (404 elsewhere).
  'heartbeat',
  'liveness',
  'allocateVolume',
] as const satisfies readonly Exclude<keyof (MetadataStore & ClusterDirectory), 'close'>[];

export type MetaMethod = (typeof META_METHODS)[number];
const METHOD_SET = new Set<string>(META_METHODS);

/**
 * Sent by a Raft directory replica with each /meta answer: the leader's URL, where a
 * client's calls cost no forwarding (writes) and no extra round trip (linearizable reads).
 */
export const LEADER_HEADER = 'x-ks-leader';

/** The route of POST /meta/_batch. */
export const BATCH_PATH = '/meta/_batch';
/** Most calls in one batch. */
export const MAX_BATCH_CALLS = 10_000;

const BIGINT_TAG = '$bigint';

// Object keys that start with "$" in the data (user metadata names can) get one more "$"
// on the wire, so a single-key {"$bigint": …} object can only be an encoded bigint.
const escapeKeys = (o: Record<string, unknown>, add: boolean): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k[0] === '$' ? (add ? `$${k}` : k.slice(1)) : k] = v;
  return out;
};

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

const replacer = (_k: string, v: unknown) => {
  if (typeof v === 'bigint') return { [BIGINT_TAG]: v.toString() };
  if (isPlainObject(v) && Object.keys(v).some((k) => k[0] === '$')) return escapeKeys(v, true);
  return v;
};

const reviver = (_k: string, v: unknown) => {
  if (!isPlainObject(v)) return v;
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === BIGINT_TAG) {
    const tagged = v[BIGINT_TAG];
    if (typeof tagged === 'string' && /^-?\d{1,40}$/.test(tagged)) return BigInt(tagged);
  }
  return keys.some((k) => k[0] === '$') ? escapeKeys(v, false) : v;
};

/**
 * JSON.stringify with bigints as {"$bigint": "<decimal>"} (and "$…" keys escaped). A result
 * that carries its wire JSON already (WIRE_JSON: a listing page still in stored form) gives
 * that instead; only at the top level, which is where the server's results are.
 */
export function encodeJson(value: unknown): string {
  if (hasWireJson(value)) {
    const text = value[WIRE_JSON](encodeJson);
    if (text !== undefined) return text;
  }
  // Fast path without a replacer call per value: only a bigint makes stringify throw, and
  // only a string starting with "$" can be a key that needs escaping.
  try {
    const text = JSON.stringify(value);
    if (!text?.includes('"$')) return text;
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
  }
  return JSON.stringify(value, replacer);
}

/** JSON.parse turning {"$bigint": "<decimal>"} back into bigints (and unescaping keys). */
export function decodeJson(text: string): unknown {
  return text.includes('"$') ? JSON.parse(text, reviver) : JSON.parse(text);
}

export interface MetadataServerOptions {
  meta: MetadataStore;
  auth: InternalAuth;
  /** Largest request body (default 64 MiB: a 10 000-part completion is a few MiB). */
  maxBodyBytes?: number;
  logger?: Logger;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: http.IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      total += c.length;
      if (total > max) {
        failed = true;
        reject(new HttpError(413, 'EntityTooLarge', `body exceeds ${max} bytes`));
      } else chunks.push(c);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, total).toString('utf8'));
    });
    req.on('error', (e) => {
      if (!failed) {
        failed = true;
        reject(e);
      }
    });
  });
}

function send(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export class MetadataServer {
  readonly server: http.Server;
  private readonly maxBody: number;

  constructor(readonly opts: MetadataServerOptions) {
    this.maxBody = opts.maxBodyBytes ?? 64 * 1024 * 1024;
    this.server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      void this.handle(req, res);
    });
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return httpServer.listen(this.server, host, port);
  }

  close(): Promise<void> {
    return httpServer.close(this.server);
  }

  /** Also mounted by the Raft directory server next to its own routes. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const method = req.method ?? 'GET';
    try {
      // The token covers the body: the time is checked first, the MAC once the body is in.
      const token = req.headers[AUTH_HEADER] as string | undefined;
      const forbidden = () =>
        new HttpError(403, 'Forbidden', 'missing or invalid internal auth token');
      if (!this.opts.auth.fresh(token)) throw forbidden();
      const text = await readBody(req, this.maxBody);
      if (!this.opts.auth.verify(token, method, rawUrl, undefined, text)) throw forbidden();
      const name = rawUrl.startsWith('/meta/') ? rawUrl.slice(6) : '';
      if (rawUrl === BATCH_PATH) {
        if (method !== 'POST')
          throw new HttpError(405, 'MethodNotAllowed', `${method} not allowed`);
        await this.batch(text, res);
        return;
      }
      if (!METHOD_SET.has(name)) throw new HttpError(404, 'NotFound', `no route for ${rawUrl}`);
      if (method !== 'POST') throw new HttpError(405, 'MethodNotAllowed', `${method} not allowed`);
      let args: unknown;
      try {
        args = text === '' ? [] : decodeJson(text);
      } catch {
        throw new HttpError(400, 'InvalidArgument', 'body is not JSON');
      }
      if (!Array.isArray(args))
        throw new HttpError(400, 'InvalidArgument', 'body must be a JSON array of arguments');
      // JSON has no undefined: an omitted optional argument arrives as null.
      const call = args.map((a) => (a === null ? undefined : a));
      const fn = (this.opts.meta as unknown as Record<string, unknown>)[name] as
        | ((...a: unknown[]) => Promise<unknown>)
        | undefined;
      if (typeof fn !== 'function') {
        throw new HttpError(404, 'NotFound', `${name} is served by directory replicas only`);
      }
      const result = await fn.apply(this.opts.meta, call);
      send(res, 200, result === undefined ? '{}' : `{"r":${encodeJson(result)}}`);
    } catch (e) {
      let status: number;
      let body: { error: string; message: string };
      if (e instanceof MetadataError) {
        status = 409;
        body = { error: e.code, message: e.message };
      } else if (e instanceof HttpError) {
        status = e.status;
        body = { error: e.code, message: e.message };
      } else {
        status = 500;
        body = { error: 'InternalError', message: (e as Error)?.message ?? String(e) };
        this.opts.logger?.error({ err: e, url: rawUrl }, 'metadata request failed');
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (!req.complete) res.setHeader('connection', 'close');
      send(res, status, JSON.stringify(body));
    }
  }

  private async batch(text: string, res: http.ServerResponse): Promise<void> {
    let calls: unknown;
    try {
      calls = decodeJson(text);
    } catch {
      throw new HttpError(400, 'InvalidArgument', 'body is not JSON');
    }
    if (!Array.isArray(calls))
      throw new HttpError(400, 'InvalidArgument', 'body must be a JSON array of calls');
    if (calls.length > MAX_BATCH_CALLS)
      throw new HttpError(413, 'EntityTooLarge', `more than ${MAX_BATCH_CALLS} calls`);
    const answers = await Promise.all(calls.map((c) => this.batchCall(c)));
    send(res, 200, `[${answers.join(',')}]`);
  }

  /** One call of a batch, answered as JSON text; never throws. */
  private async batchCall(c: unknown): Promise<string> {
    try {
      if (!Array.isArray(c) || typeof c[0] !== 'string' || !Array.isArray(c[1]))
        throw new HttpError(400, 'InvalidArgument', 'a call must be [method, [args…]]');
      const name = c[0];
      const fn = METHOD_SET.has(name)
        ? ((this.opts.meta as unknown as Record<string, unknown>)[name] as
            | ((...a: unknown[]) => Promise<unknown>)
            | undefined)
        : undefined;
      if (typeof fn !== 'function') throw new HttpError(404, 'NotFound', `no method ${name}`);
      // JSON has no undefined: an omitted optional argument arrives as null.
      const args = (c[1] as unknown[]).map((a) => (a === null ? undefined : a));
      const result = await fn.apply(this.opts.meta, args);
      return result === undefined ? '{}' : `{"r":${encodeJson(result)}}`;
    } catch (e) {
      let error: { error: string; message: string; status: number };
      if (e instanceof MetadataError) error = { error: e.code, message: e.message, status: 409 };
      else if (e instanceof HttpError)
        error = { error: e.code, message: e.message, status: e.status };
      else {
        error = {
          error: 'InternalError',
          message: (e as Error)?.message ?? String(e),
          status: 500,
        };
        this.opts.logger?.error(
          { err: e, method: (c as unknown[])[0] },
          'metadata batch call failed',
        );
      }
      return JSON.stringify({ e: error });
    }
  }
}
