// File-level fixtures: something started before all tests of a file and closed after them.
import { afterAll, afterEach, beforeAll } from 'vitest';

/**
 * Starts `start()` before all tests and hands it to `onStart` (which typically assigns the
 * file's variables); closes it after all tests, also when a test failed.
 */
export function useFixture<T extends { close(): Promise<void> | void }>(
  start: () => Promise<T>,
  onStart: (t: T) => unknown = () => {},
): void {
  let t: T | undefined;
  beforeAll(async () => {
    t = await start();
    await onStart(t);
  });
  afterAll(async () => {
    await t?.close();
  });
}

/** A one-chunk async body, for APIs that take a stream of buffers. */
export async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

/** Teardown steps a test registers as it starts things. */
export type Cleanups = Array<() => Promise<void>>;

/** A list of teardown steps, run after each test in reverse order (last started, first closed). */
export function useCleanups(): Cleanups {
  const cleanups: Cleanups = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return cleanups;
}
