// Deterministic payloads for tests, benchmarks and crash children: the bytes for (id,
// length) can be re-derived anywhere, so a verifier needs no copy of what was written.
// No test-framework imports here: child processes load this file too.
export function payload(id: bigint, length: number, ascii = false): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let x = Number(id % 2147483647n) * 48271 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf[i] = ascii ? 32 + ((x >>> 16) % 95) : x >>> 24;
  }
  return buf;
}

/** Compressible text (JSON lines) of exactly `length` bytes. */
export function textPayload(length: number): Buffer {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < length; i++) {
    const line = `{"id":${i},"name":"user${i}","ok":${i % 3 === 0}}\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, length);
}

/** Seeded PRNG (mulberry32) returning floats in [0, 1): repeatable test and bench runs. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
