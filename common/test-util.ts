// Helpers for tests: temp directories that are removed afterwards.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';

const made: string[] = [];

/** A fresh directory under the OS temp dir, removed after the current test. */
export function tempDir(prefix = 'ks-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

afterEach(() => {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Deterministic payload for (id, length): tests can re-derive expected bytes. */
export function payload(id: bigint, length: number, ascii = false): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let x = Number(id % 2147483647n) * 48271 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf[i] = ascii ? 32 + ((x >>> 16) % 95) : x >>> 24;
  }
  return buf;
}
