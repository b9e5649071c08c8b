// Helpers for tests: temp directories that are removed afterwards.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];

/**
 * A fresh directory under the OS temp dir, removed when the test file is done (not after
 * each test: servers started in beforeAll keep their data for the whole file).
 */
export function tempDir(prefix = 'ks-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

afterAll(() => {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

export { payload } from '../../common/payload.ts';
