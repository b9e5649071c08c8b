// One signed POST to one directory replica: the single code path under every metadata call
// (MetadataClient, and through it the stores' directory link) and the stores' heartbeats.
import type { Dispatcher } from 'undici';
import type { InternalAuth } from '../../common/internal-auth.ts';

/** A transport failure of one attempt, and whether the replica may have got the request. */
export class AttemptFailure extends Error {
  constructor(
    readonly error: Error,
    readonly sent: boolean,
  ) {
    super(error?.message ?? String(error));
  }
}

/** An HTTP answer as it arrived. */
export interface Answer {
  status: number;
  text: string;
}

export interface PostOptions {
  auth: InternalAuth;
  /** Sent with the request besides the token. */
  headers: Record<string, string>;
  /** Answer timeout (headers, then body) instead of the dispatcher's. */
  timeoutMs?: number | undefined;
  /**
   * Bound on the whole request, queueing and connecting included, on a precise timer:
   * undici's own timeouts tick in steps of about half a second.
   */
  totalMs?: number | undefined;
  /** Sees the answer's raw headers (name, value, name, value…) before its body. */
  onHeaders?: ((raw: Buffer[] | string[] | null | undefined) => void) | undefined;
}

/**
 * POSTs `text` to `path` on `pool`'s origin with the x-ks-auth token covering the body.
 * Rejects with AttemptFailure; `sent` turns true once undici has handed the whole body to
 * the socket (it writes a buffer body in one go): before that the server cannot hold a
 * complete request, and it applies only complete ones, so the call was not applied.
 */
export function signedPost(
  pool: Dispatcher,
  path: string,
  text: string,
  o: PostOptions,
): Promise<Answer> {
  const body = Buffer.from(text);
  return new Promise((resolve, reject) => {
    let sent = false;
    let status = 0;
    const chunks: Buffer[] = [];
    let abort: ((err: Error) => void) | undefined;
    let expired: Error | undefined;
    const timer =
      o.totalMs === undefined
        ? undefined
        : setTimeout(() => {
            expired = new Error(`no answer within ${o.totalMs} ms`);
            abort?.(expired);
          }, o.totalMs);
    const handler: Dispatcher.DispatchHandler = {
      onConnect(a) {
        abort = a;
        if (expired) a(expired);
      },
      onBodySent() {
        sent = true;
      },
      onHeaders(statusCode, rawHeaders) {
        sent = true;
        status = statusCode;
        o.onHeaders?.(rawHeaders);
        return true;
      },
      onData(chunk) {
        chunks.push(chunk);
        return true;
      },
      onComplete() {
        clearTimeout(timer);
        resolve({ status, text: Buffer.concat(chunks).toString('utf8') });
      },
      onError(err) {
        clearTimeout(timer);
        reject(new AttemptFailure(err, sent));
      },
    };
    try {
      pool.dispatch(
        {
          method: 'POST',
          path,
          headers: { ...o.headers, ...o.auth.signBody('POST', path, body) },
          body,
          ...(o.timeoutMs === undefined
            ? {}
            : { headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs }),
        },
        handler,
      );
    } catch (e) {
      clearTimeout(timer);
      reject(new AttemptFailure(e as Error, false));
    }
  });
}
