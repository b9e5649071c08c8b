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
// for the whole batch.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { InternalAuth } from '../../common/internal-auth.ts';
import {
  close,
  createServer,
  InternalError,
  listen,
  readSignedBody,
  sendError,
  sendJsonText,
  toInternalError,
} from '../../common/internal-http.ts';
import type { Logger } from '../../common/log.ts';
import { MetadataError, type MetadataStore } from '../model/api.ts';
import { META_METHODS } from '../model/methods.ts';
import { decodeJson, encodeJson } from './json.ts';

export { decodeJson, encodeJson } from './json.ts';

/** The methods served: every one model/methods.ts declares. */
const METHOD_SET: ReadonlySet<string> = new Set(Object.keys(META_METHODS));

/**
 * Sent by a Raft directory replica with each /meta answer: the leader's URL, where a
 * client's calls cost no forwarding (writes) and no extra round trip (linearizable reads).
 */
export const LEADER_HEADER = 'x-ks-leader';

/** The route of POST /meta/_batch. */
export const BATCH_PATH = '/meta/_batch';
/** Most calls in one batch. */
export const MAX_BATCH_CALLS = 10_000;

export interface MetadataServerOptions {
  meta: MetadataStore;
  auth: InternalAuth;
  /** Largest request body (default 64 MiB: a 10 000-part completion is a few MiB). */
  maxBodyBytes?: number;
  logger?: Logger;
}

export class MetadataServer {
  readonly server: http.Server;
  private readonly maxBody: number;

  constructor(readonly opts: MetadataServerOptions) {
    this.maxBody = opts.maxBodyBytes ?? 64 * 1024 * 1024;
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return listen(this.server, host, port);
  }

  close(): Promise<void> {
    return close(this.server);
  }

  /** Also mounted by the Raft directory server next to its own routes. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const method = req.method ?? 'GET';
    try {
      // The token covers the body.
      const text = (await readSignedBody(req, this.opts.auth, this.maxBody)).toString('utf8');
      const name = rawUrl.startsWith('/meta/') ? rawUrl.slice(6) : '';
      if (rawUrl === BATCH_PATH) {
        if (method !== 'POST')
          throw new InternalError(405, 'MethodNotAllowed', `${method} not allowed`);
        await this.batch(text, res);
        return;
      }
      if (!METHOD_SET.has(name)) throw new InternalError(404, 'NotFound', `no route for ${rawUrl}`);
      if (method !== 'POST')
        throw new InternalError(405, 'MethodNotAllowed', `${method} not allowed`);
      let args: unknown;
      try {
        args = text === '' ? [] : decodeJson(text);
      } catch {
        throw new InternalError(400, 'InvalidArgument', 'body is not JSON');
      }
      if (!Array.isArray(args))
        throw new InternalError(400, 'InvalidArgument', 'body must be a JSON array of arguments');
      // JSON has no undefined: an omitted optional argument arrives as null.
      const call = args.map((a) => (a === null ? undefined : a));
      const fn = (this.opts.meta as unknown as Record<string, unknown>)[name] as
        | ((...a: unknown[]) => Promise<unknown>)
        | undefined;
      if (typeof fn !== 'function') {
        throw new InternalError(404, 'NotFound', `${name} is served by directory replicas only`);
      }
      const result = await fn.apply(this.opts.meta, call);
      sendJsonText(res, 200, result === undefined ? '{}' : `{"r":${encodeJson(result)}}`);
    } catch (e) {
      if (!(e instanceof MetadataError || e instanceof InternalError)) {
        this.opts.logger?.error({ err: e, url: rawUrl }, 'metadata request failed');
      }
      const err =
        e instanceof MetadataError ? new InternalError(409, e.code, e.message) : toInternalError(e);
      sendError(req, res, err);
    }
  }

  private async batch(text: string, res: http.ServerResponse): Promise<void> {
    let calls: unknown;
    try {
      calls = decodeJson(text);
    } catch {
      throw new InternalError(400, 'InvalidArgument', 'body is not JSON');
    }
    if (!Array.isArray(calls))
      throw new InternalError(400, 'InvalidArgument', 'body must be a JSON array of calls');
    if (calls.length > MAX_BATCH_CALLS)
      throw new InternalError(413, 'EntityTooLarge', `more than ${MAX_BATCH_CALLS} calls`);
    const answers = await Promise.all(calls.map((c) => this.batchCall(c)));
    sendJsonText(res, 200, `[${answers.join(',')}]`);
  }

  /** One call of a batch, answered as JSON text; never throws. */
  private async batchCall(c: unknown): Promise<string> {
    try {
      if (!Array.isArray(c) || typeof c[0] !== 'string' || !Array.isArray(c[1]))
        throw new InternalError(400, 'InvalidArgument', 'a call must be [method, [args…]]');
      const name = c[0];
      const fn = METHOD_SET.has(name)
        ? ((this.opts.meta as unknown as Record<string, unknown>)[name] as
            | ((...a: unknown[]) => Promise<unknown>)
            | undefined)
        : undefined;
      if (typeof fn !== 'function') throw new InternalError(404, 'NotFound', `no method ${name}`);
      // JSON has no undefined: an omitted optional argument arrives as null.
      const args = (c[1] as unknown[]).map((a) => (a === null ? undefined : a));
      const result = await fn.apply(this.opts.meta, args);
      return result === undefined ? '{}' : `{"r":${encodeJson(result)}}`;
    } catch (e) {
      let error: { error: string; message: string; status: number };
      if (e instanceof MetadataError) error = { error: e.code, message: e.message, status: 409 };
      else if (e instanceof InternalError)
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
