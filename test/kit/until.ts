// Bounded polling for tests: every wait ends, with what it waited for in the error.

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface UntilOptions {
  /** Pause between polls (default 20 ms). */
  everyMs?: number;
  /**
   * Treat a throw as "not yet" and poll again (default: the throw fails the wait at once).
   * For probes of processes that may be down or still starting.
   */
  retryErrors?: boolean;
}

/**
 * Polls `fn` until it gives something other than undefined/null/false and returns that.
 * Bounded in time (`ms`) and in polls (as many as fit in `ms`, plus one), so a hung
 * condition fails the test with its name and the last value seen instead of its timeout.
 */
export async function until<T>(
  what: string,
  fn: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 10_000,
  opts: UntilOptions = {},
): Promise<T> {
  const everyMs = opts.everyMs ?? 20;
  const end = Date.now() + ms;
  const maxPolls = Math.ceil(ms / everyMs) + 2;
  let last: unknown;
  for (let poll = 1; ; poll++) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v as T;
      last = v;
    } catch (e) {
      if (!opts.retryErrors) throw e;
      last = e;
    }
    if (Date.now() > end || poll >= maxPolls) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(everyMs);
  }
}
