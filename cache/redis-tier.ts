// The gateways' optional shared L2 of needle bytes (cache/README.md, "Levels"). Needle
// bytes never change under their key, so whatever Redis returns is right; what Redis must
// never do is slow a read down or fail it. Each call is raced against `timeoutMs`, a
// failure leaves Redis alone for `breakerMs` (the reads go to the stores meanwhile), and
// the client reconnects by itself forever, to a Redis that may come back empty.
import { Redis } from 'ioredis';
import type { Logger } from '../common/log.ts';

export interface RedisTierOptions {
  /** redis://[user:password@]host:port[/db] */
  url: string;
  /** Bound on one call (default 50 ms, cache.redisTimeoutMs). */
  timeoutMs?: number;
  /** Entries age out after this (default 1 h): deleted needles' bytes go this way. */
  ttlSeconds?: number;
  /** Prefix of every key (default 'ks:n:'), so the Redis can be shared with others. */
  prefix?: string;
  log?: Logger;
  /** After a failure Redis is skipped this long (default 1 s). */
  breakerMs?: number;
  /** Pause between reconnection attempts (default 300 ms). */
  reconnectMs?: number;
}

/** Plain numbers, updated in place, for metrics to read. */
export interface RedisTierStats {
  hits: number;
  /** Redis answered, without the key. */
  misses: number;
  /** Calls that failed or timed out (each opens the breaker). */
  errors: number;
  /** Calls not sent: breaker open, or closed tier. */
  skipped: number;
  sets: number;
  /** Bytes returned by hits. */
  bytes: number;
}

/** A call that did not get an answer from Redis (failed, timed out or skipped). */
const NONE = Symbol('none');

export class RedisTier {
  readonly stats: RedisTierStats = { hits: 0, misses: 0, errors: 0, skipped: 0, sets: 0, bytes: 0 };
  private readonly redis: Redis;
  private readonly timeoutMs: number;
  private readonly ttlSeconds: number;
  private readonly prefix: string;
  private readonly breakerMs: number;
  private readonly log: Logger | undefined;
  private skipUntil = 0;
  private down = false;
  private closed = false;

  constructor(opts: RedisTierOptions) {
    this.timeoutMs = opts.timeoutMs ?? 50;
    this.ttlSeconds = opts.ttlSeconds ?? 3_600;
    this.prefix = opts.prefix ?? 'ks:n:';
    this.breakerMs = opts.breakerMs ?? 1_000;
    this.log = opts.log;
    const reconnectMs = opts.reconnectMs ?? 300;
    this.redis = new Redis(opts.url, {
      // A command while disconnected fails at once instead of waiting in a queue, and a
      // command cut off by a lost connection fails instead of being retried later.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // Forever, at a steady pace: Redis coming back is noticed within reconnectMs.
      retryStrategy: () => reconnectMs,
      // A host that drops packets would otherwise hold each attempt for 10 s.
      connectTimeout: Math.max(1_000, reconnectMs),
    });
    // Without a listener ioredis prints every connection error; the breaker logs transitions.
    this.redis.on('error', (err: Error) => this.log?.debug({ err }, 'redis L2 connection error'));
    this.redis.on('ready', () => {
      // Proof it is back: no need to sit out the rest of the breaker.
      this.skipUntil = 0;
      if (this.down) this.log?.info({ url: redactUrl(opts.url) }, 'redis L2 back');
      this.down = false;
    });
  }

  /** Connected and not being skipped: a call now would be sent. */
  get up(): boolean {
    return !this.closed && this.redis.status === 'ready' && Date.now() >= this.skipUntil;
  }

  /** The bytes under `key`, or undefined when absent, or when Redis did not answer in time. */
  async get(key: string): Promise<Buffer | undefined> {
    const v = await this.call('get', () => this.redis.getBuffer(this.prefix + key));
    if (v === NONE) return undefined;
    if (v === null) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    this.stats.bytes += v.length;
    return v;
  }

  /** Best effort: on failure the next read of `key` is a miss. */
  async set(key: string, v: Buffer): Promise<void> {
    const r = await this.call('set', () =>
      this.redis.set(this.prefix + key, v, 'EX', this.ttlSeconds),
    );
    if (r !== NONE) this.stats.sets++;
  }

  /** Best effort: what is not deleted ages out (ttlSeconds). */
  async delete(key: string): Promise<void> {
    await this.call('delete', () => this.redis.del(this.prefix + key));
  }

  /** Drops the connection and stops reconnecting; later calls are skipped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.redis.disconnect(false);
  }

  private async call<T>(op: string, send: () => Promise<T>): Promise<T | typeof NONE> {
    if (this.closed || Date.now() < this.skipUntil) {
      this.stats.skipped++;
      return NONE;
    }
    if (this.redis.status !== 'ready') return this.fail(op, `not connected (${this.redis.status})`);
    let timer: NodeJS.Timeout | undefined;
    try {
      const sent = send();
      // The loser of the race must not become an unhandled rejection later.
      sent.catch(() => {});
      const late = new Promise<typeof NONE>((resolve) => {
        timer = setTimeout(() => resolve(NONE), this.timeoutMs);
      });
      const r = await Promise.race([sent, late]);
      if (r === NONE) return this.fail(op, `no answer in ${this.timeoutMs} ms`);
      return r;
    } catch (e) {
      return this.fail(op, (e as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  private fail(op: string, why: string): typeof NONE {
    this.stats.errors++;
    this.skipUntil = Date.now() + this.breakerMs;
    if (!this.down) {
      this.log?.warn({ op, why }, `redis L2 failing: skipped for ${this.breakerMs} ms at a time`);
    }
    this.down = true;
    return NONE;
  }
}

/** The URL without its password, for logs. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable url)';
  }
}
