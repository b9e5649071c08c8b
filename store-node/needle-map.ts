// In-memory needle index: needle id → (offset/8, stored size).
//
// One Uint32Array, four words per slot [idLo, idHi, offset8, size], open addressing with
// linear probing and backward-shift deletion (no tombstones, so lookups never degrade).
// A slot is 16 bytes; the load factor is kept between MIN_LOAD and MAX_LOAD so RAM per
// live needle stays within 16/MIN_LOAD ≈ 23.5 bytes. Growth is ×1.25, not ×2, because
// doubling would drop the load factor to ~0.42 right after a resize (~38 B/needle).
// Needle id 0 marks an empty slot and is therefore not a valid needle id.

const MAX_LOAD = 0.85;
const GROW = 1.25;
const PRESIZE_LOAD = 0.8;
const MIN_CAPACITY = 1024;

export const MIN_LOAD = MAX_LOAD / GROW; // 0.68

function hash(lo: number, hi: number): number {
  // murmur3 fmix32 over both halves; sequential ids (the common case) spread evenly.
  let h = Math.imul(lo, 0x9e3779b1) ^ Math.imul(hi ^ 0x85ebca6b, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class NeedleMap {
  private slots: Uint32Array;
  private cap: number;
  private n = 0;

  constructor(expected = 0) {
    this.cap = Math.max(MIN_CAPACITY, Math.ceil(expected / PRESIZE_LOAD));
    this.slots = new Uint32Array(this.cap * 4);
  }

  get size(): number {
    return this.n;
  }

  get capacity(): number {
    return this.cap;
  }

  /** Bytes of RAM held by the table itself. */
  get byteLength(): number {
    return this.slots.byteLength;
  }

  /** Slot number holding the id, or -1. Read fields with offsetAt/sizeAt. */
  find(lo: number, hi: number): number {
    if (lo === 0 && hi === 0) return -1;
    const s = this.slots;
    const cap = this.cap;
    let i = hash(lo, hi) % cap;
    for (;;) {
      const b = i * 4;
      const klo = s[b]!;
      const khi = s[b + 1]!;
      if (klo === lo && khi === hi) return i;
      if (klo === 0 && khi === 0) return -1;
      if (++i === cap) i = 0;
    }
  }

  offsetAt(slot: number): number {
    return this.slots[slot * 4 + 2]!;
  }

  sizeAt(slot: number): number {
    return this.slots[slot * 4 + 3]!;
  }

  /** Inserts or replaces; returns the previous size, or -1 when the id was absent. */
  set(lo: number, hi: number, offset8: number, size: number): number {
    if (lo === 0 && hi === 0) throw new RangeError('needle id 0 is reserved');
    if (this.n + 1 > this.cap * MAX_LOAD) this.resize(Math.ceil(this.cap * GROW));
    const s = this.slots;
    const cap = this.cap;
    let i = hash(lo, hi) % cap;
    for (;;) {
      const b = i * 4;
      const klo = s[b]!;
      const khi = s[b + 1]!;
      if (klo === lo && khi === hi) {
        const prev = s[b + 3]!;
        s[b + 2] = offset8;
        s[b + 3] = size;
        return prev;
      }
      if (klo === 0 && khi === 0) {
        s[b] = lo;
        s[b + 1] = hi;
        s[b + 2] = offset8;
        s[b + 3] = size;
        this.n++;
        return -1;
      }
      if (++i === cap) i = 0;
    }
  }

  /** Removes the id; returns its size, or -1 when absent. */
  delete(lo: number, hi: number): number {
    let i = this.find(lo, hi);
    if (i < 0) return -1;
    const s = this.slots;
    const cap = this.cap;
    const prev = s[i * 4 + 3]!;
    // Backward-shift: pull later members of the probe run into the hole so that every
    // remaining key stays reachable from its home slot without tombstones.
    let j = i;
    for (;;) {
      if (++j === cap) j = 0;
      const b = j * 4;
      if (s[b] === 0 && s[b + 1] === 0) break;
      const home = hash(s[b]!, s[b + 1]!) % cap;
      const movable = i <= j ? home <= i || home > j : home <= i && home > j;
      if (movable) {
        s.copyWithin(i * 4, b, b + 4);
        i = j;
      }
    }
    s.fill(0, i * 4, i * 4 + 4);
    this.n--;
    return prev;
  }

  forEach(fn: (lo: number, hi: number, offset8: number, size: number) => void): void {
    const s = this.slots;
    for (let b = 0; b < s.length; b += 4) {
      if (s[b] !== 0 || s[b + 1] !== 0) fn(s[b]!, s[b + 1]!, s[b + 2]!, s[b + 3]!);
    }
  }

  /** Shrinks after mass deletion so RAM per live needle stays bounded. */
  compactIfSparse(): void {
    if (this.cap > MIN_CAPACITY && this.n < this.cap * MIN_LOAD * 0.75) {
      this.resize(Math.max(MIN_CAPACITY, Math.ceil(this.n / PRESIZE_LOAD)));
    }
  }

  private resize(newCap: number): void {
    const old = this.slots;
    this.cap = newCap;
    this.slots = new Uint32Array(newCap * 4);
    this.n = 0;
    for (let b = 0; b < old.length; b += 4) {
      if (old[b] !== 0 || old[b + 1] !== 0)
        this.set(old[b]!, old[b + 1]!, old[b + 2]!, old[b + 3]!);
    }
  }
}

export function idParts(id: bigint): [lo: number, hi: number] {
  return [Number(id & 0xffff_ffffn), Number((id >> 32n) & 0xffff_ffffn)];
}

export function idFromParts(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}
