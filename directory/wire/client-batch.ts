// Coalescing of metadata calls on the wire (POST /meta/_batch, directory/wire/server.ts).
//
// One HTTP request per call made the directory leader spend about as much CPU on HTTP
// parsing, auth and JSON per request as on the records themselves. A BatchQueue (one per
// replica and kind of call: MetadataClient keeps reads apart from mutations) keeps at most
// `maxInFlight` requests outstanding, and the calls made meanwhile leave together in the
// next one. There is no timer, as in the Raft transport: a lone call goes out at once on
// its own route, so an idle client sees no extra latency, and batches form only under
// concurrency and grow with it.
//
// Every call still gets its own Reply, the one its single-call request would have got, so
// MetadataClient applies the same retry rules call by call. A batch that failed as a whole
// fails each of its calls with that same failure.
import { decodeJson } from './json.ts';
import { type Answer, AttemptFailure } from './post.ts';
import { BATCH_PATH, MAX_BATCH_CALLS } from './server.ts';

/** One call's answer: its result, or the status and error code it failed with. */
export type Reply =
  | { ok: true; value: unknown }
  | { ok: false; status: number; code: string; message: string; text: string };

/** Sends one POST to the queue's replica; rejects with AttemptFailure. */
export type Post = (path: string, body: string) => Promise<Answer>;

export interface BatchOptions {
  /** Most calls in one request (default 1000, at most 10 000). */
  maxCalls?: number;
  /**
   * Requests outstanding to one replica before calls wait to be batched (default 4; reads
   * and mutations count apart).
   */
  maxInFlight?: number;
}

// Counted in UTF-16 units, so at most ~3× as many bytes: far below the server's 64 MiB,
// and past a few MiB the per-request cost no longer matters anyway.
const MAX_BATCH_CHARS = 8 * 1024 * 1024;

export function replyOf({ status, text }: Answer): Reply {
  if (status === 200) return { ok: true, value: (decodeJson(text) as { r?: unknown }).r };
  let code = 'InternalError';
  let message = `HTTP ${status}`;
  try {
    const j = JSON.parse(text) as { error: string; message: string };
    code = j.error;
    message = j.message;
  } catch {
    // not JSON: keep the status line
  }
  return { ok: false, status, code, message, text };
}

function itemReply(item: unknown): Reply {
  const e = (item as { e?: { error: string; message: string; status?: number } }).e;
  if (e === undefined) return { ok: true, value: (item as { r?: unknown }).r };
  // A MetadataError is what a call alone would have got as a 409.
  const status = e.status ?? 409;
  return { ok: false, status, code: e.error, message: e.message, text: JSON.stringify(e) };
}

interface Pending {
  method: string;
  args: string;
  resolve: (r: Reply) => void;
  reject: (e: unknown) => void;
}

export class BatchQueue {
  private readonly maxCalls: number;
  private readonly maxInFlight: number;
  private inFlight = 0;
  private readonly queue: Pending[] = [];

  constructor(
    private readonly post: Post,
    opts: BatchOptions = {},
  ) {
    this.maxCalls = Math.max(1, Math.min(opts.maxCalls ?? 1000, MAX_BATCH_CALLS));
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 4);
  }

  /** `args` is the JSON array of the call's arguments (encodeJson). */
  submit(method: string, args: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.queue.push({ method, args, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const calls = this.take();
      this.inFlight++;
      const done = calls.length === 1 ? this.settle(calls[0]!) : this.sendBatch(calls);
      void done.finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private take(): Pending[] {
    let n = 0;
    let chars = 0;
    while (n < this.queue.length && n < this.maxCalls) {
      const p = this.queue[n]!;
      chars += p.args.length + p.method.length + 8;
      if (n > 0 && chars > MAX_BATCH_CHARS) break;
      n++;
    }
    return this.queue.splice(0, n);
  }

  private async settle(p: Pending): Promise<void> {
    try {
      p.resolve(replyOf(await this.post(`/meta/${p.method}`, p.args)));
    } catch (e) {
      p.reject(e);
    }
  }

  private async sendBatch(calls: Pending[]): Promise<void> {
    const body = `[${calls.map((p) => `[${JSON.stringify(p.method)},${p.args}]`).join(',')}]`;
    let answer: Answer;
    try {
      answer = await this.post(BATCH_PATH, body);
    } catch (e) {
      for (const p of calls) p.reject(e);
      return;
    }
    if (answer.status !== 200) {
      // The batch as a whole was refused (403, 404, 413, 503…): each call is, the same way.
      const r = replyOf(answer);
      for (const p of calls) p.resolve(r);
      return;
    }
    let items: unknown;
    try {
      items = decodeJson(answer.text);
    } catch {
      // handled below
    }
    if (
      !Array.isArray(items) ||
      items.length !== calls.length ||
      !items.every((x) => x !== null && typeof x === 'object')
    ) {
      // The calls ran but their results are lost: as if the answer never came.
      const failure = new AttemptFailure(new Error('malformed batch answer'), true);
      for (const p of calls) p.reject(failure);
      return;
    }
    calls.forEach((p, i) => {
      p.resolve(itemReply(items[i]));
    });
  }
}
