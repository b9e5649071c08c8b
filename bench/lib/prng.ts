// Small seeded PRNG (mulberry32) and helpers: benchmark runs must be repeatable.

export class Prng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }

  /** Uniform u32. */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform integer in [0, n) for n ≤ 2^32 (multiply-shift, negligible bias). */
  below(n: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** Fills `buf` with incompressible bytes (`ascii` false) or random printable ASCII. */
  fill(buf: Buffer, ascii: boolean): void {
    if (ascii) {
      for (let i = 0; i < buf.length; i++) buf[i] = 32 + ((this.u32() >>> 8) % 95);
      return;
    }
    let i = 0;
    for (; i + 4 <= buf.length; i += 4) buf.writeUInt32LE(this.u32(), i);
    for (; i < buf.length; i++) buf[i] = this.u32() & 0xff;
  }
}

/** Stateless 32-bit mix (murmur3 fmix32): derives per-needle values from an index. */
export function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
